"""The one-time move of webhook data from the legacy `{wh}` slot into the owners' webhook
partitions (docs/webhooks.md "Migration"), run by every node at start before it records or
delivers anything; a no-op (one EXISTS) once done or where there was nothing.

Before the partitions every owner's endpoints, events and deliveries were in `{wh}`, whose
outbox stream every node made at start: that stream is the sign that legacy data may be
left, and it is deleted last. Each endpoint moves in one script in its partition's slot
(hook_adopt.lua: its record, log, deliveries, the events they name and its queues, each
queue's head back into the outbox or the retry set), then its legacy keys are deleted; a
move interrupted between the two is found done when run again. Nothing queued is dropped:
a delivery handed out and not settled before the move is sent again (at least once), in
its queue's order. What no endpoint owns any more (queues of a deleted endpoint, whose
deliveries the dispatcher would have given up anyway) is deleted with the rest. One node
moves at a time (a lock with an expiry, renewed per endpoint); the others wait for it.
Stop every node of the previous version before starting this one: a legacy node still
running would keep writing to `{wh}`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any, cast

import orjson
import redis.asyncio as redis

from checkout.store.keys import LEGACY_HOOKS, hook_keys, key_part
from checkout.store.replies import text, text_hash
from checkout.store.scripts import SCRIPTS, call_script
from checkout.webhook_events import owner_partition

__all__ = ["migrate_legacy_hooks"]

log = logging.getLogger(__name__)

OLD = LEGACY_HOOKS
LOCK = f"{OLD.prefix}migrating"  # string: the node moving, with an expiry
LOCK_MS = 60_000


async def migrate_legacy_hooks(client: redis.Redis, partitions: int) -> int:
    """Move whatever the legacy slot holds; returns how many endpoints this call moved."""
    me = f"{socket.gethostname()}:{os.getpid()}"
    while await client.exists(OLD.outbox):
        if await client.set(LOCK, me, nx=True, px=LOCK_MS):
            try:
                return await _move_all(client, partitions, me)
            finally:
                await client.delete(LOCK)
        await asyncio.sleep(0.2)  # another node is moving them
    return 0


async def _move_all(client: redis.Redis, partitions: int, me: str) -> int:
    # One SCAN of the keyspace (every primary's, on a cluster) finds every legacy key.
    legacy = sorted({text(k) async for k in client.scan_iter(match=f"{OLD.prefix}*",
                                                             count=1000)})
    queues: dict[str, list[str]] = {}  # endpoint id (as a key part) -> its queues
    for key in legacy:
        if key.startswith(f"{OLD.prefix}q:"):
            queues.setdefault(key[len(OLD.prefix) + 2:].split(":")[0], []).append(key)
    moved = 0
    for owner_key in (k for k in legacy if k.startswith(f"{OLD.prefix}owner:")):
        for endpoint_id in sorted(text(m) for m in await client.smembers(owner_key)):
            await client.set(LOCK, me, px=LOCK_MS)
            if await _move_endpoint(client, partitions, endpoint_id,
                                    queues.get(key_part(endpoint_id), [])):
                moved += 1
            await client.srem(owner_key, endpoint_id)
    # What is left belongs to no endpoint (or is an event every mover copied): gone, the
    # outbox last, so that a crash before it makes the next start look again.
    for key in legacy:
        if key not in (OLD.outbox, LOCK):
            await client.unlink(key)
    await client.unlink(OLD.outbox)
    if moved:
        log.warning("moved %d webhook endpoints from the legacy {wh} slot into %d partitions",
                    moved, partitions)
    return moved


async def _move_endpoint(client: redis.Redis, partitions: int, endpoint_id: str,
                         queue_keys: list[str]) -> bool:
    """One endpoint and its queues into its partition; False if it was gone (or moved
    before)."""
    record = text_hash(await client.hgetall(OLD.endpoint(endpoint_id)))
    if not record:
        return False
    new = hook_keys(owner_partition(record["owner"], partitions))
    scored = await client.zrange(OLD.log(endpoint_id), 0, -1, withscores=True)
    logged = [(text(d), int(ms)) for d, ms in cast(list[tuple[bytes, float]], scored)]
    queues = [(key, [text(d) for d in await client.lrange(key, 0, -1)]) for key in queue_keys]
    delivery_ids = sorted({d for d, _ in logged} | {d for _, items in queues for d in items})
    deliveries: list[dict[str, Any]] = []
    event_ids: set[str] = set()
    for delivery_id in delivery_ids:
        fields, pttl = await _hash_and_ttl(client, OLD.delivery(delivery_id))
        if not fields:
            continue
        if fields.get("queue", "").startswith(OLD.prefix):
            fields["queue"] = new.prefix + fields["queue"][len(OLD.prefix):]
        event_ids.add(fields.get("event", ""))
        deliveries.append({"key": new.delivery(delivery_id), "fields": _flat(fields),
                           "pttl": pttl})
    events: list[dict[str, Any]] = []
    for event_id in sorted(event_ids - {""}):
        fields, pttl = await _hash_and_ttl(client, OLD.event(event_id))
        if fields:
            events.append({"key": new.event(event_id), "fields": _flat(fields), "pttl": pttl})
    moved_queues: list[dict[str, Any]] = []
    for key, items in queues:
        due = await client.zscore(OLD.retry, items[0]) if items else None
        moved_queues.append({"key": new.prefix + key[len(OLD.prefix):], "items": items,
                             "due": int(due or 0)})
    payload = {"endpoint": _flat(record), "log": [[d, ms] for d, ms in logged],
               "deliveries": deliveries, "events": events, "queues": moved_queues}
    reply = await call_script(client, SCRIPTS["hook_adopt"], [
        new.endpoint(endpoint_id), new.owner(record["owner"]), new.log(endpoint_id),
        new.outbox, new.retry], [endpoint_id, orjson.dumps(payload)])
    for key in [OLD.endpoint(endpoint_id), OLD.log(endpoint_id), *queue_keys,
                *(OLD.delivery(d) for d in delivery_ids)]:
        await client.unlink(key)
    if delivery_ids:
        await client.zrem(OLD.retry, *delivery_ids)
    return text(reply) == "ok"


async def _hash_and_ttl(client: redis.Redis, key: str) -> tuple[dict[str, str], int]:
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(key)
        pipe.pttl(key)
        raw, pttl = await pipe.execute()
    return text_hash(raw), int(pttl)


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in sorted(fields.items()) for part in pair]

