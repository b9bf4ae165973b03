"""A buyer's orders over real HTTP: the list newest first in pages, the receipt's fields,
cancelling before shipment through the order's own moves (a held order gives its stock
back, an authorized one is voided at the gateway), never another buyer's order, and the
price shown being the price charged."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis

from conftest import Live
from shop import (buy, db_state, give_wallet, idem, make_brand, make_live_stream, make_product,
                  stock_of)
from test_bad_input import assert_problem, state_diff

REGULAR, DEAL = 5000, 3900


async def shop(live: Live, **product: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    await make_brand(live)
    item = await make_product(live, stock=10, price_minor=REGULAR, **product)
    stream = await make_live_stream(live, [item["id"]])
    return item, stream


async def test_the_list_is_newest_first_in_pages(live: Live) -> None:
    product, stream = await shop(live)
    await give_wallet(live, "ann")
    bought = []
    for _ in range(3):
        r = await buy(live, "ann", product["id"], stream=stream["id"])
        assert r.status_code == 201, r.text
        bought.append(r.json()["order"]["id"])
    await live.services.aggregator.drain()  # the buyer's list follows the outbox
    ann = live.auth("buyer", "ann")
    r = await live.http.get("/api/v1/me/orders?limit=2", headers=ann)
    first = r.json()
    assert [o["id"] for o in first["items"]] == bought[::-1][:2] and first["next_cursor"] == 2
    r = await live.http.get("/api/v1/me/orders?limit=2&cursor=2", headers=ann)
    assert [o["id"] for o in r.json()["items"]] == [bought[0]]
    assert r.json()["next_cursor"] is None
    receipt = first["items"][0]
    assert (receipt["title"], receipt["qty"], receipt["amount_minor"], receipt["state"]) == \
        ("Sneaker", 1, REGULAR, "paid")
    assert receipt["ship_to"]["line1"] == "1 St" and receipt["card"] == {"brand": "visa",
                                                                         "last4": "4242"}
    assert "payment_token" not in receipt
    for query in ("limit=0", "limit=101", "cursor=-1", "cursor=x"):
        assert_problem(await live.http.get(f"/api/v1/me/orders?{query}", headers=ann), 400,
                       "bad-query")


@pytest.mark.parametrize("node_settings", [{"capture_mode": "on_shipment"}])
async def test_an_authorized_order_is_cancelled_by_a_void(live: Live) -> None:
    product, stream = await shop(live)
    await give_wallet(live, "ann")
    r = await buy(live, "ann", product["id"], stream=stream["id"])
    order = r.json()["order"]
    assert order["state"] == "authorized"  # awaiting shipment
    assert (await stock_of(live, product["id"]))["default"]["sold"] == 1
    # Another buyer cannot, and learns nothing: the same 404 as an order that never was.
    eve = live.auth("buyer", "eve")
    r = await live.http.post(f"/api/v1/me/orders/{order['id']}/cancel", headers=eve)
    assert_problem(r, 404, "not-found")
    unknown = await live.http.post("/api/v1/me/orders/p_000000000000.00/cancel", headers=eve)
    assert r.json() == unknown.json()
    # The buyer can: the order is voided, the stock is back, the gateway's hold released.
    ann = live.auth("buyer", "ann")
    r = await live.http.post(f"/api/v1/me/orders/{order['id']}/cancel", headers=ann)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["reason"]) == ("voided", "cancelled_by_buyer")
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["sold"]) == (10, 0)
    assert (await live.services.gateway.status(order["id"])).state == "voided"
    # Asking again changes nothing; the brand can no longer capture it.
    again = await live.http.post(f"/api/v1/me/orders/{order['id']}/cancel", headers=ann)
    assert again.status_code == 200 and again.json()["state"] == "voided"
    r = await live.http.post(f"/api/v1/orders/{order['id']}/capture",
                             headers=live.auth("brand", "acme"))
    assert_problem(r, 409, "order-not-capturable")


async def test_a_held_order_is_cancelled_and_a_paid_one_is_not(live: Live,
                                                               rclient: redis.Redis) -> None:
    await make_brand(live)
    product = await make_product(live, stock=4)
    r = await live.http.post("/api/v1/streams", headers=live.auth("creator", "cleo"), json={
        "title": "Hold", "lineup": [product["id"]], "purchase_mode": "cart_hold"})
    stream = r.json()["id"]
    r = await live.http.post(f"/api/v1/streams/{stream}/live", headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    await give_wallet(live, "ann")
    ann = live.auth("buyer", "ann")
    r = await live.http.post("/api/v1/cart/items", headers={**ann, "Idempotency-Key": idem()},
                             json={"product_id": product["id"], "stream_id": stream})
    held = r.json()["order_id"]
    assert (await stock_of(live, product["id"]))["default"]["held"] == 1
    r = await live.http.post(f"/api/v1/me/orders/{held}/cancel", headers=ann)
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    assert (await stock_of(live, product["id"]))["default"]["available"] == 4
    # Paid (captured at once): only the shop's refund undoes it.
    r = await buy(live, "ann", product["id"])
    paid = r.json()["order"]
    await live.services.aggregator.drain()  # its totals: folded before the picture
    before = await db_state(rclient)
    r = await live.http.post(f"/api/v1/me/orders/{paid['id']}/cancel", headers=ann)
    assert_problem(r, 409, "order-not-cancellable")
    assert r.json()["state"] == "paid"
    assert state_diff(before, await db_state(rclient)) == []


async def test_a_price_the_buyer_was_not_shown_is_never_charged(live: Live) -> None:
    """During a deal's countdown the regular price applies; a buy that names another price
    is refused with the one that applies, before the gateway hears of it."""
    product, stream = await shop(live, deal_floor_minor=1)
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/deals",
                             headers=live.auth("creator", "cleo"),
                             json={"product_id": product["id"], "price_minor": DEAL,
                                   "quantity": 5, "per_buyer_limit": 1, "countdown_s": 60,
                                   "duration_s": 60})
    assert r.status_code == 201, r.text
    await give_wallet(live, "ann")
    authorized = await live.services.gateway.authorizations_count()  # type: ignore[attr-defined]
    r = await buy(live, "ann", product["id"], stream=stream["id"], expected_unit_price_minor=DEAL)
    assert_problem(r, 409, "price-changed")
    assert r.json()["unit_price_minor"] == REGULAR
    assert await live.services.gateway.authorizations_count() == authorized  # type: ignore[attr-defined]
    r = await buy(live, "ann", product["id"], stream=stream["id"],
                  expected_unit_price_minor=REGULAR)
    assert r.status_code == 201 and r.json()["order"]["amount_minor"] == REGULAR
