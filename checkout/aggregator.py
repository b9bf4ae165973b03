"""Fold the product outboxes into brand, stream and creator totals and the ledger.

The hot path writes one outbox entry per order move; this task reads them with a consumer
group (at-least-once) and applies each through apply_brand.lua, apply_stream.lua and
apply_creator.lua, one per owner's slot (exactly-once per part by its dedupe record). A
crashed node's pending entries are claimed by a live one after `claim_idle_ms`.

Each node folds only the outboxes of the partitions it holds (checkout/partitions.py), with
one read per outbox (pipelined): outboxes live in their products' slots, and one read over
many would be a CROSSSLOT error on a cluster. The reads do not block (one blocking read per
outbox would hold a connection each); when nothing came the loop waits `block_ms`, or less
when `drain` asks. A partition that moves mid-batch is harmless: the new holder reads the
entries not acknowledged yet again, and the fold scripts' dedupe records make the second fold a
no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import NoScriptError, ResponseError

from checkout.catalog import OUTBOX_GROUP
from checkout.ids import product_of_order
from checkout.partitions import Partitions, every_product, products_of
from checkout.store.keys import (brand_agg_keys, buyer_orders_key, chat_keys,
                                 creator_agg_keys, product_keys, stream_agg_keys)
from checkout.store.replies import stream_reads
from checkout.store.scripts import SCRIPTS, load_all
from checkout.tasks import stop_task
from checkout.order_states import SALES
from checkout.webhook_events import HookRecords, order_event, stock_events

__all__ = ["Aggregator", "outbox_lag", "event_kind", "TICKER_LENGTH", "LEDGER_MAXLEN"]

log = logging.getLogger(__name__)

# A show's latest sales kept: the room shows 10, its stats 20, its replay all of these.
TICKER_LENGTH = 2_000
LEDGER_MAXLEN = 1_000_000
DEDUPE_TTL_S = 30 * 24 * 3600
# The event kinds a stream's and a creator's folds move (apply_stream.lua, apply_creator.lua):
# the others are not sent to their shards at all.
_SALE_KINDS = frozenset({"sale", "sale_reversed"})
_MONEY_KINDS = frozenset({"commission", "refund"})


def event_kind(fields: dict[str, str]) -> list[str]:
    """Which aggregate moves an outbox entry makes: a state change (`order.<state>`,
    transition.lua) or a refund settled (`order.refund`, after_sale.lua, which says its
    own amount); the move to refunded itself folds nothing (its refund did)."""
    state, source = fields["state"], fields.get("from", "")
    if fields["type"] == "order.refund":
        return ["refund"]
    if fields["type"] != f"order.{state}":
        return []
    kinds = []
    if (source, state) in SALES:
        kinds.append("sale")
    if state == "paid":
        kinds.append("commission")
    if state == "voided":
        kinds.append("sale_reversed")
    return kinds


async def outbox_lag(client: redis.Redis, partitions: int) -> int:
    """Outbox entries not folded yet, over every product of every one of the `partitions`,
    whichever node holds it (entries not read, and read but not acknowledged)."""
    total = 0
    for product in await every_product(client, partitions):
        try:
            groups = await client.xinfo_groups(product_keys(product).outbox)
        except ResponseError:
            continue
        for group in groups:
            if group["name"] == OUTBOX_GROUP.encode():
                total += int(group.get("lag") or 0) + int(group["pending"])
    return total


class Aggregator:
    def __init__(self, client: redis.Redis, consumer: str, *, partitions: Partitions,
                 block_ms: int = 500, batch: int = 500, claim_idle_ms: int = 30_000,
                 hooks: HookRecords | None = None, stock_low: int = 0) -> None:
        self._client = client
        self._partitions = partitions
        # Webhook events are recorded in the same pipeline as the fold (hook_emit.lua).
        self._hooks = hooks
        self._stock_low = stock_low
        self._consumer = consumer
        self._block_ms = block_ms
        self._batch = batch
        self._claim_idle_ms = claim_idle_ms
        self._task: asyncio.Task[None] | None = None
        self.applied = 0
        self._idle = asyncio.Event()
        self._wake = asyncio.Event()  # drain asks for a pass now, not after block_ms

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="aggregator")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every outbox entry written so far is applied, by whichever node
        holds its partition (tests, reports)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await outbox_lag(self._client, self._partitions.count) == 0:
                return
            self._idle.clear()
            self._wake.set()
            try:
                await asyncio.wait_for(self._idle.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
        raise TimeoutError("outbox not drained")

    async def _run(self) -> None:
        while True:
            try:
                products = await products_of(self._client, self._partitions.held())
                # Our own pending entries first: a read whose reply was lost (and retried by
                # the client) or a crash mid-batch left them delivered but not applied.
                pending = await self._read(products, "0")
                if pending:
                    await self._apply(pending)
                    continue
                fresh = await self._read(products, ">")
                if fresh:
                    await self._apply(fresh)
                    continue
                await self._claim_stale(products)
                self._idle.set()
                await self._rest()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep folding; a Valkey restart is survivable
                log.exception("aggregator pass failed; retrying")
                await asyncio.sleep(0.5)

    async def _rest(self) -> None:
        """Nothing to fold: wait `block_ms`, or until `drain` asks for a pass."""
        try:
            await asyncio.wait_for(self._wake.wait(), self._block_ms / 1000)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    async def _read(self, products: list[str], start: str) -> list[Any]:
        """One non-blocking read per outbox, in one pipeline (the cluster client splits it
        by node); the batch is shared out between the outboxes."""
        if not products:
            return []
        count = max(1, self._batch // len(products))
        async with self._client.pipeline(transaction=False) as pipe:
            for product in products:
                pipe.xreadgroup(OUTBOX_GROUP, self._consumer, {product_keys(product).outbox: start},
                                count=count)
            replies = await pipe.execute()
        return [(s, items) for reply in replies for s, items in stream_reads(reply)
                if any(f for _, f in items)]

    async def _claim_stale(self, products: list[str]) -> None:
        for product in products:
            outbox = product_keys(product).outbox
            claimed = await self._client.xautoclaim(outbox, OUTBOX_GROUP, self._consumer,
                                                    self._claim_idle_ms, "0-0", count=self._batch)
            if claimed and claimed[1]:
                await self._apply([[outbox.encode(), claimed[1]]])

    async def _apply(self, reply: list[Any]) -> None:
        entries: list[tuple[str, str, dict[str, str]]] = []
        for stream, items in reply:
            for entry_id, fields in items:
                if not fields:
                    continue
                entries.append((stream.decode(), entry_id.decode(),
                                {k.decode(): v.decode() for k, v in fields.items()}))
        async with self._client.pipeline(transaction=False) as pipe:
            for _, _, fields in entries:
                product = product_of_order(fields["order"])
                pipe.hgetall(product_keys(product or "").order(fields["order"]))
            orders = await pipe.execute()
        await self._fold(entries, orders)
        # Acknowledge only once every apply of the batch has succeeded.
        async with self._client.pipeline(transaction=False) as pipe:
            for stream, entry_id, _ in entries:
                pipe.xack(stream, OUTBOX_GROUP, entry_id)
            await pipe.execute()
        self.applied += len(entries)

    async def _fold(self, entries: list[tuple[str, str, dict[str, str]]], orders: list[Any]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for (stream, entry_id, fields), raw in zip(entries, orders):
                order = {k.decode(): v.decode() for k, v in raw.items()}
                order.pop("payment_token", None)
                if order and fields["type"] == "order.reserved":
                    pipe.zadd(buyer_orders_key(order["buyer"]), {order["id"]: int(order["created_ms"])})
                for kind in event_kind(fields) if order else []:
                    self._queue_apply(pipe, kind, order, fields)
                    if kind == "sale" and order.get("stream") and order.get("channel") != "replay":
                        # The chat's `buyer` badge: bought in this show (docs/chat.md), live.
                        pipe.sadd(chat_keys(order["stream"]).buyers, order["buyer"])
                self._queue_hooks(pipe, f"{stream}:{entry_id}", fields, order)
            results = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in results):
            # Valkey restarted and lost its scripts: load them and fold the batch again
            # (the folds' dedupe records make the second pass exact).
            await load_all(self._client)
            await self._fold(entries, orders)
            return
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]

    def _queue_hooks(self, pipe: redis.client.Pipeline, source: str, fields: dict[str, str],
                     order: dict[str, str]) -> None:
        """The webhook events of one outbox entry (checkout/webhook_events.py)."""
        if self._hooks is None or not order:
            return
        at = int(fields["at"])
        # A refund settled (after_sale.lua's `order.refund`, in part or in full) is the
        # order.refunded event; a state change is its state's event; other entries (a
        # return asked or decided) make none. The move to refunded itself: its refund did.
        if fields["type"] == "order.refund":
            state = "refunded"
        elif fields["type"] == f"order.{fields['state']}" and fields["state"] != "refunded":
            state = fields["state"]
        else:
            state = ""
        events = [order_event(order, state, fields.get("from", ""), at, source)]
        if fields["type"] == "order.reserved" and fields.get("left", "") != "":
            events += stock_events(order, int(fields["left"]), self._stock_low, at, source)
        for event in events:
            if event is not None:
                self._hooks.queue(pipe, event)

    @staticmethod
    def _queue_apply(pipe: redis.client.Pipeline, kind: str, order: dict[str, str],
                     event: dict[str, str]) -> None:
        """The folds of one event, one script per owner's slot: the brand's always, the
        stream's for a sale through a show, the creator's for the money of an order through
        a creator (the scripts' headers say what each folds)."""
        # A refund folds its own amounts (an order may have several), once per refund.
        refund: str | None = None
        amounts = ["", "", ""]  # a refund's amount, the commission it reverses, '1' if in full
        if kind == "refund":
            refund = event["refund"]
            amounts = [event["amount_minor"], event["commission_minor"], event.get("full", "")]
        head: list[str | int] = [kind, orjson.dumps(order).decode(), int(event["at"]),
                                 DEDUPE_TTL_S]
        brand = brand_agg_keys(order["brand"])
        _queue_part(pipe, "apply_brand", [brand.applied(order["id"], kind, refund), brand.totals,
                                          brand.minutes, brand.breakdown, brand.orders],
                    [*head, *amounts[:2]])
        if order["stream"] and kind in _SALE_KINDS:
            stream = stream_agg_keys(order["stream"])
            _queue_part(pipe, "apply_stream", [stream.applied(order["id"], kind, refund),
                                               stream.totals, stream.ticker, stream.buyers,
                                               stream.buyers_of(order["product"])],
                        [*head, TICKER_LENGTH])
        if order["creator"] and kind in _MONEY_KINDS:
            creator = creator_agg_keys(order["creator"])
            _queue_part(pipe, "apply_creator", [creator.applied(order["id"], kind, refund),
                                                creator.totals, creator.ledger],
                        [*head, LEDGER_MAXLEN, *amounts])


def _queue_part(pipe: redis.client.Pipeline, name: str, keys: list[str],
                args: list[str | int]) -> None:
    # EVALSHA by name: redis-py's cluster pipeline refuses its `evalsha` method, yet routes
    # the command by its first key.
    pipe.execute_command("EVALSHA", SCRIPTS[name].sha, len(keys), *keys, *args)
