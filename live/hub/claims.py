"""Comment-to-buy (docs/chat.md): a buyer's posted message `<KEYWORD> <code> [qty] [size]`
claims the product of that code through the one-tap buy's own rules (reserve.lua: live,
offered, stock, limits, deals) and keys, so the same comment again is the same claim.

`claim_mode` cart puts the item in the buyer's cart on a hold (no hold on a `first_paid`
stream: there the first paid is served first); `buy` pays it at once with the wallet's
default card, unless the buyer's purchases need their passkey, which a comment cannot give:
then it is held in the cart like a cart claim, to be paid (and confirmed) there.

Each outcome is the buyer's `notice` and an entry of the show's claims log, the host's list.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from checkout.buy import BuyRequest, Rejected
from checkout.errors import Refused
from checkout.ids import BuyerId, OrderId, ProductId, StreamId, VariantId
from checkout.order_states import OrderState
from checkout.wallets import Payment
from live.chat.store import ChatAuthor
from live.chat.text import parse_claim
from live.hub.handshake import HubServices
from live.hub.protocol import Notice
from live.hub.rooms import Room
from live.web.buy_confirm import buy_confirm_mode

__all__ = ["claim_comment"]

log = logging.getLogger(__name__)

# A claim whose order is gone (hold ran out, removed from the cart, declined, voided,
# refunded) is over: the same comment again claims anew.
_GONE = frozenset({OrderState.EXPIRED, OrderState.CANCELLED, OrderState.DECLINED,
                   OrderState.VOIDED, OrderState.REFUNDED})
_SOLD_OUT = frozenset({"sold_out", "insufficient_stock", "deal_quantity_exceeded"})
_WORDS = {
    "claim.claimed": "claimed", "claim.sold-out": "sold out",
    "claim.limit-reached": "you have reached this item's limit",
    "claim.no-wallet": "save a shipping address and a card to buy from the chat",
    "claim.unknown-code": "no product in this show has that code",
    "claim.unknown-size": "say one of this item's sizes",
}


@dataclass(frozen=True, slots=True)
class _Claim:
    """One comment's claim, resolved: who, which product (and its code), variant, quantity,
    and the mode it runs in (`cart` or `buy`)."""

    stream: StreamId
    author: ChatAuthor
    product: ProductId
    code: int
    variant: VariantId
    qty: int
    mode: str

    @property
    def buyer(self) -> BuyerId:
        return BuyerId(self.author.buyer)

    @property
    def field(self) -> str:
        """What the show's claim attempts are kept under: the buyer and the claim."""
        body = orjson.dumps([self.product, self.variant, self.qty, self.mode])
        return f"{self.buyer}|{hashlib.sha256(body).hexdigest()[:24]}"

    def entry(self, outcome: str, **more: Any) -> dict[str, Any]:
        return {"at_ms": int(time.time() * 1000), "user": self.author.user,
                "name": self.author.name, "product": self.product, "code": self.code,
                "variant": self.variant, "qty": self.qty, "mode": self.mode,
                "outcome": outcome, **more}


async def claim_comment(services: HubServices, room: Room, author: ChatAuthor, text: str,
                        purchase_mode: str, ref: str | None) -> Notice | None:
    """The claim a buyer's comment makes, as the notice answering it; None when the author
    is not a buyer or the text is no claim. A failure of ours is a `claim.refused`, never
    the socket's end."""
    if not author.buyer:
        return None
    try:
        settings, codes = await _terms(services, room)
        parsed = parse_claim(text, settings["keyword"])
        if parsed is None:
            return None
        return await _claim(services, room, author, codes, settings["claim_mode"], parsed.code,
                            parsed.qty, parsed.size, purchase_mode, ref)
    except Exception:
        log.exception("stream %s: a claim by %s failed", room.stream_id, author.user)
        return Notice("claim.refused", "the claim could not be made; try again", ref)


async def _terms(services: HubServices, room: Room) -> tuple[dict[str, Any], dict[str, int]]:
    """The room's chat settings and product codes: read once, then kept by its events (a
    read that an event overtook is used once, not kept)."""
    if room.chat_settings is not None and room.codes is not None:
        return room.chat_settings, room.codes
    seq = room.seq
    settings, codes = await services.chat.claim_terms(room.stream_id)
    if room.seq == seq:
        room.chat_settings, room.codes = settings, codes
    return settings, codes


async def _claim(services: HubServices, room: Room, author: ChatAuthor, codes: dict[str, int],
                 claim_mode: str, code: int, qty: int, size: str | None, purchase_mode: str,
                 ref: str | None) -> Notice:
    product = next((ProductId(p) for p, n in codes.items() if n == code and p in room.lineup),
                   None)
    record = await services.catalog.product(product) if product is not None else None
    if product is None or record is None:
        unknown = _Claim(room.stream_id, author, ProductId(""), code, VariantId(""), qty,
                         claim_mode)
        return await _note(unknown, services, "claim.unknown-code", ref)
    variants: list[dict[str, Any]] = record.get("variants") or []
    variant = _variant(variants, size)
    claim = _Claim(room.stream_id, author, product, code, VariantId(variant or ""), qty,
                   claim_mode)
    if variant is None:
        sizes = [str(v.get("name") or v["id"]) for v in variants]
        return await _note(claim, services, "claim.unknown-size", ref,
                           detail=f"sizes: {', '.join(sizes)}", sizes=sizes)
    payment = None
    if claim_mode == "buy":
        try:
            payment = (await services.wallets.get(claim.buyer)).pay_with()
        except Refused:
            return await _note(claim, services, "claim.no-wallet", ref)
        if await buy_confirm_mode(services, claim.buyer) == "passkey":
            claim = _Claim(claim.stream, author, product, code, claim.variant, qty, "cart")
    return await _attempt(services, claim, payment, purchase_mode, ref)


