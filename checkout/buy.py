"""The one-tap buy: reserve atomically (reserve.lua), then settle the payment.

An order is acknowledged only after Valkey has made it durable (the batcher's durability
mode), and every step is idempotent, so a client that lost its answer retries with the same
Idempotency-Key and lands on exactly one outcome.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, TypeVarTuple

import orjson

from checkout.store.batcher import CommandBatcher, observed
from checkout.errors import Refused
from checkout.ids import (BuyerId, CreatorId, LinkCode, OrderId, ProductId, StreamId, VariantId,
                          new_order_id)
from checkout.store.keys import idem_binding_key, product_keys
from checkout.order_states import (CAPTURED, IllegalTransition, OrderState, OutOfTime,
                                   payment_word)
from checkout.orders import OUTBOX_MAXLEN, Order, OrderBook, order_from_fields
from checkout.payments import (Authorization, ChargingGateway, GatewayTimeout,
                               GatewayUnavailable, InvalidPaymentRequest, PaymentError,
                               PaymentGateway)
from checkout.sold_out_gate import SoldOutGate
from checkout.store.scripts import SCRIPTS

__all__ = ["AuctionSale", "Binding", "BuyRequest", "BuyResult", "BuyService", "Rejected", "KeyReused",
           "REJECTION_STATUS", "binding_ttl_s", "check_bound"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Args = TypeVarTuple("Args")
# A product's key names, made once per product rather than per buy (a dozen f-strings and
# an id check each time: ~2 % of a flash sale's refusal). Bounded; the keys never change.
_product_keys = functools.lru_cache(maxsize=4096)(product_keys)


@dataclass(frozen=True, slots=True)
class AuctionSale:
    """An auction's lot sold at its hammer price (docs/auctions.md, "The charge"): set only
    by the auction desk, never from an HTTP body, so no buyer names their own price. The
    order takes the lot's unit (not stock) and is the show creator's sale."""

    lot: str  # '<stream>/<auction>', the lot record in the product's slot
    price_minor: int
    creator: CreatorId | Literal[""]


@dataclass(frozen=True, slots=True)
class BuyRequest:
    buyer: BuyerId
    product: ProductId
    variant: VariantId
    quantity: int
    idempotency_key: str
    channel: str  # stream | replay | link | showcase | waitlist | auction
    stream: StreamId | Literal[""] = ""
    link_creator: CreatorId | Literal[""] = ""
    link_code: LinkCode | Literal[""] = ""
    expected_unit_price: int | None = None
    payment_token: str = ""
    # What the order records when its payment is authorized (see `BuyService.settle`).
    snapshot: Mapping[str, str] | None = None
    auction: AuctionSale | None = None  # channel `auction` only
    # How far behind the room the buyer's picture is (ms, the caller bounds it): a deal is
    # open for them while it was open that long ago. Not in the fingerprint: a retry from a
    # player whose delay moved is the same buy.
    viewer_delay_ms: int = 0
    # The wallet entries the buyer named (address id, card id; "" for the default): in the
    # fingerprint, so a key retried with another card is refused, not answered with the
    # first card's order. Left out when both are defaults (the fingerprint of every buy
    # made before this field existed).
    pay_with: tuple[str, str] = ("", "")

    def fingerprint(self) -> str:
        body = orjson.dumps([self.product, self.variant, self.quantity, self.stream,
                             self.channel, self.link_code, self.expected_unit_price,
                             *((self.auction.lot, self.auction.price_minor) if self.auction
                               else ()),
                             *(("pay", *self.pay_with) if any(self.pay_with) else ())])
        return hashlib.sha256(body).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class BuyResult:
    order: Order
    replayed: bool
    payment: str  # settled | pending | capture_pending | declined | expired | not_requested


# How each buy-rule refusal answers (the problem `type` is the code with dashes).
REJECTION_STATUS = {
    "product_not_found": 404, "variant_not_found": 404, "product_unavailable": 409,
    "not_offered": 409, "stream_not_live": 409, "not_a_replay": 409, "deal_quantity_exceeded": 409,
    "price_changed": 409, "limit_reached": 409, "sold_out": 409, "insufficient_stock": 409,
    "order_missing": 404, "quantity_too_large": 422, "lot_unavailable": 409,
}


class Rejected(Refused):
    """The buy rules said no; `code` is the stable reason (sold_out, limit_reached, ...)."""

    def __init__(self, code: str, details: dict[str, Any]) -> None:
        super().__init__(REJECTION_STATUS.get(code, 409), code.replace("_", "-"),
                         code.replace("_", " "), **details)
        self.code = code
        self.details = details


class KeyReused(Refused):
    """The Idempotency-Key was already used for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(422, "idempotency-key-reused",
                         "this Idempotency-Key was used for a different request")
        self.key = key


