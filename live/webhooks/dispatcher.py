"""Delivering webhooks: at least once, in order per resource, signed, retried with backoff.

Webhooks are partitioned by owner (checkout/webhook_events.py `owner_partition`), and a
node delivers only those of the partitions it holds (checkout/partitions.py: the leases
that also give it products to sweep and fold), so each partition's deliveries have one
node at a time and no shard carries every brand's. Each partition's outbox is a Valkey
stream (`lc:{wh:<k>}:outbox`) read with a consumer group, like the aggregator reads the
product outboxes (one non-blocking read per outbox, in one pipeline: one read over many
slots is a CROSSSLOT error on a cluster): an entry is acknowledged only in the same script
that records its attempt's outcome (hook_done.lua), so a node killed mid-delivery leaves it
pending, and the node itself (same consumer name) or the one that takes over the partition
(after `claim_idle`) sends it again. Only the head of an (endpoint, resource) queue is ever
in the outbox, so deliveries about one order, stream or product go one after the other. A
failed attempt is retried on the schedule (with jitter) from the partition's retry sorted
set, moved back into the outbox by hook_pump.lua when due. docs/webhooks.md says it all for
the receivers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
import orjson
import redis.asyncio as redis
from redis.exceptions import NoScriptError, ResponseError
from standardwebhooks.webhooks import Webhook

from checkout.partitions import Partitions
from checkout.store.keys import HookKeys, hook_keys
from checkout.store.replies import stream_reads, text, text_hash
from checkout.store.scripts import SCRIPTS, call_script, load_all
from checkout.tasks import stop_task
from live.webhooks.targets import TargetRefused, resolve

__all__ = ["Dispatcher", "DispatchConfig", "signature_headers", "GROUP", "backoff_s",
           "prepare_outbox"]

log = logging.getLogger(__name__)

GROUP = "hooks"
USER_AGENT = "livecart-webhooks/1"
OnDisabled = Callable[[dict[str, str]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    allow_private: bool
    timeout_s: float  # one attempt, connect to the last byte read
    connect_timeout_s: float
    response_max_bytes: int  # what is read of an answer (then the connection is dropped)
    schedule_s: tuple[float, ...]  # the waits before each retry; spent: given up
    jitter: float  # each wait is stretched or shrunk by up to this fraction
    keep_ms: int  # finished deliveries are kept this long
    disable_after_ms: int
    disable_failures: int
    concurrency: int
    claim_idle_ms: int  # another consumer's entry pending this long is taken over
    block_ms: int = 200


def backoff_s(schedule: tuple[float, ...], attempts: int, jitter: float,
              rng: random.Random) -> float | None:
    """The wait after the `attempts`-th failed attempt; None once the schedule is spent."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    return max(0.0, base * (1 + rng.uniform(-jitter, jitter)))


def signature_headers(record: dict[str, str], msg_id: str, body: bytes,
                      now: float) -> dict[str, str]:
    """The Standard Webhooks headers; during a rotation's grace period, signed with the old
    secret too (a second `v1,` signature, space-separated)."""
    stamp = datetime.fromtimestamp(now, tz=timezone.utc)
    payload = body.decode()
    secrets = [record["secret"]]
    if record.get("old_secret") and int(record.get("old_until_ms") or 0) > now * 1000:
        secrets.append(record["old_secret"])
    signatures = " ".join(Webhook(s).sign(msg_id, stamp, payload) for s in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now)),
            "webhook-signature": signatures}


