"""After the sale, over real HTTP against a real node: partial and full refunds (the amount
honoured, idempotent per key, never past the capture), shipping (capturing an on-shipment
payment first), delivery, returns, the brand's cancel, the brand's order list; the ledger,
the brand report and `livecart doctor`'s reconciliation follow every change to the cent."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from conftest import Live
from hypothesis import given
from hypothesis import strategies as st
from shop import buy, give_wallet, idem, make_brand, make_live_stream, make_product, stock_of

from checkout.money import commission_reversed
from checkout.reconcile import reconcile
from checkout.store.keys import buyer_events_key, product_keys
from live.web.problems import PROBLEM_BASE

LATER = 2**50  # a clock past every deadline


async def shop(live: Live, price: int = 5000, bps: int = 1000) -> tuple[str, str]:
    """acme's product in cleo's live stream; bob has a wallet. (product, stream)"""
    await make_brand(live)
    product = (await make_product(live, price_minor=price, commission_bps=bps))["id"]
    stream = (await make_live_stream(live, [product]))["id"]
    await give_wallet(live, "bob")
    return product, stream


async def bought(live: Live, product: str, stream: str, quantity: int = 1) -> dict[str, Any]:
    r = await buy(live, "bob", product, stream=stream, quantity=quantity)
    assert r.status_code == 201, r.text
    return dict(r.json()["order"])


async def refund(live: Live, order_id: str, key: str | None = None, *,
                 auth: dict[str, str] | None = None, **body: Any) -> Any:
    headers = {**(auth or live.auth("brand", "acme"))}
    if key:
        headers["Idempotency-Key"] = key
    return await live.http.post(f"/api/v1/orders/{order_id}/refund", headers=headers,
                                json=body or None)


async def report(live: Live) -> dict[str, Any]:
    await live.services.aggregator.drain()
    r = await live.http.get("/api/v1/brands/acme/report", headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def earned(live: Live, creator: str = "cleo") -> dict[str, Any]:
    r = await live.http.get(f"/api/v1/creators/{creator}/earnings",
                            headers=live.auth("creator", creator))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def doctor(live: Live) -> dict[str, Any]:
    await live.services.aggregator.drain()
    return (await reconcile(live.services.client, live.services.gateway,
                            live.services.settings.partitions)).public()


def problem(r: Any, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == PROBLEM_BASE + kind, body
    return dict(body)


# -- refunds ------------------------------------------------------------------------------


async def test_a_partial_refund_refunds_that_amount_not_everything(live: Live) -> None:
    """The bug: `amount_minor` was ignored and the whole order refunded."""
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    r = await refund(live, order["id"], idem(), amount_minor=1200, reason="scuffed")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["refunded_minor"]) == ("paid", 1200)
    assert body["refund"]["amount_minor"] == 1200 and body["refund"]["state"] == "done"
    charge = await live.services.gateway.charges(order["id"])
    assert (charge["captured_minor"], charge["refunded_minor"]) == ("5000", "1200")
    # Commission 500 (10 %); the refund takes back floor(500 * 1200 / 5000) = 120.
    got = await report(live)
    assert (got["captured_minor"], got["refunded_minor"], got["commission_minor"],
            got["payout_minor"]) == (5000, 1200, 380, 3420)
    assert (await earned(live))["earned_minor"] == {"USD": 380}
    assert (await doctor(live))["ok"] is True


async def test_each_partial_refund_is_idempotent_and_never_past_the_capture(live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    key = idem()
    first = await refund(live, order["id"], key, amount_minor=1000)
    again = await refund(live, order["id"], key, amount_minor=1000)
    assert first.status_code == again.status_code == 200
    assert first.json()["refund"] == again.json()["refund"]
    assert again.json()["refunded_minor"] == 1000  # once, not twice
    assert (await live.services.gateway.charges(order["id"]))["refund_count"] == "1"
    problem(await refund(live, order["id"], key, amount_minor=999), 422, "idempotency-key-reused")
    # Above what remains: refused, with what remains, and nothing changes.
    too_much = problem(await refund(live, order["id"], idem(), amount_minor=4001), 409,
                       "refund-exceeds-remaining")
    assert too_much["remaining_minor"] == 4000
    # A partial refund without a key could not be retried safely.
    problem(await refund(live, order["id"], amount_minor=10), 428, "idempotency-key-required")
    assert (await live.services.gateway.charges(order["id"]))["refunded_minor"] == "1000"
    # The rest, in full (no key: a full refund is idempotent by nature).
    rest = await refund(live, order["id"])
    assert rest.status_code == 200, rest.text
    assert (rest.json()["state"], rest.json()["refunded_minor"]) == ("refunded", 5000)
    assert [x["amount_minor"] for x in rest.json()["refunds"]] == [1000, 4000]
    assert (await refund(live, order["id"])).json()["refunded_minor"] == 5000
    problem(await refund(live, order["id"], idem(), amount_minor=1), 409, "order-not-refundable")
    got = await report(live)
    assert (got["refunded_minor"], got["commission_minor"], got["payout_minor"]) == (5000, 0, 0)
    ledger = (await earned(live))["ledger"]
    assert sum(e["commission_minor"] for e in ledger) == 0
    assert sorted(e["commission_minor"] for e in ledger) == [-400, -100, 500]
    assert (await doctor(live))["ok"] is True


async def test_concurrent_refunds_never_pass_the_capture(live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    replies = await asyncio.gather(*(refund(live, order["id"], idem(), amount_minor=1000)
                                     for _ in range(8)))
    assert sorted(r.status_code for r in replies) == [200] * 5 + [409] * 3
    assert (await live.services.gateway.charges(order["id"]))["refunded_minor"] == "5000"
    got = (await live.http.get(f"/api/v1/orders/{order['id']}",
                               headers=live.auth("brand", "acme"))).json()
    assert (got["state"], got["refunded_minor"], got["commission_reversed_minor"]) == (
        "refunded", 5000, 500)
    assert (await doctor(live))["ok"] is True


async def test_odd_amounts_split_to_the_cent(live: Live) -> None:
    """333 x 3 at 12.5 %: commission floor(999 * 0.125) = 124; refunds 1, 333, 665."""
    product, stream = await shop(live, price=333, bps=1250)
    order = await bought(live, product, stream, quantity=3)
    assert order["commission_minor"] == 124
    reversed_ = []
    for amount in (1, 333, None):
        r = await (refund(live, order["id"], idem(), amount_minor=amount) if amount
                   else refund(live, order["id"]))
        assert r.status_code == 200, r.text
        reversed_.append(r.json()["refund"]["commission_reversed_minor"])
    assert reversed_ == [0, 41, 83] and sum(reversed_) == 124
    got = await report(live)
    assert (got["captured_minor"], got["refunded_minor"], got["commission_minor"]) == (999, 999, 0)
    assert (await doctor(live))["ok"] is True


@given(st.integers(1, 10**9), st.integers(0, 8000),
       st.lists(st.integers(1, 10**9), min_size=1, max_size=8))
def test_the_rounding_rule_never_makes_or_loses_a_cent(amount: int, bps: int,
                                                       cuts: list[int]) -> None:
    commission = amount * bps // 10_000
    refunded, parts = 0, []
    for cut in [*cuts, amount]:  # the last refund takes all that remains
        step = min(cut, amount - refunded)
        before = commission_reversed(commission, amount, refunded)
        refunded += step
        part = commission_reversed(commission, amount, refunded) - before
        assert 0 <= part <= step  # never more than the refund itself
        parts.append(part)
    assert refunded == amount and sum(parts) == commission


async def test_a_refund_the_gateway_could_not_answer_is_finished_by_the_sweeper(
        live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    fulfilment = live.services.fulfilment
    # Opened on the order (as a request whose gateway call timed out leaves it), not paid,
    # owed far ahead so that the node's own sweeper leaves it to this test's sweep.
    await fulfilment._script(order["id"], "refund", "k:lost-refund", 700, "", "refunded", LATER)
    assert (await doctor(live))["pending"][0]["detail"] == "paid; a refund is owed"
    assert await live.services.sweeper.sweep_once(now_ms=LATER) == 1
    got = (await live.http.get(f"/api/v1/orders/{order['id']}",
                               headers=live.auth("brand", "acme"))).json()
    assert (got["refunded_minor"], got["refunds"][0]["state"]) == (700, "done")
    assert await live.services.client.zcard(product_keys(product).refunds) == 0
    # The same request again (its key) answers the refund made, and makes no other.
    r = await refund(live, order["id"], "lost-refund", amount_minor=700)
    assert r.status_code == 200 and r.json()["refunded_minor"] == 700
    assert (await live.services.gateway.charges(order["id"]))["refunded_minor"] == "700"
    assert (await doctor(live))["ok"] is True


async def test_the_doctor_sees_refunds_out_of_step(live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    assert (await refund(live, order["id"], idem(), amount_minor=500)).status_code == 200
    r = await live.http.post(f"/api/v1/orders/{order['id']}/ship", headers=live.auth(
        "brand", "acme"), json={"carrier": "UPS", "tracking_number": "1Z1"})
    assert r.status_code == 200, r.text
    assert (await doctor(live))["ok"] is True
    gw = live.services.gateway
    await live.services.client.hset(gw.order_key(order["id"]), "refunded_minor", "400")
    found = await doctor(live)
    assert not found["ok"]
    assert [m["kind"] for m in found["mismatches"]] == ["gateway"]
    assert "shipped" in found["mismatches"][0]["detail"]
    await live.services.client.hset(gw.order_key(order["id"]), "refunded_minor", "500")
    await live.services.client.hset(product_keys(product).order(order["id"]),
                                    "refunded_minor", "600")
    kinds = {m["kind"] for m in (await doctor(live))["mismatches"]}
    assert kinds == {"gateway", "brand"}


# -- shipping -----------------------------------------------------------------------------


@pytest.mark.parametrize("node_settings", [{"capture_mode": "on_shipment"}])
async def test_shipping_captures_first_then_ships(live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    assert order["state"] == "authorized"
    assert (await report(live))["captured_minor"] == 0
    url = f"/api/v1/orders/{order['id']}"
    ship = {"carrier": "DHL", "tracking_number": "JD0146 0000 123"}
    r = await live.http.post(f"{url}/ship", headers=live.auth("brand", "acme"), json=ship)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["carrier"], body["tracking"]) == ("shipped", "DHL",
                                                                 "JD0146 0000 123")
    assert (await live.services.gateway.charges(order["id"]))["state"] == "captured"
    again = await live.http.post(f"{url}/ship", headers=live.auth("brand", "acme"), json=ship)
    assert again.status_code == 200 and again.json()["state"] == "shipped"
    got = await report(live)
    assert (got["captured_minor"], got["commission_minor"], got["payout_minor"]) == (5000, 500,
                                                                                     4500)
    # The buyer sees it shipped, with its carrier and tracking number.
    mine = (await live.http.get(url, headers=live.auth("buyer", "bob"))).json()
    assert (mine["state"], mine["tracking"]) == ("shipped", "JD0146 0000 123")
    r = await live.http.post(f"{url}/deliver", headers=live.auth("brand", "acme"))
    assert r.status_code == 200 and r.json()["state"] == "delivered"
    # Shipped: the brand can no longer cancel; it refunds instead.
    problem(await live.http.post(f"{url}/cancel", headers=live.auth("brand", "acme")), 409,
            "order-not-cancellable")
    assert (await doctor(live))["ok"] is True


async def test_an_unpaid_order_does_not_ship(live: Live) -> None:
    product, stream = await shop(live)
    await give_wallet(live, "dee", token="tok_decline")
    r = await buy(live, "dee", product, stream=stream)
    assert r.status_code == 402, r.text
    declined = r.json()["order"]["id"]
    r = await live.http.post(f"/api/v1/orders/{declined}/ship", headers=live.auth(
        "brand", "acme"), json={"carrier": "UPS", "tracking_number": "1Z1"})
    body = problem(r, 409, "order-not-shippable")
    assert body["state"] == "declined"
    r = await live.http.post(f"/api/v1/orders/{declined}/deliver",
                             headers=live.auth("brand", "acme"))
    problem(r, 409, "order-not-shipped")


# -- the brand's cancel and returns ------------------------------------------------------


@pytest.mark.parametrize("node_settings", [{"capture_mode": "on_shipment"}])
async def test_the_brand_cancels_an_authorized_order_by_voiding_it(live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    r = await live.http.post(f"/api/v1/orders/{order['id']}/cancel",
                             headers=live.auth("brand", "acme"))
    assert r.status_code == 200 and r.json()["state"] == "voided"
    assert (await stock_of(live, product))["default"]["available"] == 10
    assert (await doctor(live))["ok"] is True


async def test_the_brand_cancels_a_paid_order_by_refunding_it_with_its_stock(live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream, quantity=2)
    url = f"/api/v1/orders/{order['id']}/cancel"
    r = await live.http.post(url, headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["reason"], body["refunded_minor"], body["restocked"]) == (
        "refunded", "cancelled_by_brand", 10000, True)
    again = await live.http.post(url, headers=live.auth("brand", "acme"))
    assert again.status_code == 200 and again.json()["refunded_minor"] == 10000
    assert (await stock_of(live, product))["default"]["available"] == 10
    assert (await doctor(live))["ok"] is True


async def test_a_return_approved_refunds_part_and_restocks(live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    url = f"/api/v1/orders/{order['id']}"
    await live.http.post(f"{url}/ship", headers=live.auth("brand", "acme"),
                         json={"carrier": "UPS", "tracking_number": "1Z2"})
    # Only its buyer may ask; nothing to decide before it asks.
    r = await live.http.post(f"/api/v1/me/orders/{order['id']}/return",
                             headers=live.auth("buyer", "eve"), json={"reason": "mine now"})
    problem(r, 404, "not-found")
    problem(await live.http.post(f"{url}/return", headers=live.auth("brand", "acme"),
                                 json={"approve": True}), 409, "no-return-requested")
    r = await live.http.post(f"/api/v1/me/orders/{order['id']}/return",
                             headers=live.auth("buyer", "bob"), json={"reason": "too small"})
    assert r.status_code == 200, r.text
    assert (r.json()["return_state"], r.json()["return_reason"]) == ("requested", "too small")
    r = await live.http.post(f"{url}/return", headers=live.auth("brand", "acme"),
                             json={"approve": True, "amount_minor": 4500, "restock": True,
                                   "note": "less shipping"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["return_state"], body["refunded_minor"]) == (
        "shipped", "refunded", 4500)
    assert (await stock_of(live, product))["default"]["available"] == 10
    got = await report(live)
    # Commission 500 - floor(500 * 4500 / 5000) = 50 left; payout 5000 - 4500 - 50.
    assert (got["refunded_minor"], got["commission_minor"], got["payout_minor"]) == (4500, 50,
                                                                                     450)
    r = await live.http.post(f"/api/v1/me/orders/{order['id']}/return",
                             headers=live.auth("buyer", "bob"), json={"reason": "again"})
    problem(r, 409, "return-exists")
    assert (await doctor(live))["ok"] is True


async def test_a_return_rejected_changes_no_money(live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    r = await live.http.post(f"/api/v1/me/orders/{order['id']}/return",
                             headers=live.auth("buyer", "bob"), json={"reason": "meh"})
    assert r.status_code == 200
    r = await live.http.post(f"/api/v1/orders/{order['id']}/return",
                             headers=live.auth("brand", "acme"),
                             json={"approve": False, "note": "worn"})
    assert r.status_code == 200 and r.json()["return_state"] == "rejected"
    assert r.json()["refunded_minor"] == 0
    assert (await report(live))["refunded_minor"] == 0


# -- the brand's list ---------------------------------------------------------------------


async def test_the_brand_lists_its_orders_with_buyer_and_shipping(live: Live) -> None:
    product, stream = await shop(live)
    account, _ = await live.services.accounts.sign_in("ann@example.com")
    await live.services.accounts.set_display_name(account.id, "Ann Lee")
    await give_wallet(live, account.id)
    first = await bought(live, product, stream)
    r = await buy(live, account.id, product)  # a showcase buy: no stream
    assert r.status_code == 201, r.text
    second = r.json()["order"]
    await live.http.post(f"/api/v1/orders/{first['id']}/ship", headers=live.auth(
        "brand", "acme"), json={"carrier": "UPS", "tracking_number": "1Z3"})
    await live.services.aggregator.drain()
    acme = live.auth("brand", "acme")
    listed = (await live.http.get("/api/v1/brands/acme/orders", headers=acme)).json()["items"]
    assert [o["id"] for o in listed] == [second["id"], first["id"]]
    ann, bob = listed
    assert (ann["buyer_name"], ann["buyer_email"], ann["buyer"]) == ("Ann Lee",
                                                                     "ann@example.com", "u***")
    assert (bob["buyer_name"], bob["buyer_email"]) == ("B", None)
    assert bob["ship_to"]["city"] == "X" and bob["tracking"] == "1Z3"
    shipped = (await live.http.get("/api/v1/brands/acme/orders?state=shipped",
                                   headers=acme)).json()
    assert [o["id"] for o in shipped["items"]] == [first["id"]]
    in_stream = (await live.http.get(f"/api/v1/brands/acme/orders?stream={stream}&limit=1",
                                     headers=acme)).json()
    assert [o["id"] for o in in_stream["items"]] == [first["id"]]
    r = await live.http.get("/api/v1/brands/acme/orders?state=lost", headers=acme)
    problem(r, 400, "bad-query")
    # Another brand sees none of it.
    await make_brand(live, "bravo")
    problem(await live.http.get("/api/v1/brands/acme/orders",
                                headers=live.auth("brand", "bravo")), 403, "forbidden")
    assert (await live.http.get("/api/v1/brands/bravo/orders", headers=live.auth(
        "brand", "bravo"))).json()["items"] == []


async def test_refund_body_problems(live: Live) -> None:
    product, stream = await shop(live)
    order = await bought(live, product, stream)
    for body in ({"amount_minor": 0}, {"amount_minor": -5}, {"amount_minor": "10"},
                 {"amount_minor": 1.5}, {"restock": "yes"}):
        r = await live.http.post(f"/api/v1/orders/{order['id']}/refund", json=body,
                                 headers={**live.auth("brand", "acme"), "Idempotency-Key": idem()})
        problem(r, 422, "validation-error")
    assert (await live.services.gateway.charges(order["id"])).get("refunded_minor") == "0"


async def test_a_refund_with_restock_serves_the_waitlist(live: Live) -> None:
    await make_brand(live)
    product = (await make_product(live, stock=1))["id"]
    await give_wallet(live, "bob")
    r = await buy(live, "bob", product)
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    r = await live.http.post(f"/api/v1/products/{product}/waitlist", json={},
                             headers=live.auth("buyer", "wes"))
    assert r.status_code == 201 and r.json()["position"] == 1, r.text
    r = await refund(live, order["id"], idem(), amount_minor=5000, restock=True)
    assert r.status_code == 200 and r.json()["restocked"] is True, r.text
    # Refunded in full by amount: "the rest" is nothing, answered with the order as it is.
    r = await refund(live, order["id"])
    assert r.status_code == 200 and r.json()["refund"]["amount_minor"] == 5000, r.text
    events = await live.services.client.xrange(buyer_events_key("wes"))
    assert [orjson.loads(fields[b"event"])["type"] for _, fields in events] == ["waitlist.hold"]
    assert (await stock_of(live, product))["default"]["held"] == 1
    assert (await doctor(live))["ok"] is True