# A key's binding outlives the answer reserve.lua records under it by this much: the record
# lives `idempotency_ttl_s` from its reserve, and the request that reserves renews the
# binding a moment before (bind_key.lua), so a key bound anew has nothing recorded under it
# (what the sold-out gate relies on). A moment: one request's pipelines, never an hour.
BINDING_MARGIN_S = 3600


def binding_ttl_s(idempotency_ttl_s: int) -> int:
    return idempotency_ttl_s + BINDING_MARGIN_S


def check_bound(reply: Any, fingerprint: str, key: str) -> None:
    """bind_key.lua's reply. Raises KeyReused when the key is bound to another request, and
    `sold_out` when the sold-out gate refused this key (now, or the first time it came)."""
    if reply == 1:
        return
    if reply == 2:
        raise Rejected("sold_out", {})
    bound = reply.decode()
    if bound == fingerprint:
        return
    if bound == fingerprint + _GATED:
        raise Rejected("sold_out", {})
    raise KeyReused(key)


_GATED = "|sold_out"  # bind_key.lua's mark of a key the sold-out gate refused


class Binding:
    """A key's binding sent to Valkey (`BuyService.start_bind`); `check()` awaits it."""

    __slots__ = ("_sent", "_fingerprint", "_key", "_refused")

    def __init__(self, sent: "asyncio.Future[Any] | None", fingerprint: str, key: str,
                 refused: Rejected | None = None) -> None:
        self._sent, self._fingerprint, self._key, self._refused = sent, fingerprint, key, refused
        if sent is not None:  # a caller that stops first never asks for it
            sent.add_done_callback(observed)

    async def check(self) -> None:
        """Raises what the binding refused: the quantity, the key used for another request
        (KeyReused), the sold-out gate's refusal (now or recorded)."""
        if self._refused is not None:
            raise self._refused
        assert self._sent is not None
        check_bound(await self._sent, self._fingerprint, self._key)


