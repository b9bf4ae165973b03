"""After the sale: shipping, delivery, refunds (full or part), returns, the brand's cancel.

Every change of an order is one atomic script step (transition.lua for shipped and
delivered, after_sale.lua for refunds and returns); the gateway follows the order:

- shipping an authorized order (capture on shipment) captures first, then moves it to
  paid and on to shipped. A capture debt is written before the gateway is asked, so a
  node that dies in between leaves the order to the sweeper, never captured and unpaid;
- a refund is opened on the order first (its amount held against what remains, a refund
  owed recorded), then the gateway refunds it under the refund's number (idempotent:
  `seq`), then it is settled: refunded total, commission reversed pro rata
  (`checkout/money.py` `commission_reversed`), stock back if asked, `refunded` when the
  refunds add up to the capture. A refund the gateway could not answer stays owed and the
  sweeper (or the same request again, by its Idempotency-Key) finishes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from checkout.buy import BuyService
from checkout.errors import Refused
from checkout.ids import OrderId, product_of_order
from checkout.money import commission_reversed
from checkout.order_states import SHIPPABLE, IllegalTransition, OrderState, rules_for
from checkout.orders import OUTBOX_MAXLEN, Order, OrderBook, order_from_fields, refunds_of
from checkout.payments import (GatewayTimeout, GatewayUnavailable, InvalidPaymentRequest,
                               PaymentGateway)
from checkout.store.batcher import CommandBatcher
from checkout.store.keys import product_keys
from checkout.store.scripts import SCRIPTS

__all__ = ["Fulfilment", "RefundOutcome", "FULL"]

log = logging.getLogger(__name__)

S = OrderState
FULL = None  # a refund of all that remains
_REFUNDED_RULES = rules_for(S.REFUNDED)
# Why each after_sale.lua refusal answers as it does (the problem `type` and status).
_REFUSALS: dict[str, tuple[int, str]] = {
    "illegal": (409, "order-not-refundable"),
    "exceeds": (409, "refund-exceeds-remaining"),
    "conflict": (422, "idempotency-key-reused"),
    "return_exists": (409, "return-exists"),
    "no_return": (409, "no-return-requested"),
}


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    order: Order
    refund: dict[str, Any]
    pending: bool  # the gateway has not answered yet: the sweeper (or a retry) finishes it


class Fulfilment:
    def __init__(self, batcher: CommandBatcher, orders: OrderBook, buys: BuyService,
                 gateway: PaymentGateway, *, payment_timeout_s: float,
                 capture_owed_after_ms: int, refund_owed_after_ms: int) -> None:
        self._batcher = batcher
        self._orders = orders
        self._buys = buys
        self._gateway = gateway
        self._timeout_s = payment_timeout_s
        self._capture_owed_after_ms = capture_owed_after_ms
        self._refund_owed_after_ms = refund_owed_after_ms

    # -- shipping -------------------------------------------------------------------------

    async def ship(self, order_id: OrderId, carrier: str, tracking: str) -> Order:
        """Mark shipped with its carrier and tracking number; an authorized order (capture
        on shipment) is captured first. Shipping a shipped order again changes nothing."""
        order = await self._get(order_id)
        if order.state is S.SHIPPED:
            return order
        if order.state not in SHIPPABLE:
            raise IllegalTransition(order.state, S.SHIPPED)
        if order.state is S.AUTHORIZED:
            await self._capture(order)
        shipped, _ = await self._orders.transition(
            order_id, S.SHIPPED, "shipped",
            {"carrier": carrier, "tracking": tracking, "shipped_ms": str(_now_ms())})
        return shipped

    async def _capture(self, order: Order) -> None:
        """Capture, then move to paid: the debt first, so a crash leaves it to the sweeper."""
        k = product_keys(order.fields["product"])
        # Durable like the moves (the batcher waits for the AOF): the debt outlives a crash.
        await self._batcher.execute("ZADD", k.captures, "NX",
                                    _now_ms() + self._capture_owed_after_ms, order.id)
        try:
            await asyncio.wait_for(self._gateway.capture(order.id), self._timeout_s)
        except InvalidPaymentRequest:  # voided meanwhile, or the hold is gone
            raise Refused(409, "order-not-capturable",
                          "the payment can no longer be captured") from None
        except (GatewayTimeout, GatewayUnavailable, asyncio.TimeoutError):
            raise Refused(503, "payment-pending",
                          "the payment could not be captured yet; try again") from None
        await self._orders.transition(order.id, S.PAID, "captured_on_shipment")

    async def deliver(self, order_id: OrderId) -> Order:
        order, _ = await self._orders.transition(order_id, S.DELIVERED, "delivered",
                                                 {"delivered_ms": str(_now_ms())})
        return order

    async def cancel(self, order_id: OrderId) -> Order:
        """The brand's cancel before shipment: a held order is cancelled, an authorized one
        voided (the buyer's cancel, checkout/buy.py), a paid one refunded in full with its
        stock back. Shipped or later: IllegalTransition (refund or return instead)."""
        order = await self._get(order_id)
        if order.state is S.PAID or (order.state is S.REFUNDED and order.fields.get(
                "reason") == "cancelled_by_brand"):
            outcome = await self.refund(order_id, "cancel", FULL, restock=True,
                                        reason="cancelled_by_brand")
            return outcome.order
        return await self._buys.cancel(order_id, "cancelled_by_brand")

    # -- refunds ----------------------------------------------------------------------------

    async def refund(self, order_id: OrderId, key: str, amount_minor: int | None, *,
                     restock: bool = False, reason: str = "refunded") -> RefundOutcome:
        """Refund `amount_minor` (FULL: all that remains) once per `key`. All that remains
        of an order refunded in full is nothing: that answers the order and its last refund."""
        try:
            reply = await self._script(order_id, "refund", key,
                                       "" if amount_minor is None else amount_minor,
                                       "1" if restock else "", reason, self._owed_at())
        except Refused:
            order = await self._get(order_id)
            refunds = refunds_of(order.fields)
            if amount_minor is not FULL or order.state is not S.REFUNDED or not refunds:
                raise
            return RefundOutcome(order, refunds[-1], False)
        return await self._pay(order_id, reply["refund"])

    async def finish_refunds(self, order_id: OrderId) -> int:
        """Pay every refund of the order still owed (the sweeper); returns how many settled."""
        order = await self._get(order_id)
        settled = 0
        for refund in refunds_of(order.fields):
            if refund["state"] == "pending":
                outcome = await self._pay(order_id, refund)
                settled += not outcome.pending
        return settled

    async def _pay(self, order_id: OrderId, refund: dict[str, Any]) -> RefundOutcome:
        if refund["state"] == "pending":
            n, amount = int(refund["n"]), int(refund["amount_minor"])
            try:
                done = await asyncio.wait_for(
                    self._gateway.refund(order_id, amount, seq=n), self._timeout_s)
            except InvalidPaymentRequest as exc:
                await self._script(order_id, "fail", n, str(exc))
                raise Refused(409, "refund-refused", "the payment gateway refused the refund",
                              refund=n) from None
            except (GatewayTimeout, GatewayUnavailable, asyncio.TimeoutError):
                log.warning("order %s: refund %d left for the sweeper", order_id, n)
                return RefundOutcome(await self._get(order_id), refund, True)
            await self._settle(order_id, n, amount, done.gateway_ref)
        order = await self._get(order_id)
        return RefundOutcome(order, refunds_of(order.fields)[int(refund["n"]) - 1], False)

    async def _settle(self, order_id: OrderId, n: int, amount: int, gateway_ref: str) -> None:
        """Settle refund n: the commission it reverses is computed on the running total,
        which the script checks is still the one read (another refund may settle first)."""
        while True:
            f = (await self._get(order_id)).fields
            before = int(f.get("refunded_minor") or 0)
            total, commission = int(f["amount_minor"]), int(f["commission_minor"] or 0)
            reversal = (commission_reversed(commission, total, before + amount)
                        - commission_reversed(commission, total, before))
            reply = await self._script(order_id, "settle", n, gateway_ref, before, reversal,
                                       accept=("stale", "same"))
            if reply["r"] == "ok" and reply["order"].get("restocked") == "1" and (
                    self._orders.on_stock_returned is not None):  # the waitlist's turn
                await self._orders.on_stock_returned(f["product"], f["variant"])
            if reply["r"] != "stale":
                return

    # -- returns ----------------------------------------------------------------------------

    async def request_return(self, order_id: OrderId, reason: str) -> Order:
        reply = await self._script(order_id, "return", reason, accept=("same",))
        return order_from_fields(reply["order"])

    async def decide_return(self, order_id: OrderId, approve: bool, note: str = "",
                            amount_minor: int | None = None,
                            restock: bool = False) -> RefundOutcome | Order:
        """Reject, or approve with its refund (all that remains, or `amount_minor`) and the
        stock back if asked: the approval and the refund's opening are one step."""
        reply = await self._script(order_id, "decide", "approved" if approve else "rejected",
                                   note, "" if amount_minor is None else amount_minor,
                                   "1" if restock else "", self._owed_at(), accept=("same",))
        order = order_from_fields(reply["order"])
        if not approve:
            return order
        refund = reply.get("refund") or refunds_of(order.fields)[
            int(order.fields["return_refund"]) - 1]
        return await self._pay(order_id, refund)

    # -- helpers ------------------------------------------------------------------------------

    async def _script(self, order_id: OrderId, op: str, *args: Any,
                      accept: tuple[str, ...] = ()) -> dict[str, Any]:
        product = product_of_order(order_id)
        if product is None:
            raise KeyError(order_id)
        k = product_keys(product)
        keys = [k.order(order_id), k.stock, k.offers, k.bought, k.outbox, k.refunds]
        reply: dict[str, Any] = orjson.loads(await self._batcher.script(
            SCRIPTS["after_sale"], keys,
            [op, order_id, _now_ms(), OUTBOX_MAXLEN, _REFUNDED_RULES, *args]))
        r = reply["r"]
        if r in ("ok", "replay") or r in accept:
            return reply
        if r == "missing":
            raise KeyError(order_id)
        status, kind = _REFUSALS[r]
        extra = {k: v for k, v in reply.items() if k != "r"}
        if "remaining" in extra:
            extra["remaining_minor"] = extra.pop("remaining")
        raise Refused(status, kind, _DETAILS[kind], **extra)

    def _owed_at(self) -> int:
        return _now_ms() + self._refund_owed_after_ms

    async def _get(self, order_id: OrderId) -> Order:
        order = await self._orders.get(order_id)
        if order is None:
            raise KeyError(order_id)
        return order


_DETAILS = {
    "order-not-refundable": "only a captured order (paid, shipped, delivered) can be refunded",
    "refund-exceeds-remaining": "the refund is more than what remains to refund",
    "idempotency-key-reused": "this Idempotency-Key was used for a different refund",
    "return-exists": "this order has a return already",
    "no-return-requested": "no return is waiting for a decision",
}


def _now_ms() -> int:
    return int(time.time() * 1000)