def _variant(variants: list[dict[str, Any]], size: str | None) -> VariantId | None:
    """The variant a size names: its id or name (any case), else the one variant with that
    option value (`M` of `{"size": "M"}`); a product of one variant needs no size."""
    if len(variants) == 1:
        return VariantId(variants[0]["id"])
    if size is None:
        return None
    wanted = size.casefold()
    for v in variants:
        if wanted in (str(v["id"]).casefold(), str(v.get("name") or "").casefold()):
            return VariantId(v["id"])
    by_option = [v for v in variants
                 if any(str(o).casefold() == wanted for o in (v.get("options") or {}).values())]
    return VariantId(by_option[0]["id"]) if len(by_option) == 1 else None


async def _attempt(services: HubServices, claim: _Claim, payment: Payment | None,
                   purchase_mode: str, ref: str | None) -> Notice:
    """The claim under its current attempt's key: a standing claim answers as it did; an
    attempt refused, or whose order or cart item is gone, leaves the next comment a new one."""
    chat = services.chat
    n, recorded = await chat.claim_attempt(claim.stream, claim.field)
    if recorded is not None and recorded["n"] == n and recorded["outcome"] == "claim.claimed":
        if not await _over(services, claim.buyer, recorded):
            return _notice(recorded, ref)
        await chat.claim_step(claim.stream, "again", claim.field, n)
        n, _ = await chat.claim_attempt(claim.stream, claim.field)
    # The buyer's keys are the buyer's own (buys and cart adds share them): the stream keeps
    # the same comment in a later show, within the keys' lifetime, from being this claim.
    key = f"claim/{claim.stream}/{claim.field.split('|', 1)[1]}/{n}"
    try:
        entry = (await _buy(services, claim, key, payment) if payment is not None
                 and claim.mode == "buy" else await _hold(services, claim, key, purchase_mode))
    except Rejected as exc:
        outcome = ("claim.sold-out" if exc.code in _SOLD_OUT
                   else "claim.limit-reached" if exc.code == "limit_reached"
                   else "claim.refused")
        entry = claim.entry(outcome, detail=exc.detail, reason=exc.code)
        if outcome == "claim.sold-out":
            entry["waitlist"] = f"/api/v1/products/{claim.product}/waitlist"
    except Refused as exc:  # the cart is full: nothing was claimed, nothing to replay
        return await _note(claim, services, "claim.refused", ref, detail=exc.detail,
                           reason=exc.kind)
    await chat.claim_step(claim.stream, "record", claim.field, n, entry,
                          over=entry["outcome"] != "claim.claimed")
    return _notice(entry, ref)


async def _over(services: HubServices, buyer: BuyerId, recorded: dict[str, Any]) -> bool:
    """Whether a claimed attempt is over: its order is gone (a paid one stands, so the same
    comment never buys twice), or, for a `first_paid` item, which has no order to tell, its
    cart item has left the cart (removed, or checked out)."""
    if recorded.get("order"):
        order = await services.orders.get(OrderId(recorded["order"]))
        return order is None or order.state in _GONE
    return bool(recorded.get("item")) and await services.cart.item(buyer, recorded["item"]) is None


async def _hold(services: HubServices, claim: _Claim, key: str,
                purchase_mode: str) -> dict[str, Any]:
    """Into the cart, on a hold (but on a `first_paid` stream), as `POST /cart/items` adds."""
    mode = purchase_mode if purchase_mode == "first_paid" else "cart_hold"
    item = await services.cart.add(claim.buyer, claim.stream, claim.product, claim.variant,
                                   claim.qty, mode=mode, idempotency_key=key, payment_token="",
                                   in_show=True)
    order = await services.orders.get(item.order_id) if item.order_id else None
    if order is not None and order.state in _GONE:
        return claim.entry("claim.refused", detail=f"the hold is {order.state.value}",
                           reason=order.state.value, item=item.id, order=order.id)
    return claim.entry("claim.claimed", item=item.id, order=item.order_id or None,
                       held=order is not None,
                       expires_ms=order.fields.get("expires_ms") if order else None)


async def _buy(services: HubServices, claim: _Claim, key: str,
               payment: Payment) -> dict[str, Any]:
    """Bought at once with the wallet's default card, as `POST /buy` buys in a show."""
    result = await services.buys.buy(BuyRequest(
        buyer=claim.buyer, product=claim.product, variant=claim.variant, quantity=claim.qty,
        idempotency_key=key, channel="stream", stream=claim.stream,
        payment_token=payment.token, snapshot=payment.snapshot))
    order = result.order
    if result.payment in ("settled", "pending", "capture_pending"):
        return claim.entry("claim.claimed", order=order.id, payment=result.payment)
    return claim.entry("claim.refused", order=order.id, payment=result.payment,
                       reason=order.fields.get("reason") or result.payment,
                       detail=f"the payment is {result.payment}")


async def _note(claim: _Claim, services: HubServices, outcome: str, ref: str | None,
                **more: Any) -> Notice:
    """An outcome no attempt stands behind (unknown code or size, no wallet, a full cart):
    logged for the host each time, and answered."""
    entry = claim.entry(outcome, **more)
    await services.chat.claim_step(claim.stream, "note", claim.field, 0, entry)
    return _notice(entry, ref)


def _notice(entry: dict[str, Any], ref: str | None) -> Notice:
    outcome = entry["outcome"]
    data = {k: v for k, v in entry.items() if k not in ("user", "name", "outcome", "n", "at_ms")}
    return Notice(outcome, str(entry.get("detail") or _WORDS.get(outcome, outcome)), ref, data)
