"""A cart for streams that sell that way, chosen per stream.

`cart_hold`: adding an item reserves it for the hold time (stock is the buyer's until the
hold runs out). `first_paid` (and `instant` streams): adding only notes the wish; stock is
taken at checkout, first paid first served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import redis.asyncio as redis

from checkout.buy import BuyRequest, BuyResult, BuyService, Rejected, binding_ttl_s, check_bound
from checkout.errors import Refused
from checkout.funnel import count_cart_add
from checkout.ids import BuyerId, OrderId, ProductId, StreamId, VariantId
from checkout.store.keys import cart_key, idem_binding_key
from checkout.order_states import PENDING, IllegalTransition, OrderState, payment_word
from checkout.orders import OrderBook
from checkout.store.scripts import SCRIPTS, call_script

__all__ = ["Cart", "CartItem", "MAX_CART_ITEMS", "CartFull", "CheckoutInProgress"]

MAX_CART_ITEMS = 20


class CartFull(Refused):
    def __init__(self) -> None:
        super().__init__(409, "cart-full", f"a cart holds at most {MAX_CART_ITEMS} items")


class CheckoutInProgress(Refused):
    """The item's hold is being paid right now: it can't be removed mid-payment."""

    def __init__(self) -> None:
        super().__init__(409, "checkout-in-progress",
                         "this item is being paid for right now; its order decides")


@dataclass(frozen=True, slots=True)
class CartItem:
    id: str
    stream: StreamId | Literal[""]  # '' when added outside a stream
    product: ProductId
    variant: VariantId
    quantity: int
    order_id: OrderId | Literal[""]  # '' until reserved

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "stream_id": self.stream, "product_id": self.product,
                "variant": self.variant, "quantity": self.quantity,
                "order_id": self.order_id or None, "held": bool(self.order_id)}


def _add_fingerprint(stream: str, product: str, variant: str, quantity: int) -> str:
    body = orjson.dumps(["cart", stream, product, variant, quantity])
    return hashlib.sha256(body).hexdigest()[:32]


def _hold_key(item_id: str) -> str:
    """The key the hold's reservation is made under: the buyer's own key is already bound
    to the add, and `/` is outside the Idempotency-Key alphabet, so no request can send it."""
    return f"cart/{item_id}"


def _item(d: dict[str, Any]) -> CartItem:
    return CartItem(d["id"], d["stream_id"], d["product_id"], d["variant"], d["quantity"],
                    d["order_id"] or "")


class Cart:
    def __init__(self, client: redis.Redis, buys: BuyService, orders: OrderBook, *,
                 hold_ms: int, idempotency_ttl_s: int) -> None:
        self._client = client
        self._buys = buys
        self._orders = orders
        self._hold_ms = hold_ms
        self._idem_ttl_s = idempotency_ttl_s

    async def add(self, buyer: BuyerId, stream: StreamId | Literal[""], product: ProductId,
                  variant: VariantId, quantity: int, *, mode: str, idempotency_key: str,
                  payment_token: str, in_show: bool = False) -> CartItem:
        """Raises KeyReused if the key was used for another request (another item, a buy).
        `in_show`: the product is in the stream's lineup, so a new item counts in the show's
        funnel (a replayed add, like the item, counts once)."""
        # The key is bound to this request the way a buy's is (bind_key.lua, in the buyer's
        # slot, so buys and adds share one namespace), then the item id follows from it,
        # so a retried add adds nothing.
        fingerprint = _add_fingerprint(stream, product, variant, quantity)
        bound = await call_script(self._client, SCRIPTS["bind_key"],
                                  [idem_binding_key(buyer, idempotency_key)],
                                  [fingerprint, binding_ttl_s(self._idem_ttl_s)])
        check_bound(bound, fingerprint, idempotency_key)  # raises KeyReused
        item_id = "ci_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]
        existing = await self._client.hget(cart_key(buyer), item_id)
        if existing is not None:
            return _item(orjson.loads(existing))
        if await self._client.hlen(cart_key(buyer)) >= MAX_CART_ITEMS:
            raise CartFull()
        order_id: OrderId | Literal[""] = ""
        if mode == "cart_hold":
            result = await self._buys.reserve(BuyRequest(
                buyer=buyer, product=product, variant=variant, quantity=quantity,
                idempotency_key=_hold_key(item_id), channel="stream", stream=stream,
                payment_token=payment_token), hold_ms=self._hold_ms)
            order_id = result.order.id
        item = CartItem(item_id, stream, product, variant, quantity, order_id)
        added = await self._client.hsetnx(cart_key(buyer), item.id, orjson.dumps(item.public()))
        if added and in_show and stream:
            await count_cart_add(self._client, stream, product, quantity)
        return item

    async def items(self, buyer: BuyerId) -> list[CartItem]:
        raw = await self._client.hgetall(cart_key(buyer))
        return sorted((_item(orjson.loads(v)) for v in raw.values()), key=lambda i: i.id)

    async def item(self, buyer: BuyerId, item_id: str) -> CartItem | None:
        """One item of the buyer's cart; None once it has left it (removed, checked out)."""
        raw = await self._client.hget(cart_key(buyer), item_id)
        return _item(orjson.loads(raw)) if raw is not None else None

    async def remove(self, buyer: BuyerId, item_id: str) -> bool:
        raw = await self._client.hget(cart_key(buyer), item_id)
        if raw is None:
            return False
        order_id = orjson.loads(raw)["order_id"]
        if order_id:
            try:
                await self._orders.transition(order_id, OrderState.CANCELLED, "removed_from_cart")
            except IllegalTransition as exc:
                if exc.current == OrderState.PAYING:
                    raise CheckoutInProgress() from None
                # expired, paid, cancelled already: nothing to give back here
            except KeyError:
                pass
        await self._client.hdel(cart_key(buyer), item_id)
        return True

    async def checkout(self, buyer: BuyerId, payment_token: str,
                       snapshot: Mapping[str, str] | None = None, *,
                       lines: Sequence[CartItem] | None = None) -> list[dict[str, Any]]:
        """Pay every item (or just `lines`, the items as the buyer confirmed them); each
        result says settled, declined, sold_out, expired, ... `snapshot`: what each order
        records when authorized (BuyService.settle)."""
        outcomes = []
        for item in await self.items(buyer) if lines is None else lines:
            outcome: dict[str, Any] = {"item": item.public()}
            try:
                result = await self._checkout_item(buyer, item, payment_token, snapshot)
                outcome.update(result=result.payment, order=result.order.public())
                if result.payment != "pending":  # decided: bought, refused or gone
                    await self._client.hdel(cart_key(buyer), item.id)
            except Rejected as exc:
                outcome.update(result=exc.code, **exc.details)
                await self._client.hdel(cart_key(buyer), item.id)
            outcomes.append(outcome)
        return outcomes

    async def _checkout_item(self, buyer: BuyerId, item: CartItem, token: str,
                             snapshot: Mapping[str, str] | None) -> BuyResult:
        if item.order_id:
            order = await self._orders.get(item.order_id)
            if order is None:
                raise Rejected("order_missing", {})
            if order.state not in PENDING:
                return BuyResult(order, True, payment_word(order.state))
            return await self._buys.settle(order, payment_token=token, snapshot=snapshot)
        return await self._buys.buy(BuyRequest(
            buyer=buyer, product=item.product, variant=item.variant, quantity=item.quantity,
            idempotency_key=f"cart/{item.id}/pay", channel="stream" if item.stream else "showcase",
            stream=item.stream, payment_token=token, snapshot=snapshot))
