"""Outbound webhook events: their names, which change makes which, their payloads, and the
one way they are recorded (hook_emit.lua, once per owner's webhook partition). Delivery is
the node's (live/webhooks).

Each kind of event has one producer: order events come from the aggregator's fold of the
product outboxes (an order state's event is one entry of `ORDER_EVENTS`), stock events from
the same fold (the outbox entry of a reservation carries the stock left), stream events from
the stream store right after its lifecycle script. An event's id is derived from what made it,
so a producer that runs twice (the fold is at-least-once) records it once.
Payloads are versioned: docs/webhooks.md has the JSON schema of each `data`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

import orjson
import redis.asyncio as redis

from checkout.order_states import SALES
from checkout.partitions import partition_of
from checkout.store.keys import hook_keys, key_part
from checkout.store.scripts import SCRIPTS, call_script

__all__ = ["EventType", "ORDER_EVENTS", "STREAM_EVENTS", "PAYLOAD_VERSION", "OPERATOR_OWNER",
           "HookEvent", "HookRecords", "brand_owner", "owner_partition", "order_event",
           "stream_event", "stock_events", "event_id"]

PAYLOAD_VERSION = 1
OPERATOR_OWNER = "operator"  # the operator's endpoints get every brand's events


class EventType(StrEnum):
    ORDER_PAID = "order.paid"
    ORDER_SHIPPED = "order.shipped"
    ORDER_REFUNDED = "order.refunded"
    ORDER_CANCELLED = "order.cancelled"
    STREAM_SCHEDULED = "stream.scheduled"
    STREAM_LIVE = "stream.live"
    STREAM_ENDED = "stream.ended"
    STOCK_LOW = "stock.low"
    PRODUCT_SOLD_OUT = "product.sold_out"


# An order's new state -> the event it makes (one line per state; a state not here makes
# none). The sale (a move of `SALES`: to authorized, money held, or straight to paid, money
# captured at once) makes `order.paid`, as the aggregator counts it; an order that never
# sold (declined, expired, a dropped cart hold) tells nobody.
ORDER_EVENTS: dict[str, EventType] = {
    "shipped": EventType.ORDER_SHIPPED,
    "refunded": EventType.ORDER_REFUNDED,
    "voided": EventType.ORDER_CANCELLED,
}
STREAM_EVENTS: dict[str, EventType] = {
    "scheduled": EventType.STREAM_SCHEDULED,
    "live": EventType.STREAM_LIVE,
    "ended": EventType.STREAM_ENDED,
    "cancelled": EventType.STREAM_ENDED,  # a show called off before it started
}
# The order fields a payload carries: no buyer, no address, no payment token.
_ORDER_FIELDS = ("id", "product", "title", "variant", "brand", "stream", "creator", "currency")
_ORDER_AMOUNTS = ("qty", "unit_price_minor", "amount_minor", "commission_minor")


def brand_owner(brand: str) -> str:
    return f"brand:{brand}"


def event_id(source: str) -> str:
    """The event's id (the `webhook-id` header) from what made it: the same source, the same
    id, whichever node or pass records it."""
    return "msg_" + hashlib.sha256(source.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class HookEvent:
    id: str
    type: EventType
    resource: str  # `order:<id>`, `stream:<id>`, `product:<id>`: delivered in order per resource
    owners: tuple[str, ...]  # whose endpoints may get it (the operator's always do)
    at_ms: int
    data: Mapping[str, Any]

    def body(self) -> bytes:
        """The payload exactly as it is signed and sent, every time."""
        stamp = datetime.fromtimestamp(self.at_ms / 1000, tz=timezone.utc)
        return orjson.dumps({"id": self.id, "type": self.type.value, "version": PAYLOAD_VERSION,
                             "timestamp": stamp.isoformat().replace("+00:00", "Z"),
                             "data": self.data})


def order_event(order: Mapping[str, str], state: str, previous: str, at_ms: int,
                source: str) -> HookEvent | None:
    """The event an order's move to `state` makes, if any; `source` names the move (its
    outbox entry)."""
    kind = EventType.ORDER_PAID if (previous, state) in SALES else ORDER_EVENTS.get(state)
    if kind is None or not order:
        return None
    data: dict[str, Any] = {k: order.get(k, "") for k in _ORDER_FIELDS}
    data.update({k: int(order.get(k) or 0) for k in _ORDER_AMOUNTS})
    data.update(state=state, previous_state=previous, channel=order.get("channel", ""),
                created_ms=int(order.get("created_ms") or 0), at_ms=at_ms)
    return HookEvent(event_id(f"order:{source}"), kind, f"order:{order['id']}",
                     (brand_owner(order["brand"]),), at_ms, data)


def stream_event(stream: Mapping[str, Any], brands: Sequence[str], at_ms: int) -> HookEvent | None:
    """The event a stream's (new) state makes; it goes to the brands of its lineup."""
    kind = STREAM_EVENTS.get(str(stream["state"]))
    if kind is None:
        return None
    data = {"id": stream["id"], "state": stream["state"], "title": stream.get("title", ""),
            "creator": stream.get("creator_id", ""), "lineup": list(stream.get("lineup", [])),
            "scheduled_ms": stream.get("scheduled_ms") or 0,
            "started_ms": stream.get("started_ms") or 0, "ended_ms": stream.get("ended_ms") or 0,
            "at_ms": at_ms}
    return HookEvent(event_id(f"stream:{stream['id']}:{stream['state']}"), kind,
                     f"stream:{stream['id']}", tuple(brand_owner(b) for b in sorted(set(brands))),
                     at_ms, data)


