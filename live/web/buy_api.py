"""HTTP endpoints for the buyer: one-tap buy, orders (and cancelling one before it ships),
cart, waitlist; and the brand's capture and void. Shipping, refunds and returns are in
live/web/fulfil_api.py, the wallet's endpoints in live/web/wallet_api.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Awaitable, Literal, TypeVar

from pydantic import Field, StringConstraints
from starlette.responses import Response

from checkout.buy import BuyRequest, BuyResult, Rejected
from live.web.catalog_api import PAGE, page_params, public_product
from checkout.store.keys import buyer_orders_key
from checkout.store.replies import members
from checkout.ids import (DEFAULT_VARIANT, ID_PATTERN, ORDER_ID_PATTERN, BuyerId, CreatorId,
                          LinkCode, OrderId, ProductId, StreamId, VariantId, product_of_order)
from checkout.order_states import PENDING, IllegalTransition, OrderState
from checkout.orders import Order
from checkout.payments import DeclineCode, PaymentError
from checkout.cart import CartItem
from checkout.wallets import EntryId, Payment
from checkout.models import StrictModel
from live.web.api import Api, Call, Capped, Param, json_response
from live.accounts.auth import Role
from live.web.buy_confirm import (Purchase, buy_purchase, confirmation_options,
                                  require_confirmation)
from live.web.problems import Problem, problem_response
from live.web.webauthn_json import AssertionIn

__all__ = ["register", "order_for", "ORDER"]

ProductRef = Annotated[ProductId, StringConstraints(pattern=ID_PATTERN)]
VariantRef = Annotated[VariantId, StringConstraints(pattern=ID_PATTERN)]
StreamRef = Annotated[StreamId, StringConstraints(pattern=ID_PATTERN)]
IDEMPOTENCY_KEY = Param("Idempotency-Key", "header", Annotated[str, StringConstraints(
    min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:-]{8,128}$")])
ORDER = Param("order", "path", Annotated[str, StringConstraints(
    min_length=3, max_length=97, pattern=ORDER_ID_PATTERN)])
# Per buy, and per cart line (each is bought on its own at checkout).
Quantity = Annotated[int, Field(ge=1, le=1000), Capped("max_quantity_per_buy")]
T = TypeVar("T")
# Why an order cannot be cancelled, by its state, in the buyer's words.
_NOT_CANCELLABLE = {
    "paying": "the payment is going through right now; try again in a moment",
    "paid": "the order is paid; the shop can refund it",
}


class BuyIn(StrictModel):
    product_id: ProductRef
    variant: VariantRef = DEFAULT_VARIANT
    quantity: Quantity = 1
    stream_id: StreamRef | None = None
    # Buying from the recording of an ended show (`stream_id` names it): today's list price,
    # credited to its creator (channel `replay`, docs/checkout.md "Buying from a replay").
    replay: bool = False
    attribution: Annotated[str, StringConstraints(max_length=1024)] | None = None
    # How far behind the room the buyer's picture is (ms; an HLS player's seconds): a deal's
    # window follows it, up to `deal_viewer_delay_max_ms` (docs/checkout.md).
    viewer_delay_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 0
    # The unit price the buyer was shown: refused (409 price-changed) if it is not the one
    # that applies when the buy is made.
    expected_unit_price_minor: Annotated[int, Field(ge=0, le=10**12)] | None = None
    # The buyer's passkey confirming this purchase (live/web/buy_confirm.py).
    passkey: AssertionIn | None = None
    # From the buyer's wallet; the defaults when absent.
    address_id: EntryId | None = None
    card_id: EntryId | None = None


class PayIn(StrictModel):
    """Paying a cart or a held order: the wallet's defaults unless named, and the buyer's
    passkey confirming it (live/web/buy_confirm.py). The body may be left out."""
    passkey: AssertionIn | None = None
    address_id: EntryId | None = None
    card_id: EntryId | None = None


class CartItemIn(StrictModel):
    product_id: ProductRef
    variant: VariantRef = DEFAULT_VARIANT
    quantity: Quantity = 1
    stream_id: StreamRef | None = None


class WaitlistIn(StrictModel):
    variant: VariantRef = DEFAULT_VARIANT


async def payment_of(call: Call[Any], buyer: BuyerId, address_id: str | None = None,
                     card_id: str | None = None) -> Payment:
    """The card and address a purchase uses (the wallet's defaults unless named): 409
    `wallet-missing` without one, 404 for an id not in the buyer's wallet."""
    return (await call.services.wallets.get(buyer)).pay_with(address_id, card_id)


def decline_detail(reason: str) -> str:
    """The words for a declined order's reason: a gateway's `DeclineCode`, or
    `invalid_payment_method` (the gateway refused the saved token itself)."""
    try:
        return DeclineCode(reason).message
    except ValueError:
        return "Your saved card can't be used. Add another card and try again."


def buy_response(call: Call[Any], result: BuyResult) -> Response:
    metrics = call.services.metrics
    order = result.order.public()
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    metrics.buys.labels(result.payment).inc()
    if result.payment == "declined":
        return Problem(402, "payment-declined", decline_detail(order["reason"]),
                       decline_code=order["reason"], order=order).as_response(headers)
    if result.payment == "expired":
        return Problem(409, "reservation-expired", "the hold ran out before payment",
                       order=order).as_response(headers)
    if result.payment in ("cancelled", "voided", "refunded"):
        return Problem(409, f"order-{result.payment}", f"the order was {result.payment}",
                       order=order).as_response(headers)
    if result.payment in ("pending", "capture_pending"):
        return json_response({"order": order, "payment": result.payment}, 202, headers)
    return json_response({"order": order, "payment": result.payment}, 201, headers)


async def order_for(call: Call[Any], order_id: OrderId, *, buyer_only: bool = False) -> Order:
    """The order, if the caller is its buyer, acts for its brand (unless `buyer_only`) or is
    an operator; 404 otherwise, exactly as for an order that does not exist."""
    order = await call.services.orders.get(order_id) if product_of_order(order_id) else None
    if order is None:
        raise Problem(404, "not-found", "no such order")
    p = call.need_principal()
    allowed = (p.is_operator or (p.role is Role.BUYER and p.subject == order.fields["buyer"])
               or (not buyer_only and p.can_act_for_brand(order.fields["brand"])))
    if not allowed:
        raise Problem(404, "not-found", "no such order")  # do not reveal others' orders
    return order


def register(api: Api) -> None:
    buyer = (Role.BUYER,)

    @api.endpoint("POST", "/buy", summary="One-tap buy: reserve, pay, confirm", tag="buy",
                  body=BuyIn, roles=buyer, status=201, params=(IDEMPOTENCY_KEY,))
    async def buy(call: Call[BuyIn]) -> Response:
        key = call.param(IDEMPOTENCY_KEY.name)
        buyer_id = BuyerId(call.need_principal().subject)
        request = _buy_request(call, buyer_id, key)
        buys = call.services.buys
        # The wallet and the key's binding live in the buyer's slot: both are sent before
        # either is awaited, so they ride one pipeline (one round trip, no task each). The
        # sold-out gate's refusal goes with the binding: a key bound anew records it.
        wallet_read = call.services.wallets.start_payment(buyer_id, call.body.address_id,
                                                          call.body.card_id)
        binding = buys.start_bind(request, gated=buys.gate_refuses(request))
        try:
            # The key first (reused: 422; too many units; sold out by the gate, now or
            # recorded), then the wallet (409 wallet-missing, 404), then the confirmation.
            await binding.check()
            picked = await wallet_read.picked()
            await require_confirmation(call, lambda: buy_purchase(call.body, key),
                                       call.body.passkey)
            payment = picked.payment()
            result = await buys.buy(
                replace(request, payment_token=payment.token, snapshot=payment.snapshot),
                bound=True)
        except Rejected as exc:
            # Answered directly: a sold-out storm should not pay for exception handling.
            call.services.metrics.buys.labels(exc.code).inc()
            return problem_response(exc)
        return buy_response(call, result)

    @api.endpoint("POST", "/buy/confirmation", summary="Passkey options bound to one buy",
                  tag="buy", body=BuyIn, roles=buyer, params=(IDEMPOTENCY_KEY,))
    async def buy_confirmation(call: Call[BuyIn]) -> Response:
        return await confirmation_options(call, buy_purchase(call.body,
                                                             call.param(IDEMPOTENCY_KEY.name)))

    @api.endpoint("GET", "/orders/{order}", summary="An order (its buyer, brand or an operator)",
                  tag="buy", roles=(Role.BUYER, Role.BRAND, Role.OPERATOR), params=(ORDER,),
                  scope="orders:read")
    async def get_order(call: Call[Any]) -> Response:
        return json_response((await order_for(call, OrderId(call.param("order")))).public())

    @api.endpoint("GET", "/me/orders", summary="The buyer's orders, newest first, paginated",
                  tag="buy", roles=buyer, params=PAGE)
    async def my_orders(call: Call[Any]) -> Response:
        cursor, limit = page_params(call)
        ids = members(await call.services.client.zrevrange(
            buyer_orders_key(call.need_principal().subject), cursor, cursor + limit - 1))
        orders = await call.services.orders.get_many([OrderId(i) for i in ids])
        return json_response({"items": [o.public() for o in orders if o],
                              "next_cursor": cursor + limit if len(ids) == limit else None})

    @api.endpoint("POST", "/me/orders/{order}/cancel",
                  summary="Cancel an order before it ships (held or authorized)", tag="buy",
                  roles=buyer, params=(ORDER,))
    async def cancel_my_order(call: Call[Any]) -> Response:
        order = await order_for(call, OrderId(call.param("order")), buyer_only=True)
        try:
            done = await call.services.buys.cancel(order.id, "cancelled_by_buyer")
        except IllegalTransition as exc:
            raise Problem(409, "order-not-cancellable", _NOT_CANCELLABLE.get(
                exc.current, f"the order is {exc.current}"), state=exc.current) from None
        return json_response(done.public())

    @api.endpoint("POST", "/orders/{order}/pay", summary="Pay a held order (cart, waitlist)",
                  tag="buy", body=PayIn, optional_body=True, roles=buyer, params=(ORDER,))
    async def pay_order(call: Call[PayIn]) -> Response:
        order, payment, purchase = await _order_payment(call)
        await require_confirmation(call, purchase, call.body.passkey)
        result = await call.services.buys.settle(order, payment_token=payment.token,
                                                 snapshot=payment.snapshot)
        return buy_response(call, result)

    @api.endpoint("POST", "/orders/{order}/pay/confirmation",
                  summary="Passkey options bound to paying one held order", tag="buy",
                  body=PayIn, optional_body=True, roles=buyer, params=(ORDER,))
    async def pay_confirmation(call: Call[PayIn]) -> Response:
        _, _, purchase = await _order_payment(call)
        return await confirmation_options(call, purchase)

    @api.endpoint("POST", "/orders/{order}/capture", summary="Capture an authorized order (shipped)",
                  tag="orders", roles=(Role.BRAND, Role.OPERATOR), params=(ORDER,))
    async def capture_order(call: Call[Any]) -> Response:
        order = await _brand_order(call)
        if order.state not in (OrderState.AUTHORIZED, OrderState.PAID):
            raise Problem(409, "order-not-capturable", f"the order is {order.state}")
        await _gateway(call.services.gateway.capture(order.id))
        done, _ = await call.services.orders.transition(order.id, OrderState.PAID)
        return json_response(done.public())

    @api.endpoint("POST", "/orders/{order}/void", summary="Cancel an authorized order before capture",
                  tag="orders", roles=(Role.BRAND, Role.OPERATOR), params=(ORDER,))
    async def void_order(call: Call[Any]) -> Response:
        order = await _brand_order(call)
        try:
            # The order moves first (recording the void it owes), then the gateway follows:
            # a hold released for an order that still sells can't happen.
            done, _ = await call.services.orders.transition(order.id, OrderState.VOIDED,
                                                            "cancelled_by_brand")
        except IllegalTransition as exc:
            raise Problem(409, "order-not-voidable", f"the order is {exc.current}") from None
        await call.services.buys.pay_void_owed(order.id)
        return json_response(done.public())

    @api.endpoint("POST", "/cart/items", summary="Add to cart (holds stock on cart_hold streams)",
                  tag="cart", body=CartItemIn, roles=buyer, status=201, params=(IDEMPOTENCY_KEY,))
    async def add_to_cart(call: Call[CartItemIn]) -> Response:
        key = call.param(IDEMPOTENCY_KEY.name)
        buyer_id = BuyerId(call.need_principal().subject)
        body = call.body
        await _product_with_variant(call, body.product_id, body.variant)
        mode, in_show = "first_paid", False
        if body.stream_id:
            stream = await call.services.streams.get(body.stream_id)
            if stream is None:
                raise Problem(404, "not-found", "no such stream")
            mode, in_show = stream["purchase_mode"], body.product_id in stream["lineup"]
        item = await call.services.cart.add(
            buyer_id, body.stream_id or "", body.product_id, body.variant, body.quantity,
            mode=mode, idempotency_key=key, payment_token="", in_show=in_show)
        return json_response(item.public(), 201)

    @api.endpoint("GET", "/cart", summary="The buyer's cart", tag="cart", roles=buyer)
    async def get_cart(call: Call[Any]) -> Response:
        items = await call.services.cart.items(BuyerId(call.need_principal().subject))
        return json_response({"items": [i.public() for i in items]})

    @api.endpoint("DELETE", "/cart/items/{item}", summary="Remove a cart item (releases a hold)",
                  tag="cart", roles=buyer, status=204)
    async def remove_cart_item(call: Call[Any]) -> Response:
        removed = await call.services.cart.remove(BuyerId(call.need_principal().subject),
                                                  call.param("item"))
        if not removed:
            raise Problem(404, "not-found", "no such cart item")
        return Response(status_code=204)

    @api.endpoint("POST", "/cart/checkout", summary="Pay for everything in the cart", tag="cart",
                  body=PayIn, optional_body=True, roles=buyer)
    async def checkout_cart(call: Call[PayIn]) -> Response:
        buyer_id = BuyerId(call.need_principal().subject)
        lines, payment, purchase = await _cart_payment(call, buyer_id)
        if not lines:
            return json_response({"items": []})  # nothing to pay, nothing to confirm
        await require_confirmation(call, purchase, call.body.passkey)
        # Exactly the lines confirmed: one added meanwhile waits for the next checkout.
        outcomes = await call.services.cart.checkout(buyer_id, payment.token, payment.snapshot,
                                                     lines=lines)
        return json_response({"items": outcomes})

    @api.endpoint("POST", "/cart/checkout/confirmation",
                  summary="Passkey options bound to checking out the cart as it is", tag="cart",
                  body=PayIn, optional_body=True, roles=buyer)
    async def checkout_confirmation(call: Call[PayIn]) -> Response:
        lines, _, purchase = await _cart_payment(call, BuyerId(call.need_principal().subject))
        if not lines:
            raise Problem(409, "cart-empty", "the cart is empty: nothing to confirm")
        return await confirmation_options(call, purchase)

    @api.endpoint("POST", "/products/{product}/waitlist", summary="Join a sold-out item's waitlist",
                  tag="cart", body=WaitlistIn, roles=buyer, status=201)
    async def join_waitlist(call: Call[WaitlistIn]) -> Response:
        product_id = ProductId(call.param("product"))
        await _product_with_variant(call, product_id, call.body.variant, include_archived=True)
        try:
            position = await call.services.waitlist.join(product_id, call.body.variant,
                                                         BuyerId(call.need_principal().subject))
        except OverflowError:
            raise Problem(409, "waitlist-full", "this waitlist is full") from None
        return json_response({"product_id": product_id, "variant": call.body.variant,
                              "position": position}, 201)


async def _order_payment(call: Call[PayIn]) -> tuple[Order, Payment, Purchase]:
    """A held order of the buyer's, what pays it, and the purchase a passkey confirms."""
    order = await order_for(call, OrderId(call.param("order")), buyer_only=True)
    if order.state not in PENDING:
        raise Problem(409, "order-not-payable", f"the order is {order.state}")
    payment = await payment_of(call, order.fields["buyer"], call.body.address_id,
                               call.body.card_id)
    what = {"amount_minor": order.fields.get("amount_minor"),
            "currency": order.fields.get("currency"), "payment": payment.snapshot}
    return order, payment, Purchase.of("pay", order.id, what,
                                       f"/api/v1/orders/{order.id}/pay/confirmation")


async def _cart_payment(call: Call[PayIn],
                        buyer_id: BuyerId) -> tuple[list[CartItem], Payment, Purchase]:
    """The cart's lines as they are, what pays them, and the purchase a passkey confirms."""
    payment = await payment_of(call, buyer_id, call.body.address_id, call.body.card_id)
    lines = await call.services.cart.items(buyer_id)
    what = {"lines": [line.public() for line in lines], "payment": payment.snapshot}
    return lines, payment, Purchase.of("cart", "+".join(line.id for line in lines), what,
                                       "/api/v1/cart/checkout/confirmation")


def _buy_request(call: Call[BuyIn], buyer_id: BuyerId, key: str) -> BuyRequest:
    """The buy as checkout takes it, but for what pays it (the wallet's, added after)."""
    body = call.body
    channel = "showcase"
    creator: CreatorId | Literal[""] = ""
    code: LinkCode | Literal[""] = ""
    if body.replay and not body.stream_id:
        raise Problem(422, "replay-without-stream", "a replay buy names its show (stream_id)")
    if body.stream_id:
        channel = "replay" if body.replay else "stream"
    else:
        attribution_token = body.attribution or call.request.cookies.get("lc_attr")
        attribution = call.services.signer.verify(attribution_token) if attribution_token else None
        if attribution is not None and attribution.product == body.product_id:
            channel, creator, code = "link", attribution.creator, attribution.code
    return BuyRequest(buyer=buyer_id, product=body.product_id, variant=body.variant,
                      quantity=body.quantity, idempotency_key=key, channel=channel,
                      stream=body.stream_id or "", link_creator=creator, link_code=code,
                      expected_unit_price=body.expected_unit_price_minor,
                      viewer_delay_ms=min(body.viewer_delay_ms,
                                          call.services.settings.deal_viewer_delay_max_ms),
                      pay_with=(body.address_id or "", body.card_id or ""))


async def _product_with_variant(call: Call[Any], product_id: ProductId, variant: VariantId, *,
                                include_archived: bool = False) -> dict[str, Any]:
    product = await public_product(call, product_id, include_archived=include_archived)
    if variant not in {v["id"] for v in product["variants"]}:
        raise Problem(404, "variant-not-found", "no such variant")
    return product


async def _brand_order(call: Call[Any]) -> Order:
    order = await order_for(call, OrderId(call.param("order")))
    if not call.need_principal().can_act_for_brand(order.fields["brand"]):
        raise Problem(404, "not-found", "no such order")
    return order


async def _gateway(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except PaymentError as exc:
        raise Problem(502, "payment-gateway-error", type(exc).__name__) from None

