"""The one-tap buy: reserve atomically (reserve.lua), then settle the payment.

An order is acknowledged only after Valkey has made it durable (the batcher's durability
mode), and every step is idempotent, so a client that lost its answer retries with the same
Idempotency-Key and lands on exactly one outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from checkout.batcher import CommandBatcher
from checkout.ids import new_order_id
from checkout.keys import idem_binding_key, product_keys
from checkout.order_states import IllegalTransition, OrderState
from checkout.orders import OUTBOX_MAXLEN, Order, OrderBook, order_from_fields
from checkout.payments import (GatewayTimeout, GatewayUnavailable, InvalidPaymentRequest,
                               PaymentGateway)
from checkout.scripts import SCRIPTS

__all__ = ["BuyRequest", "BuyResult", "BuyService", "Rejected", "KeyReused"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BuyRequest:
    buyer: str
    product: str
    variant: str
    quantity: int
    idempotency_key: str
    channel: str  # stream | link | showcase | waitlist
    stream: str = ""
    link_creator: str = ""
    link_code: str = ""
    expected_unit_price: int | None = None
    payment_token: str = ""

    def fingerprint(self) -> str:
        body = orjson.dumps([self.product, self.variant, self.quantity, self.stream,
                             self.channel, self.link_code, self.expected_unit_price])
        return hashlib.sha256(body).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class BuyResult:
    order: Order
    replayed: bool
    payment: str  # settled | pending | capture_pending | declined | expired | not_requested


class Rejected(Exception):
    """The buy rules said no; `code` is the stable reason (sold_out, limit_reached, ...)."""

    def __init__(self, code: str, details: dict[str, Any]) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


class KeyReused(Exception):
    """The Idempotency-Key was already used for a different request."""


class BuyService:
    def __init__(self, batcher: CommandBatcher, orders: OrderBook, gateway: PaymentGateway, *,
                 hold_ms: int, idempotency_ttl_s: int, capture_immediately: bool,
                 payment_timeout_s: float, payment_attempts: int = 3,
                 capture_owed_after_ms: int = 30_000) -> None:
        self._batcher = batcher
        self._orders = orders
        self._gateway = gateway
        self._hold_ms = hold_ms
        self._idem_ttl_s = idempotency_ttl_s
        self._capture_immediately = capture_immediately
        self._payment_timeout_s = payment_timeout_s
        self._payment_attempts = payment_attempts
        self._capture_owed_after_ms = capture_owed_after_ms

    async def buy(self, req: BuyRequest) -> BuyResult:
        """Reserve and pay in one call: the mid-stream one-tap path."""
        reserved = await self.reserve(req)
        state = reserved.order.state
        if state is OrderState.AUTHORIZED and self._capture_immediately:
            return await self._capture(reserved.order, reserved.replayed)  # a capture owed
        if state is not OrderState.RESERVED:
            return reserved
        return await self.settle(reserved.order, replayed=reserved.replayed,
                                 payment_token=req.payment_token)

    async def reserve(self, req: BuyRequest, hold_ms: int | None = None) -> BuyResult:
        fingerprint = req.fingerprint()
        bound = await self._batcher.script(
            SCRIPTS["bind_key"], [idem_binding_key(req.buyer, req.idempotency_key)],
            [fingerprint, self._idem_ttl_s])
        if bound.decode() != fingerprint:
            raise KeyReused(req.idempotency_key)
        k = product_keys(req.product)
        order_id = new_order_id(req.product)  # type: ignore[arg-type]
        keys = [k.product, k.stock, k.offers, k.bought, k.idem(req.buyer, req.idempotency_key),
                k.order(order_id), k.outbox, k.expiry, k.invited]
        args = [req.buyer, fingerprint, req.stream, req.variant, req.quantity, order_id,
                hold_ms if hold_ms is not None else self._hold_ms, self._idem_ttl_s,
                req.link_creator, req.link_code,
                "" if req.expected_unit_price is None else req.expected_unit_price,
                req.payment_token, req.channel, OUTBOX_MAXLEN]
        reply = orjson.loads(await self._batcher.script(SCRIPTS["reserve"], keys, args))
        match reply["r"]:
            case "ok":
                return BuyResult(order_from_fields(reply["order"]), False, "not_requested")
            case "conflict":
                raise KeyReused(req.idempotency_key)
            case "rejected":
                raise Rejected(reply.pop("code"), {k: v for k, v in reply.items() if k != "r"})
            case "replay":
                stored = reply["stored"]
                if stored["r"] == "rejected":
                    raise Rejected(stored.pop("code"),
                                   {k: v for k, v in stored.items() if k != "r"})
                order = await self._orders.get(stored["order_id"])
                if order is None:
                    raise RuntimeError(f"idempotency record names a missing order {stored}")
                return BuyResult(order, True, _payment_word(order.state))
        raise RuntimeError(f"unexpected reserve reply {reply!r}")

    async def settle(self, order: Order, *, replayed: bool = False,
                     payment_token: str = "") -> BuyResult:
        """Authorize (and capture) a reserved order; decline or void gives stock back.

        `payment_token` is used when the order was reserved without one (cart, waitlist).
        """
        f = order.fields
        try:
            auth = await self._gateway_call(
                self._gateway.authorize, f["id"], f["amount_minor"], f["currency"],
                f.get("payment_token") or payment_token)
        except InvalidPaymentRequest as exc:
            declined, _ = await self._orders.transition(f["id"], OrderState.DECLINED,
                                                        "invalid_payment_method")
            log.info("order %s: invalid payment request: %s", f["id"], exc)
            return BuyResult(declined, replayed, "declined")
        except (GatewayTimeout, GatewayUnavailable, asyncio.TimeoutError):
            # Outcome unknown: the order stays reserved; a retry with the same key or the
            # expiry sweeper (which voids first) settles it exactly once.
            return BuyResult(order, replayed, "pending")
        if not auth.approved:
            declined, _ = await self._orders.transition(f["id"], OrderState.DECLINED,
                                                        auth.decline_code or "card_declined")
            return BuyResult(declined, replayed, "declined")
        try:
            # In immediate mode the capture is owed from now: if this node dies before it
            # captures, the sweeper does it once `capture_owed_after_ms` has passed.
            owed = (int(time.time() * 1000) + self._capture_owed_after_ms
                    if self._capture_immediately else 0)
            authorized, _ = await self._orders.transition(f["id"], OrderState.AUTHORIZED, "",
                                                          {"gateway_ref": auth.gateway_ref},
                                                          capture_owed_at_ms=owed)
        except IllegalTransition as exc:
            if exc.current in (OrderState.AUTHORIZED, OrderState.PAID):
                authorized = await self._orders.get(f["id"])  # a concurrent twin got here
                assert authorized is not None
            elif exc.current == OrderState.EXPIRED:
                await self._gateway.void(f["id"])
                expired = await self._orders.get(f["id"])
                assert expired is not None
                return BuyResult(expired, replayed, "expired")
            else:
                raise
        if not self._capture_immediately:
            return BuyResult(authorized, replayed, "settled")
        return await self._capture(authorized, replayed)

    async def _capture(self, order: Order, replayed: bool) -> BuyResult:
        """Capture an authorized order now; if the gateway cannot say, the sale stands
        (authorized) and the same key retries the capture later."""
        if order.state is OrderState.PAID:
            return BuyResult(order, replayed, "settled")
        try:
            await self._gateway_call(self._gateway.capture, order.id)
        except (GatewayTimeout, GatewayUnavailable, asyncio.TimeoutError):
            log.warning("order %s: capture outcome unknown; left authorized for the sweeper",
                        order.id)
            return BuyResult(order, replayed, "capture_pending")
        paid, _ = await self._orders.transition(order.id, OrderState.PAID)
        return BuyResult(paid, replayed, "settled")

    async def _gateway_call(self, method: Any, *args: Any) -> Any:
        """Retry transient gateway failures; every gateway call is idempotent by order id."""
        for attempt in range(self._payment_attempts):
            try:
                return await asyncio.wait_for(method(*args), self._payment_timeout_s)
            except (GatewayTimeout, GatewayUnavailable, asyncio.TimeoutError):
                if attempt == self._payment_attempts - 1:
                    raise
                await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")


def _payment_word(state: OrderState) -> str:
    return {
        OrderState.RESERVED: "pending", OrderState.DECLINED: "declined",
        OrderState.EXPIRED: "expired",
    }.get(state, "settled")
