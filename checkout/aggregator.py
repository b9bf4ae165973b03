"""Fold the product outboxes into brand, stream and creator totals and the ledger.

The hot path writes one outbox entry per order move; this task reads them with a consumer
group (at-least-once) and applies each through apply.lua (exactly-once by its dedupe
record). A crashed node's pending entries are claimed by a live one after `claim_idle_ms`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import KeyT, StreamIdT

from checkout.catalog import OUTBOX_GROUP
from checkout.ids import product_of_order
from checkout.store.keys import ACTIVE_PRODUCTS, agg_key, buyer_orders_key, chat_keys, product_keys
from checkout.store.replies import stream_reads, text
from checkout.store.scripts import SCRIPTS, load_all
from checkout.tasks import stop_task
from checkout.order_states import SALES
from checkout.webhook_events import HookRecords, order_event, stock_events

__all__ = ["Aggregator", "outbox_lag", "event_kind", "TICKER_LENGTH", "LEDGER_MAXLEN"]

log = logging.getLogger(__name__)

TICKER_LENGTH = 20
LEDGER_MAXLEN = 1_000_000
DEDUPE_TTL_S = 30 * 24 * 3600


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


async def outbox_lag(client: redis.Redis) -> int:
    """Outbox entries not folded yet, over every product (entries not read, and read but
    not acknowledged)."""
    total = 0
    for raw in await client.smembers(ACTIVE_PRODUCTS):
        try:
            groups = await client.xinfo_groups(product_keys(text(raw)).outbox)
        except ResponseError:
            continue
        for group in groups:
            if group["name"] == OUTBOX_GROUP.encode():
                total += int(group.get("lag") or 0) + int(group["pending"])
    return total


class Aggregator:
    def __init__(self, client: redis.Redis, consumer: str, *, block_ms: int = 500,
                 batch: int = 500, claim_idle_ms: int = 30_000,
                 hooks: HookRecords | None = None, stock_low: int = 0) -> None:
        self._client = client
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

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="aggregator")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every outbox entry written so far is applied (tests, reports)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await outbox_lag(self._client) == 0:
                return
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
        raise TimeoutError("outbox not drained")

    async def _run(self) -> None:
        while True:
            try:
                products = [text(p) for p in await self._client.smembers(ACTIVE_PRODUCTS)]
                if not products:
                    self._idle.set()
                    await asyncio.sleep(self._block_ms / 1000)
                    continue
                # Our own pending entries first: a read whose reply was lost (and retried by
                # the client) or a crash mid-batch left them delivered but not applied.
                pending = await self._read(products, "0", block=None)
                if pending:
                    await self._apply(pending)
                    continue
                fresh = await self._read(products, ">", block=self._block_ms)
                if fresh:
                    await self._apply(fresh)
                else:
                    await self._claim_stale(products)
                    self._idle.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep folding; a Valkey restart is survivable
                log.exception("aggregator pass failed; retrying")
                await asyncio.sleep(0.5)

    async def _read(self, products: list[str], start: str, block: int | None) -> list[Any]:
        streams: dict[KeyT, StreamIdT] = {product_keys(p).outbox: start for p in products}
        reply = await self._client.xreadgroup(OUTBOX_GROUP, self._consumer, streams,
                                              count=self._batch, block=block)
        return [(s, items) for s, items in stream_reads(reply) if any(f for _, f in items)]

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
                    if kind == "sale" and order.get("stream"):
                        # The chat's `buyer` badge: bought in this show (docs/chat.md).
                        pipe.sadd(chat_keys(order["stream"]).buyers, order["buyer"])
                self._queue_hooks(pipe, f"{stream}:{entry_id}", fields, order)
            results = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in results):
            # Valkey restarted and lost its scripts: load them and fold the batch again
            # (apply.lua's dedupe records make the second pass exact).
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
        script = SCRIPTS["apply"]
        brand, stream = order["brand"], order["stream"]
        # A refund folds its own amounts (an order may have several), once per refund.
        applied = agg_key("applied", order["id"], kind)
        refund = ["", "", ""]
        if kind == "refund":
            applied = agg_key("applied", order["id"], kind, event["refund"])
            refund = [event["amount_minor"], event["commission_minor"], event.get("full", "")]
        keys = [applied, agg_key("brand", brand),
                agg_key("creator", order["creator"]), agg_key("stream", stream),
                agg_key("ledger", order["creator"]), agg_key("brandmin", brand), agg_key("brandproducts", brand),
                agg_key("ticker", stream), agg_key("brandorders", brand),
                agg_key("buyers", stream), agg_key("showbuyers", stream, order["product"])]
        pipe.evalsha(script.sha, len(keys), *keys, kind, orjson.dumps(order).decode(),
                     int(event["at"]), DEDUPE_TTL_S, TICKER_LENGTH, LEDGER_MAXLEN, *refund)