def stock_events(order: Mapping[str, str], left: int, low_at: int, at_ms: int,
                 source: str) -> list[HookEvent]:
    """A reservation that left `left` units of its variant: `product.sold_out` at none left,
    `stock.low` when it crossed `low_at` (it had more before this reservation)."""
    if not order:
        return []
    qty = int(order.get("qty") or 0)
    data = {"product": order["id"].rpartition(".")[0], "variant": order.get("variant", ""),
            "brand": order["brand"], "title": order.get("title", ""), "available": left,
            "at_ms": at_ms}
    resource, owners = f"product:{data['product']}", (brand_owner(order["brand"]),)
    events = []
    if left <= low_at < left + qty and left > 0:
        events.append(HookEvent(event_id(f"stock.low:{source}"), EventType.STOCK_LOW, resource,
                                owners, at_ms, {**data, "threshold": low_at}))
    if left == 0 and qty > 0:
        events.append(HookEvent(event_id(f"sold_out:{source}"), EventType.PRODUCT_SOLD_OUT,
                                resource, owners, at_ms, data))
    return events


def owner_partition(owner: str, count: int) -> int:
    """The webhook partition of an owner (`brand:<id>`, `operator`): where its endpoints,
    their deliveries and the events they get live (checkout/store/keys.py `hook_keys`). The
    same crc32 mapping as products' (checkout/partitions.py), and the same leases: the node
    holding partition k delivers its webhooks too."""
    return partition_of(owner, count)


@dataclass(frozen=True, slots=True)
class HookRecords:
    """Records events (hook_emit.lua): the producers' one way in."""

    keep_ms: int  # how long an event and a finished delivery are kept (the log's reach)
    log_keep: int  # deliveries listed per endpoint
    partitions: int  # webhook partitions (the product partitions' count: one lease each)

    def args(self, event: HookEvent) -> list[tuple[list[str], list[Any]]]:
        """One hook_emit call per partition of the event's owners and the operator's: the
        brand's, and the operator's when it is another (a show's lineup: one per brand's)."""
        owners: dict[int, list[str]] = {}
        for owner in (OPERATOR_OWNER, *event.owners):
            owners.setdefault(owner_partition(owner, self.partitions), []).append(owner)
        calls = []
        now, body = int(time.time() * 1000), event.body()
        for partition, mine in sorted(owners.items()):
            hooks = hook_keys(partition)
            keys = [hooks.event(event.id), hooks.outbox, hooks.counter,
                    *(hooks.owner(o) for o in mine)]
            calls.append((keys, ["event", event.id, event.type.value, event.resource,
                                 key_part(event.resource), body, hooks.prefix, "",
                                 now, self.keep_ms, self.log_keep, hooks.delivery_prefix]))
        return calls

    def queue(self, pipe: redis.client.Pipeline, event: HookEvent) -> None:
        """Record in `pipe` (the aggregator's fold: no round trip of its own)."""
        for keys, args in self.args(event):
            # EVALSHA by name: redis-py's cluster pipeline refuses its `evalsha` method.
            pipe.execute_command("EVALSHA", SCRIPTS["hook_emit"].sha, len(keys), *keys, *args)

    async def record(self, client: redis.Redis, event: HookEvent) -> list[str]:
        """Record now; the ids of the deliveries queued (none: nobody wants it)."""
        made: list[str] = []
        for keys, args in self.args(event):
            reply = orjson.loads(await call_script(client, SCRIPTS["hook_emit"], keys, args))
            made += reply.get("deliveries", [])
        return made

    async def resend(self, client: redis.Redis, event: str, endpoint: str,
                     owner: str) -> str | None:
        """One more delivery of a recorded event to one endpoint of `owner` (the event is
        recorded in the endpoint's partition); None if either is gone."""
        hooks = hook_keys(owner_partition(owner, self.partitions))
        keys = [hooks.event(event), hooks.outbox, hooks.counter]
        reply = orjson.loads(await call_script(client, SCRIPTS["hook_emit"], keys, [
            "resend", event, "", "", "", "", hooks.prefix, endpoint, int(time.time() * 1000),
            self.keep_ms, self.log_keep, hooks.delivery_prefix]))
        return reply["deliveries"][0] if reply["r"] == "ok" else None