async def prepare_outbox(client: redis.Redis, partitions: Iterable[int]) -> None:
    """The partitions' outbox streams and their group, made once (at start: not by a loop
    that runs whenever it gets to it)."""
    for partition in partitions:
        try:
            await client.xgroup_create(hook_keys(partition).outbox, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


Entry = tuple[int, str, str]  # (partition, outbox entry id, delivery id)


class Dispatcher:
    def __init__(self, client: redis.Redis, consumer: str, config: DispatchConfig, *,
                 partitions: Partitions, on_disabled: OnDisabled | None = None) -> None:
        self._client = client
        self._consumer = consumer
        self._config = config
        self._partitions = partitions
        self._on_disabled = on_disabled
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[tuple[int, str], asyncio.Task[None]] = {}  # (partition, entry id)
        self._rng = random.Random()
        self._http = httpx.AsyncClient(
            follow_redirects=False, trust_env=False,  # no proxy: it would skip our address check
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=config.concurrency))
        self.attempts = 0  # attempts made by this node (tests, metrics)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhooks")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        for task in list(self._inflight.values()):
            await stop_task(task)
        await self._http.aclose()

    async def _run(self) -> None:
        # The partitions whose own pending entries were read: first what this consumer was
        # handed before a crash, in each partition it holds (again after any failure, with
        # the groups made again: a Valkey that lost them, or a flushed one).
        resumed: set[int] = set()
        last_claim = 0.0
        while True:
            try:
                held = self._partitions.held()
                if not resumed:
                    await prepare_outbox(self._client, held)
                free = self._config.concurrency - len(self._inflight)
                if free <= 0:
                    await asyncio.wait(list(self._inflight.values()),
                                       return_when=asyncio.FIRST_COMPLETED)
                    continue
                fresh = {p for p in held if p not in resumed}
                entries = await self._pump_and_read(held, fresh, free)
                resumed |= fresh
                if time.monotonic() - last_claim > self._config.claim_idle_ms / 2000:
                    last_claim = time.monotonic()
                    entries += await self._claim(held, free)
                started = 0
                for partition, entry_id, delivery_id in entries:
                    if (partition, entry_id) not in self._inflight:
                        started += 1
                        self._inflight[partition, entry_id] = asyncio.create_task(
                            self._attempt(partition, entry_id, delivery_id))
                if not started:
                    await asyncio.sleep(self._config.block_ms / 1000)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep delivering; a Valkey restart is survivable
                log.exception("webhook dispatch pass failed; retrying")
                resumed.clear()
                await asyncio.sleep(0.5)

    async def _pump_and_read(self, partitions: list[int], fresh: set[int],
                             free: int) -> list[Entry]:
        """One pipeline (the cluster client splits it by node; a partition's two commands
        go to its node in order): per partition, its due retries back into its outbox
        (hook_pump.lua), then a non-blocking read of the outbox, from our own pending
        entries for the `fresh` ones. The batch is shared out between the partitions."""
        if not partitions:
            return []
        count = max(1, free // len(partitions))
        now = int(time.time() * 1000)
        pump = SCRIPTS["hook_pump"]
        async with self._client.pipeline(transaction=False) as pipe:
            for partition in partitions:
                hooks = hook_keys(partition)
                # EVALSHA by name: redis-py's cluster pipeline refuses its `evalsha` method.
                pipe.execute_command("EVALSHA", pump.sha, 2, hooks.retry, hooks.outbox, now, 1000)
                pipe.xreadgroup(GROUP, self._consumer,
                                {hooks.outbox: "0" if partition in fresh else ">"}, count=count)
            replies = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in replies[0::2]):
            await load_all(self._client)  # a restarted Valkey: the retries move next pass
        failed = [r for r in replies if isinstance(r, Exception)
                  and not isinstance(r, NoScriptError)]
        if failed:
            raise failed[0]
        return [(partition, text(eid), text(fields.get(b"d", b"")))
                for partition, reply in zip(partitions, replies[1::2])
                for _, items in stream_reads(reply) for eid, fields in items if fields]

    async def _claim(self, partitions: list[int], count: int) -> list[Entry]:
        """Entries another consumer (a node that died, or lost the partition) was handed and
        has not settled for `claim_idle` (one pipeline)."""
        if not partitions:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.xautoclaim(hook_keys(partition).outbox, GROUP, self._consumer,
                                self._config.claim_idle_ms, "0-0", count=count)
            replies = await pipe.execute()
        return [(partition, text(eid), text(fields.get(b"d", b"")))
                for partition, reply in zip(partitions, replies)
                for eid, fields in (reply[1] if reply and len(reply) > 1 else []) if fields]

    async def _attempt(self, partition: int, entry_id: str, delivery_id: str) -> None:
        try:
            await self._deliver(hook_keys(partition), entry_id, delivery_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # left pending: this node (or another) tries it again
            log.exception("webhook delivery %s failed to record; it stays pending", delivery_id)
        finally:
            self._inflight.pop((partition, entry_id), None)

    async def _deliver(self, hooks: HookKeys, entry_id: str, delivery_id: str) -> None:
        delivery = text_hash(await self._client.hgetall(hooks.delivery(delivery_id)))
        if delivery.get("status") != "pending":
            await self._done(hooks, entry_id, delivery_id, delivery, "drop", 0, "")
            return
        endpoint = text_hash(await self._client.hgetall(hooks.endpoint(delivery["endpoint"])))
        event = text_hash(await self._client.hgetall(hooks.event(delivery["event"])))
        if not endpoint or endpoint.get("enabled") != "1" or not event:
            why = ("the endpoint was deleted" if not endpoint else "the event expired"
                   if not event else "the endpoint is disabled")
            await self._done(hooks, entry_id, delivery_id, delivery, "drop", 0, why)
            return
        status, error = await self._post(endpoint, delivery["event"], event["body"].encode())
        self.attempts += 1
        attempts = int(delivery.get("attempts") or 0) + 1
        if 200 <= status < 300:
            await self._done(hooks, entry_id, delivery_id, delivery, "ok", status, "")
            return
        wait = backoff_s(self._config.schedule_s, attempts, self._config.jitter, self._rng)
        outcome = "fail" if wait is None else "retry"
        due = int((time.time() + (wait or 0)) * 1000)
        disabled = await self._done(hooks, entry_id, delivery_id, delivery, outcome, status,
                                    error, due)
        if disabled and self._on_disabled is not None:
            await self._on_disabled(endpoint)

    async def _post(self, endpoint: dict[str, str], msg_id: str, body: bytes) -> tuple[int, str]:
        """One attempt: (HTTP status or 0, what went wrong). Never raises for the target's
        faults; logs no secret and no body."""
        try:
            target = await resolve(endpoint["url"], allow_private=self._config.allow_private)
        except TargetRefused as exc:
            return 0, f"refused: {exc.detail}"
        headers = {"host": target.host_header, "content-type": "application/json",
                   "user-agent": USER_AGENT,
                   **signature_headers(endpoint, msg_id, body, time.time())}
        try:
            async with asyncio.timeout(self._config.timeout_s):
                async with self._http.stream("POST", target.url, content=body, headers=headers,
                                             extensions={"sni_hostname": target.sni}) as r:
                    read = 0
                    async for chunk in r.aiter_raw():
                        read += len(chunk)
                        if read >= self._config.response_max_bytes:
                            break  # the rest is not ours to read
                    return r.status_code, "" if r.is_success else f"HTTP {r.status_code}"
        except (TimeoutError, httpx.TimeoutException):
            return 0, f"timed out after {self._config.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return 0, f"{type(exc).__name__}: {str(exc)[:200]}"

    async def _done(self, hooks: HookKeys, entry_id: str, delivery_id: str,
                    delivery: dict[str, str], outcome: str, status: int, error: str,
                    due_ms: int = 0) -> bool:
        c = self._config
        keys = [hooks.delivery(delivery_id), hooks.endpoint(delivery.get("endpoint", "")),
                delivery.get("queue") or hooks.queue("", ""), hooks.outbox, hooks.retry]
        reply: dict[str, Any] = orjson.loads(await call_script(
            self._client, SCRIPTS["hook_done"], keys,
            [delivery_id, entry_id, outcome, status, error, int(time.time() * 1000), due_ms,
             c.keep_ms, c.disable_after_ms, c.disable_failures, GROUP]))
        if reply.get("disabled"):
            log.warning("webhook endpoint %s disabled after failing continuously",
                        delivery.get("endpoint"))
        return bool(reply.get("disabled"))
