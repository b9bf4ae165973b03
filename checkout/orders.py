"""Orders: reading them and moving them through the state table, in the product's slot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson
import redis.asyncio as redis

from checkout.store.batcher import CommandBatcher
from checkout.ids import OrderId, ProductId, VariantId, product_of_order
from checkout.store.keys import product_keys
from checkout.order_states import (DEADLINES, TRANSITIONS, IllegalTransition, OrderState,
                                   OutOfTime, StockEffect, rules_for)
from checkout.store.scripts import SCRIPTS

__all__ = ["Order", "OrderBook", "OUTBOX_MAXLEN", "order_from_fields", "refunds_of"]

# Approximate cap of each product's outbox; the aggregator keeps up far below it.
OUTBOX_MAXLEN = 1_000_000

_RETURNS_STOCK = frozenset(dst for (_, dst), effect in TRANSITIONS.items()
                           if effect in (StockEffect.RELEASE, StockEffect.RESTORE))
# Snapshots kept as JSON in the order's hash (written with the authorization, checkout/buy.py).
_JSON_FIELDS = ("ship_to", "card")
_INT_FIELDS = ("qty", "unit_price_minor", "amount_minor", "commission_bps", "commission_minor",
               "created_ms", "updated_ms", "expires_ms", "refunded_minor", "refund_pending_minor",
               "commission_reversed_minor", "refund_count", "shipped_ms", "delivered_ms",
               "return_requested_ms", "return_decided_ms", "viewer_delay_ms")
# Kept in the order's hash by after_sale.lua, shown as the `refunds` list instead.
_REFUND_PREFIXES = ("refund:", "refund_key:")
# What a refund shows (its Idempotency-Key and fingerprint stay on the server).
_REFUND_PUBLIC = ("n", "amount_minor", "restock", "reason", "state", "at_ms", "done_ms",
                  "commission_reversed_minor")


@dataclass(frozen=True, slots=True)
class Order:
    """An order as clients see it (the payment token never leaves the server)."""

    fields: dict[str, Any]

    @property
    def id(self) -> OrderId:
        return OrderId(self.fields["id"])

    @property
    def state(self) -> OrderState:
        return OrderState(self.fields["state"])

    def public(self) -> dict[str, Any]:
        data = {k: v for k, v in self.fields.items()
                if k != "payment_token" and not k.startswith(_REFUND_PREFIXES)}
        data["deal"] = bool(data.get("deal"))
        data["refunds"] = [{k: r[k] for k in _REFUND_PUBLIC if k in r}
                           for r in refunds_of(self.fields)]
        data["refunded_minor"] = data.get("refunded_minor") or 0
        data["restocked"] = data.get("restocked") == "1"
        for name in _JSON_FIELDS:
            data[name] = orjson.loads(data[name]) if data.get(name) else None
        return data


def refunds_of(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """The order's refunds, oldest first (after_sale.lua keeps them as `refund:<n>`)."""
    count = int(fields.get("refund_count") or 0)
    return [orjson.loads(fields[f"refund:{n}"]) for n in range(1, count + 1)
            if f"refund:{n}" in fields]


def order_from_fields(raw: dict[Any, Any]) -> Order:
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        k = key.decode() if isinstance(key, bytes) else str(key)
        v = value.decode() if isinstance(value, bytes) else value
        if k in _INT_FIELDS and v not in ("", None):
            v = int(v)
        fields[k] = v
    return Order(fields)


StockReturned = Callable[[ProductId, VariantId], Awaitable[None]]


class OrderBook:
    def __init__(self, client: redis.Redis, batcher: CommandBatcher) -> None:
        self._client = client
        self._batcher = batcher
        # Called (product, variant) after any move that gives stock back (decline, expiry,
        # cancel, void), also when a retried move finds it done: the waitlist hangs here.
        self.on_stock_returned: StockReturned | None = None

    async def get(self, order_id: OrderId) -> Order | None:
        product = product_of_order(order_id)
        if product is None:
            return None
        raw = await self._client.hgetall(product_keys(product).order(order_id))
        return order_from_fields(raw) if raw else None

    async def get_many(self, order_ids: list[OrderId]) -> list[Order | None]:
        """The orders, in one round trip (None for an id with no order)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for order_id in order_ids:
                product = product_of_order(order_id)
                pipe.hgetall(product_keys(product or "").order(order_id))
            raws = await pipe.execute()
        return [order_from_fields(raw) if raw else None for raw in raws]

    async def transition(self, order_id: OrderId, target: OrderState, reason: str = "",
                         extra: dict[str, str] | None = None, *,
                         capture_owed_at_ms: int = 0, now_ms: int | None = None,
                         payment_window_ms: int = 0) -> tuple[Order, bool]:
        """Move the order; returns (order, changed). Raises IllegalTransition (OutOfTime
        when the deadline rule for `target` refuses) or KeyError.

        `capture_owed_at_ms` (with target AUTHORIZED): when the sweeper should capture the
        order if nobody has by then. `now_ms`: the clock the deadline rule reads (default:
        Valkey's). `payment_window_ms` (with target PAYING): the claim's new deadline."""
        product = product_of_order(order_id)
        if product is None:
            raise KeyError(order_id)
        try:
            rules = rules_for(target)
        except ValueError:  # no state moves to `target` (e.g. back to reserved)
            current = await self.get(order_id)
            raise IllegalTransition(current.state if current else "missing", target) from None
        k = product_keys(product)
        keys = [k.order(order_id), k.stock, k.offers, k.bought, k.outbox, k.expiry, k.captures,
                k.voids, k.lots]
        deadline = DEADLINES.get(target)
        args = [order_id, target.value, rules, reason, orjson.dumps(extra or {}).decode(),
                OUTBOX_MAXLEN, capture_owed_at_ms, deadline.value if deadline else "",
                "" if now_ms is None else now_ms, payment_window_ms]
        reply = orjson.loads(await self._batcher.script(SCRIPTS["transition"], keys, args))
        match reply["r"]:
            case "ok" | "same":
                order = order_from_fields(reply["order"])
                if target in _RETURNS_STOCK and self.on_stock_returned is not None:
                    await self.on_stock_returned(order.fields["product"], order.fields["variant"])
                return order, reply["r"] == "ok"
            case "illegal":
                raise IllegalTransition(reply["state"], target)
            case "late" | "early":
                raise OutOfTime(reply["state"], target, late=reply["r"] == "late")
            case _:
                raise KeyError(order_id)

    async def claim(self, order_id: OrderId, payment_window_ms: int) -> Order:
        """Take the right to ask the gateway for this order's money (reserved -> paying),
        before its hold runs out. A payer retrying its own claim gets the order back."""
        order, _ = await self.transition(order_id, OrderState.PAYING,
                                         payment_window_ms=payment_window_ms)
        return order

    async def clear_void_debt(self, order_id: OrderId) -> None:
        """The gateway released the hold (or had none): nothing is owed any more."""
        product = product_of_order(order_id)
        if product is not None:
            await self._client.zrem(product_keys(product).voids, order_id)