class BuyService:
    def __init__(self, batcher: CommandBatcher, orders: OrderBook, gateway: PaymentGateway, *,
                 hold_ms: int, idempotency_ttl_s: int, capture_immediately: bool,
                 payment_timeout_s: float, payment_attempts: int = 3,
                 capture_owed_after_ms: int = 30_000, payment_window_ms: int = 30_000,
                 max_quantity: int = 10, sold_out_gate_ms: int = 0) -> None:
        self._batcher = batcher
        self._orders = orders
        self._gateway = gateway
        self._hold_ms = hold_ms
        self._idem_ttl_s = idempotency_ttl_s
        self._capture_immediately = capture_immediately
        self._payment_timeout_s = payment_timeout_s
        self._payment_attempts = payment_attempts
        self._capture_owed_after_ms = capture_owed_after_ms
        self._payment_window_ms = payment_window_ms
        self._max_quantity = max_quantity
        self.gate = SoldOutGate(sold_out_gate_ms)
        # In immediate mode a gateway that can authorize and capture in one call does: the
        # order goes paying -> paid in one move (docs/checkout.md, "The instant buy").
        self._charging: ChargingGateway | None = (
            gateway if capture_immediately and isinstance(gateway, ChargingGateway) else None)

    async def buy(self, req: BuyRequest, *, bound: bool = False) -> BuyResult:
        """Reserve and pay in one call: the mid-stream one-tap path. The order is reserved
        already claimed (paying), which saves the claim's round trip: a new order is paid
        at once, a replayed one claims again (its window may be over). `bound`: the caller
        made `bind` already (beside its own reads, in one round trip)."""
        reserved = await self.reserve(req, claimed=True, bound=bound)
        state = reserved.order.state
        if state is OrderState.AUTHORIZED and self._capture_immediately:
            return await self._capture(reserved.order, reserved.replayed)  # a capture owed
        if state not in (OrderState.RESERVED, OrderState.PAYING):
            return reserved
        return await self.settle(reserved.order, replayed=reserved.replayed,
                                 payment_token=req.payment_token, snapshot=req.snapshot,
                                 claimed=not reserved.replayed)

    async def bind(self, req: BuyRequest) -> None:
        """Bind the request's Idempotency-Key to its fingerprint, in the buyer's slot (a key
        reused for another product is caught there); raises KeyReused. It must come before
        `reserve` (another slot, so not the same script)."""
        await self.start_bind(req).check()

    def start_bind(self, req: BuyRequest, *, gated: bool = False) -> "Binding":
        """`bind`, sent now: the caller's own reads of the buyer's slot (the wallet) sent
        before it awaits `check()` ride the same pipeline, and no task is made for either.
        `gated`: the sold-out gate refuses this buy (`gate_refuses`), which a key bound
        anew records (bind_key.lua) and `check()` raises."""
        try:
            self._check_quantity(req)  # refused before anything is written
        except Rejected as exc:
            return Binding(None, "", req.idempotency_key, exc)
        fingerprint = req.fingerprint()
        sent = self._batcher.submit_script(
            SCRIPTS["bind_key"], [idem_binding_key(req.buyer, req.idempotency_key)],
            [fingerprint, binding_ttl_s(self._idem_ttl_s), "1" if gated else ""])
        return Binding(sent, fingerprint, req.idempotency_key)

    def _check_quantity(self, req: BuyRequest) -> None:
        if req.quantity > self._max_quantity:  # refused before anything is written
            raise Rejected("quantity_too_large", {"max": self._max_quantity})

    def gate_refuses(self, req: BuyRequest) -> bool:
        """The sold-out gate (checkout/sold_out_gate.py) is closed for this buy's variant:
        reserve.lua called it sold out a moment ago. An auction's lot is its own unit."""
        return req.auction is None and self.gate.closed(req.product, req.variant)

    async def reserve(self, req: BuyRequest, hold_ms: int | None = None, *,
                      claimed: bool = False, bound: bool = False) -> BuyResult:
        """Hold stock for a new order (or replay the key's answer). `claimed`: the caller
        pays at once, so the order starts `paying` (its hold is its payment window).
        `bound`: `bind` was made already. Its answer moves the sold-out gate."""
        if bound:
            self._check_quantity(req)
        else:
            await self.bind(req)
        gate = self.gate
        sent_at = gate.ticket()
        fingerprint = req.fingerprint()
        k = _product_keys(req.product)
        order_id = new_order_id(req.product)
        keys = [k.product, k.stock, k.offers, k.bought, k.idem(req.buyer, req.idempotency_key),
                k.order(order_id), k.outbox, k.expiry, k.invited]
        sale = req.auction
        args = [req.buyer, fingerprint, req.stream, req.variant, req.quantity, order_id,
                hold_ms if hold_ms is not None else self._hold_ms, self._idem_ttl_s,
                sale.creator if sale else req.link_creator, req.link_code,
                "" if req.expected_unit_price is None else req.expected_unit_price,
                req.payment_token, "auction" if sale else req.channel, OUTBOX_MAXLEN,
                "paying" if claimed else "reserved"]
        if sale:
            keys.append(k.lots)
        args += [sale.lot, sale.price_minor] if sale else ["", ""]
        args.append(max(0, req.viewer_delay_ms))
        reply = orjson.loads(await self._batcher.script(SCRIPTS["reserve"], keys, args))
        match reply["r"]:
            case "ok":
                gate.reopen(req.product, req.variant)
                return BuyResult(order_from_fields(reply["order"]), False, "not_requested")
            case "conflict":
                raise KeyReused(req.idempotency_key)
            case "rejected":
                code = reply.pop("code")
                if code == "sold_out" and req.auction is None:
                    gate.sold_out(req.product, req.variant, sent_at)
                raise Rejected(code, {k: v for k, v in reply.items() if k != "r"})
            case "replay":
                stored = reply["stored"]
                if stored["r"] == "rejected":
                    raise Rejected(stored.pop("code"),
                                   {k: v for k, v in stored.items() if k != "r"})
                order = await self._orders.get(stored["order_id"])
                if order is None:
                    raise RuntimeError(f"idempotency record names a missing order {stored}")
                return BuyResult(order, True, payment_word(order.state))
        raise RuntimeError(f"unexpected reserve reply {reply!r}")

    async def settle(self, order: Order, *, replayed: bool = False, payment_token: str = "",
                     snapshot: Mapping[str, str] | None = None,
                     claimed: bool = False) -> BuyResult:
        """Claim a reserved order, authorize (and capture) it; a decline gives stock back.

        The claim (reserved -> paying, only before the hold's deadline) comes first, so an
        order that expires unclaimed has never reached the gateway, and one that expires
        mid-payment owes a void recorded in the same step: whatever the race, the order
        decides and the gateway follows. `payment_token` is used when the order was
        reserved without one (cart, waitlist).

        `snapshot`: fields the order keeps from the moment it is bought (the shipping address
        and the card's summary, checkout/wallets.py), written in the same step as the
        authorization: the one place an order gets them, whoever pays it.

        `claimed`: the caller made this order `paying` itself a moment ago (a one-tap buy's
        new reservation), so the claim is already made.
        """
        f = order.fields
        if not claimed:
            try:
                order = await self._orders.claim(order.id, self._payment_window_ms)
            except OutOfTime:  # the hold ran out before anybody paid: expire it now
                return await self._decide(order.id, OrderState.EXPIRED, "hold_expired",
                                          replayed)
            except IllegalTransition:  # decided already (expired, cancelled, a twin paid it)
                return await self._current(order.id, replayed)
        try:
            auth = await self._gateway_call(
                self._charging.charge if self._charging else self._gateway.authorize,
                f["id"], f["amount_minor"], f["currency"], f.get("payment_token") or payment_token)
        except InvalidPaymentRequest as exc:
            log.info("order %s: invalid payment request: %s", f["id"], exc)
            return await self._decide(order.id, OrderState.DECLINED, "invalid_payment_method",
                                      replayed)
        except (GatewayTimeout, GatewayUnavailable, asyncio.TimeoutError):
            # Outcome unknown: the order stays paying; a retry with the same key settles it,
            # or the window runs out and expiry voids whatever the gateway holds.
            return BuyResult(order, replayed, "pending")
        if not auth.approved:
            return await self._decide(order.id, OrderState.DECLINED,
                                      auth.decline_code or "card_declined", replayed)
        if auth.captured:
            return await self._paid_at_once(order, auth, snapshot or {}, replayed)
        # In immediate mode the capture is owed from now: if this node dies before it
        # captures, the sweeper does it once `capture_owed_after_ms` has passed.
        owed = (int(time.time() * 1000) + self._capture_owed_after_ms
                if self._capture_immediately else 0)
        try:
            authorized, _ = await self._orders.transition(
                f["id"], OrderState.AUTHORIZED, "",
                {**(snapshot or {}), "gateway_ref": auth.gateway_ref}, capture_owed_at_ms=owed)
        except IllegalTransition:
            return await self._lost_race(order.id, replayed)
        if not self._capture_immediately:
            return BuyResult(authorized, replayed, "settled")
        if self._charging is not None:  # the charge's capture failed just now: the debt waits
            return BuyResult(authorized, replayed, "capture_pending")
        return await self._capture(authorized, replayed)

    async def _paid_at_once(self, order: Order, auth: Authorization,
                            snapshot: Mapping[str, str], replayed: bool) -> BuyResult:
        """The gateway authorized and captured in one call: paying -> paid in one move,
        recording both, with no capture owed in between."""
        try:
            paid, _ = await self._orders.transition(
                order.id, OrderState.PAID, "", {**snapshot, "gateway_ref": auth.gateway_ref,
                                                "capture_ref": auth.capture_ref or ""})
        except IllegalTransition:
            return await self._lost_race(order.id, replayed)
        return BuyResult(paid, replayed, "settled")

    async def _lost_race(self, order_id: OrderId, replayed: bool) -> BuyResult:
        """Another move won the race against our authorization (the window ran out, a twin
        with another card was declined): it recorded a void owed; pay it now rather than
        at the next sweep (a refund if the charge captured). A twin that sold it first is
        fine too."""
        result = await self._current(order_id, replayed)
        if result.order.state is not OrderState.AUTHORIZED and (
                result.order.state not in CAPTURED):
            await self.pay_void_owed(order_id)
        return result

    async def _decide(self, order_id: OrderId, target: OrderState, reason: str,
                      replayed: bool) -> BuyResult:
        """Move the order to `target`, or answer what it became if another move won."""
        try:
            order, _ = await self._orders.transition(order_id, target, reason)
        except IllegalTransition:
            return await self._current(order_id, replayed)
        return BuyResult(order, replayed, payment_word(order.state))

    async def _current(self, order_id: OrderId, replayed: bool) -> BuyResult:
        order = await self._orders.get(order_id)
        if order is None:
            raise KeyError(order_id)
        if order.state is OrderState.AUTHORIZED and self._capture_immediately:
            return await self._capture(order, replayed)
        return BuyResult(order, replayed, payment_word(order.state))

    async def cancel(self, order_id: OrderId, reason: str) -> Order:
        """Cancel an order before it ships: a held one (`reserved`) gives its stock back; an
        authorized one is voided, which records the void it owes in the same step, and the
        void is paid at once (or by the sweeper). Raises IllegalTransition from any other
        state (`paying`: its payer decides first; paid: refund instead)."""
        order = await self._orders.get(order_id)
        if order is None:
            raise KeyError(order_id)
        if order.state in (OrderState.CANCELLED, OrderState.VOIDED):
            return order  # cancelled already: asking twice changes nothing
        target = (OrderState.CANCELLED if order.state is OrderState.RESERVED
                  else OrderState.VOIDED)
        done, _ = await self._orders.transition(order_id, target, reason)
        if target is OrderState.VOIDED:
            await self.pay_void_owed(order_id)
        return done

    async def pay_void_owed(self, order_id: OrderId) -> None:
        """Release the order's hold at the gateway now, rather than at the next sweep; if the
        gateway can't, the recorded debt stays for the sweeper. Money an instant charge
        captured for an order that did not sell is refunded in full instead (as the
        sweeper does)."""
        try:
            try:
                await self._gateway_call(self._gateway.void, order_id)
            except InvalidPaymentRequest:  # nothing to void: captured, or the gateway says no
                if (await self._gateway.status(order_id)).state != "captured":
                    raise
                await self._gateway_call(self._refund_all, order_id)
        except (PaymentError, asyncio.TimeoutError) as exc:  # the sweeper pays it later
            log.warning("order %s: void owed left for the sweeper (%s)", order_id,
                        type(exc).__name__)
            return
        await self._orders.clear_void_debt(order_id)

    async def _refund_all(self, order_id: OrderId) -> object:
        return await self._gateway.refund(order_id)

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
        except InvalidPaymentRequest:  # the brand voided it meanwhile: the order says so
            return await self._as_it_stands(order.id, replayed)
        try:
            paid, _ = await self._orders.transition(order.id, OrderState.PAID)
        except IllegalTransition:  # voided after our capture: its void debt refunds it
            return await self._as_it_stands(order.id, replayed)
        return BuyResult(paid, replayed, "settled")

    async def _as_it_stands(self, order_id: OrderId, replayed: bool) -> BuyResult:
        order = await self._orders.get(order_id)
        if order is None:
            raise KeyError(order_id)
        return BuyResult(order, replayed, payment_word(order.state))

    async def _gateway_call(self, method: Callable[[*Args], Awaitable[T]], *args: *Args) -> T:
        """Retry transient gateway failures; every gateway call is idempotent by order id."""
        for attempt in range(self._payment_attempts):
            try:
                return await asyncio.wait_for(method(*args), self._payment_timeout_s)
            except (GatewayTimeout, GatewayUnavailable, asyncio.TimeoutError):
                if attempt == self._payment_attempts - 1:
                    raise
                await asyncio.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

