"""HTTP endpoints for a brand's orders after the sale: the list (with the buyer and where it
ships), mark shipped (capturing an on-shipment payment first), delivered, the brand's
cancel, refunds of an amount or in full, and returns (the buyer asks, the brand decides).
The rules are checkout/fulfilment.py's; docs/checkout.md has the states and the rounding."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints
from starlette.responses import Response

from checkout.ids import BrandId, OrderId, is_valid_id
from checkout.order_states import IllegalTransition, OrderState
from checkout.orders import Order
from checkout.fulfilment import FULL, RefundOutcome
from checkout.models import StrictModel
from checkout.store.keys import brand_agg_keys
from checkout.store.replies import members
from live.accounts.auth import Role
from live.web.api import Api, Call, Param, json_response
from live.web.buy_api import ORDER, order_for
from live.web.catalog_api import PAGE, page_params
from live.web.problems import Problem
from live.web.team_admin import is_brand_admin

__all__ = ["register", "MAX_CARRIER", "MAX_TRACKING", "MAX_REASON", "ORDERS_SCAN"]

MAX_CARRIER = 64
MAX_TRACKING = 64
MAX_REASON = 500
# At most this many of a brand's orders are read per page of a filtered list; the page's
# `next_cursor` goes on from where the scan stopped.
ORDERS_SCAN = 500

# The buy's Idempotency-Key (8-128 of [A-Za-z0-9_.:-]), optional here: "" is a full refund's.
REFUND_KEY = Param("Idempotency-Key", "header", Annotated[str, StringConstraints(
    max_length=128, pattern=r"^([A-Za-z0-9_.:-]{8,128})?$")], default="")
STATE = Param("state", "query", Annotated[str, StringConstraints(
    pattern="^(" + "|".join(s.value for s in OrderState) + ")?$")], default="")
STREAM = Param("stream", "query", Annotated[str, StringConstraints(
    pattern=r"^([A-Za-z0-9_-]{1,64})?$")], default="")
Text = Annotated[str, StringConstraints(max_length=MAX_REASON)]
# Says something: at least one character that is not a space.
Said = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON, pattern=r"\S")]


class ShipIn(StrictModel):
    carrier: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CARRIER,
                                              pattern=r"\S")]
    tracking_number: Annotated[str, StringConstraints(
        min_length=1, max_length=MAX_TRACKING, pattern=r"^[A-Za-z0-9._/-][A-Za-z0-9 ._/-]*$")]


class RefundIn(StrictModel):
    # None: all that remains. Each partial refund needs an Idempotency-Key.
    amount_minor: Annotated[int, Field(ge=1, le=10**12)] | None = None
    restock: bool = False
    reason: Text = ""


class ReturnIn(StrictModel):
    reason: Said


class ReturnDecisionIn(StrictModel):
    approve: bool
    note: Text = ""
    # Approving: the refund (None: all that remains), and whether the units go back to stock.
    amount_minor: Annotated[int, Field(ge=1, le=10**12)] | None = None
    restock: bool = False


def register(api: Api) -> None:
    staff = (Role.BRAND, Role.OPERATOR)

    @api.endpoint("GET", "/brands/{brand}/orders",
                  summary="The brand's sold orders, newest first, with buyer and shipping",
                  tag="orders", roles=staff, params=(*PAGE, STATE, STREAM))
    async def brand_orders(call: Call[Any]) -> Response:
        brand_id = await _readable_brand(call)
        cursor, limit = page_params(call)
        state, stream = call.param(STATE.name), call.param(STREAM.name)
        key = brand_agg_keys(brand_id).orders
        if not state and not stream:
            ids = members(await call.services.client.zrevrange(key, cursor, cursor + limit - 1))
            orders = [o for o in await call.services.orders.get_many(
                [OrderId(i) for i in ids]) if o]
            more = len(ids) == limit
            next_cursor = cursor + limit
        else:
            ids = members(await call.services.client.zrevrange(key, cursor,
                                                                cursor + ORDERS_SCAN - 1))
            orders, scanned = [], 0
            for order in await call.services.orders.get_many([OrderId(i) for i in ids]):
                scanned += 1
                if order and (not state or order.state == state) and (
                        not stream or order.fields["stream"] == stream):
                    orders.append(order)
                    if len(orders) == limit:
                        break
            more = scanned < len(ids) or len(ids) == ORDERS_SCAN
            next_cursor = cursor + scanned
        items = [await _for_brand(call, order) for order in orders]
        return json_response({"items": items, "next_cursor": next_cursor if more else None})

    @api.endpoint("POST", "/orders/{order}/ship",
                  summary="Mark shipped with carrier and tracking (captures an on-shipment payment first)",
                  tag="orders", body=ShipIn, roles=staff, params=(ORDER,))
    async def ship(call: Call[ShipIn]) -> Response:
        order = await _brand_order(call)
        try:
            done = await call.services.fulfilment.ship(order.id, call.body.carrier,
                                                       call.body.tracking_number)
        except IllegalTransition as exc:
            raise Problem(409, "order-not-shippable", _not_shippable(exc.current),
                          state=exc.current) from None
        return json_response(await _for_brand(call, done))

    @api.endpoint("POST", "/orders/{order}/deliver", summary="Mark a shipped order delivered",
                  tag="orders", roles=staff, params=(ORDER,))
    async def deliver(call: Call[Any]) -> Response:
        order = await _brand_order(call)
        if order.state is OrderState.DELIVERED:
            return json_response(await _for_brand(call, order))
        try:
            done = await call.services.fulfilment.deliver(order.id)
        except IllegalTransition as exc:
            raise Problem(409, "order-not-shipped", f"the order is {exc.current}",
                          state=exc.current) from None
        return json_response(await _for_brand(call, done))

    @api.endpoint("POST", "/orders/{order}/cancel",
                  summary="The brand cancels before shipment (void, or refund in full with the stock back)",
                  tag="orders", roles=staff, params=(ORDER,))
    async def cancel(call: Call[Any]) -> Response:
        order = await _brand_order(call, admin=True)
        try:
            done = await call.services.fulfilment.cancel(order.id)
        except IllegalTransition as exc:
            raise Problem(409, "order-not-cancellable", f"the order is {exc.current}",
                          state=exc.current) from None
        return json_response(await _for_brand(call, done))

    @api.endpoint("POST", "/orders/{order}/refund",
                  summary="Refund an amount (with an Idempotency-Key) or all that remains",
                  tag="orders", body=RefundIn, roles=staff, params=(ORDER, REFUND_KEY),
                  optional_body=True)
    async def refund(call: Call[RefundIn]) -> Response:
        order = await _brand_order(call, admin=True)
        body = call.body or RefundIn()
        key = call.param(REFUND_KEY.name)
        if not key and body.amount_minor is not None:
            raise Problem(428, "idempotency-key-required",
                          "a partial refund needs an Idempotency-Key, so a retry refunds once")
        outcome = await call.services.fulfilment.refund(
            order.id, f"k:{key}" if key else "full", FULL if body.amount_minor is None
            else body.amount_minor, restock=body.restock, reason=body.reason or "refunded")
        return await _refund_answer(call, outcome)

    @api.endpoint("POST", "/me/orders/{order}/return", summary="Ask to return a paid or shipped order",
                  tag="buy", body=ReturnIn, roles=(Role.BUYER,), params=(ORDER,))
    async def request_return(call: Call[ReturnIn]) -> Response:
        order = await order_for(call, OrderId(call.param("order")), buyer_only=True)
        done = await call.services.fulfilment.request_return(order.id, call.body.reason)
        return json_response(done.public())

    @api.endpoint("POST", "/orders/{order}/return",
                  summary="Approve (refund, restock) or reject the buyer's return",
                  tag="orders", body=ReturnDecisionIn, roles=staff, params=(ORDER,))
    async def decide_return(call: Call[ReturnDecisionIn]) -> Response:
        order = await _brand_order(call, admin=True)
        b = call.body
        outcome = await call.services.fulfilment.decide_return(
            order.id, b.approve, b.note, b.amount_minor, b.restock)
        if isinstance(outcome, RefundOutcome):
            return await _refund_answer(call, outcome)
        return json_response(await _for_brand(call, outcome))


async def _refund_answer(call: Call[Any], outcome: RefundOutcome) -> Response:
    """200 with the order once the gateway refunded; 202 while the refund is owed; a
    refund the gateway refused before (the same key again) stays refused."""
    body = await _for_brand(call, outcome.order)
    n = int(outcome.refund["n"])
    refund = next(r for r in body["refunds"] if r["n"] == n)
    if refund["state"] == "failed":
        raise Problem(409, "refund-refused", "the payment gateway refused this refund",
                      refund=refund)
    return json_response({**body, "refund": refund}, 202 if outcome.pending else 200)


def _not_shippable(state: str) -> str:
    if state in ("reserved", "paying"):
        return "the order is not paid yet"
    return f"the order is {state}"


async def _brand_order(call: Call[Any], *, admin: bool = False) -> Order:
    """The order, if the caller acts for its brand (404 otherwise, as for no order); with
    `admin`, money going back needs a brand admin (a member of the team may not)."""
    order = await order_for(call, OrderId(call.param("order")))
    principal = call.need_principal()
    if not principal.can_act_for_brand(order.fields["brand"]):
        raise Problem(404, "not-found", "no such order")
    if admin and principal.role is Role.BRAND and not await is_brand_admin(call):
        raise Problem(403, "brand-admin-required", "only a brand admin can give money back")
    return order


async def _for_brand(call: Call[Any], order: Order) -> dict[str, Any]:
    """The order as its brand sees it: who bought it (masked id, name, email) and where it
    ships, as at purchase."""
    data = order.public()
    buyer = str(data.get("buyer") or "")
    account = await call.services.accounts.get(buyer) if buyer.startswith("u_") else None
    ship_to = data.get("ship_to") or {}
    data["buyer"] = buyer[:1] + "***"
    data["buyer_name"] = (account.display_name if account else "") or ship_to.get("name", "")
    data["buyer_email"] = account.email if account else None
    return data


async def _readable_brand(call: Call[Any]) -> BrandId:
    brand_id = BrandId(call.param("brand"))
    if not call.need_principal().can_act_for_brand(brand_id):
        raise Problem(403, "forbidden", "a brand can read only its own orders")
    if not is_valid_id(brand_id) or await call.services.catalog.brand(brand_id) is None:
        raise Problem(404, "not-found", "no such brand")
    return brand_id
