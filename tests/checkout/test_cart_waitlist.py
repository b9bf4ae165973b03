"""Carts (cart_hold and first_paid streams) and waitlists, over real HTTP on a real node."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from conftest import Live
from shop import (buy, eventually, give_wallet, idem, make_brand, make_live_stream, make_product,
                  stock_of)

from checkout.store.keys import buyer_events_key, product_keys


async def add_to_cart(live: Live, buyer: str, product: str, stream: str | None = None,
                      quantity: int = 1, key: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"product_id": product, "quantity": quantity}
    if stream:
        body["stream_id"] = stream
    return await live.http.post("/api/v1/cart/items", json=body, headers={
        **live.auth("buyer", buyer), "Idempotency-Key": key or idem()})


async def cart_of(live: Live, buyer: str) -> list[dict[str, Any]]:
    r = await live.http.get("/api/v1/cart", headers=live.auth("buyer", buyer))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def checkout(live: Live, buyer: str) -> list[dict[str, Any]]:
    r = await live.http.post("/api/v1/cart/checkout", headers=live.auth("buyer", buyer))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def order_of(live: Live, buyer: str, order_id: str) -> dict[str, Any]:
    r = await live.http.get(f"/api/v1/orders/{order_id}", headers=live.auth("buyer", buyer))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def levels(live: Live, product: str) -> tuple[int, int, int, int]:
    s = (await stock_of(live, product))["default"]
    assert s["total"] == s["available"] + s["held"] + s["sold"], s
    return s["available"], s["held"], s["sold"], s["total"]


async def join_waitlist(live: Live, buyer: str, product: str) -> int:
    r = await live.http.post(f"/api/v1/products/{product}/waitlist", json={},
                             headers=live.auth("buyer", buyer))
    assert r.status_code == 201, r.text
    return int(r.json()["position"])


async def waitlist_events(live: Live, buyer: str) -> list[dict[str, Any]]:
    entries = await live.services.client.xrange(buyer_events_key(buyer))
    return [orjson.loads(fields[b"event"]) for _, fields in entries]


# -- cart_hold -------------------------------------------------------------------------

@pytest.mark.parametrize("node_settings", [{"cart_hold_s": 1}])
async def test_cart_hold_holds_stock_until_the_hold_runs_out(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=3)
    stream = await make_live_stream(live, [product["id"]], purchase_mode="cart_hold")
    r = await add_to_cart(live, "hal", product["id"], stream["id"], quantity=2)
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["held"] is True and item["order_id"]
    assert await levels(live, product["id"]) == (1, 2, 0, 3)
    held = await order_of(live, "hal", item["order_id"])
    assert held["state"] == "reserved" and held["qty"] == 2

    # The sweeper gives the stock back once the one-second hold runs out.
    async def expired() -> bool:
        return (await order_of(live, "hal", item["order_id"]))["state"] == "expired"
    await eventually(expired, "the cart hold to expire")
    assert await levels(live, product["id"]) == (3, 0, 0, 3)

    await give_wallet(live, "hal")
    outcomes = await checkout(live, "hal")
    assert [o["result"] for o in outcomes] == ["expired"]
    assert await cart_of(live, "hal") == []
    assert await levels(live, product["id"]) == (3, 0, 0, 3)


async def test_cart_hold_checkout_pays_what_it_holds(live: Live) -> None:
    await make_brand(live)
    shoe = await make_product(live, stock=1)
    cap = await make_product(live, sku="CAP", price_minor=1999, stock=5)
    stream = await make_live_stream(live, [shoe["id"], cap["id"]], purchase_mode="cart_hold")
    assert (await add_to_cart(live, "cara", shoe["id"], stream["id"])).status_code == 201
    assert (await add_to_cart(live, "cara", cap["id"], stream["id"], quantity=2)).status_code == 201
    assert [i["held"] for i in await cart_of(live, "cara")] == [True, True]

    # The last shoe is cara's while she holds it: a one-tap buyer finds it sold out.
    await give_wallet(live, "tap")
    r = await buy(live, "tap", shoe["id"], stream=stream["id"])
    assert r.status_code == 409 and r.json()["type"].endswith("/sold-out")

    await give_wallet(live, "cara")
    outcomes = await checkout(live, "cara")
    assert sorted(o["result"] for o in outcomes) == ["settled", "settled"]
    assert {o["order"]["state"] for o in outcomes} == {"paid"}
    assert sorted(o["order"]["amount_minor"] for o in outcomes) == [3998, 5000]
    assert await cart_of(live, "cara") == []
    assert await levels(live, shoe["id"]) == (0, 0, 1, 1)
    assert await levels(live, cap["id"]) == (3, 0, 2, 5)


async def test_removing_a_held_item_gives_the_stock_back(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=2)
    stream = await make_live_stream(live, [product["id"]], purchase_mode="cart_hold")
    item = (await add_to_cart(live, "rem", product["id"], stream["id"], quantity=2)).json()
    assert await levels(live, product["id"]) == (0, 2, 0, 2)
    r = await live.http.delete(f"/api/v1/cart/items/{item['id']}",
                               headers=live.auth("buyer", "rem"))
    assert r.status_code == 204
    assert await levels(live, product["id"]) == (2, 0, 0, 2)
    assert (await order_of(live, "rem", item["order_id"]))["state"] == "cancelled"
    assert await cart_of(live, "rem") == []


# -- first_paid ------------------------------------------------------------------------

async def test_first_paid_holds_nothing_and_the_first_to_pay_wins(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=1)
    stream = await make_live_stream(live, [product["id"]], purchase_mode="first_paid")
    for b in ("ada", "bea"):
        r = await add_to_cart(live, b, product["id"], stream["id"])
        assert r.status_code == 201, r.text
        assert r.json()["held"] is False and r.json()["order_id"] is None
        await give_wallet(live, b)
    assert await levels(live, product["id"]) == (1, 0, 0, 1)  # wishes take nothing

    first = await checkout(live, "bea")
    assert [o["result"] for o in first] == ["settled"]
    assert first[0]["order"]["state"] == "paid" and first[0]["order"]["buyer"] == "bea"
    second = await checkout(live, "ada")
    assert [o["result"] for o in second] == ["sold_out"]
    assert await cart_of(live, "ada") == [] and await cart_of(live, "bea") == []
    assert await levels(live, product["id"]) == (0, 0, 1, 1)


@pytest.mark.parametrize("mode", ["first_paid", "cart_hold"])
async def test_a_retried_add_to_cart_adds_once(live: Live, mode: str) -> None:
    """A lost reply to 'add' is retried with the same key: one item, one unit bought.
    (Before the cart keyed items by Idempotency-Key, first_paid checkout bought twice.)"""
    await make_brand(live)
    product = await make_product(live, stock=5)
    stream = await make_live_stream(live, [product["id"]], purchase_mode=mode)
    key = idem()
    first = await add_to_cart(live, "rty", product["id"], stream["id"], key=key)
    again = await add_to_cart(live, "rty", product["id"], stream["id"], key=key)  # lost reply
    assert first.status_code == again.status_code == 201
    await give_wallet(live, "rty")
    await checkout(live, "rty")
    assert (await levels(live, product["id"]))[2] == 1, "one tap on 'add', one unit bought"
    assert again.json()["id"] == first.json()["id"]


# -- waitlist --------------------------------------------------------------------------

async def test_restock_gives_the_first_in_line_a_hold_they_can_pay(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=1)
    await give_wallet(live, "first")
    assert (await buy(live, "first", product["id"])).status_code == 201
    r = await buy(live, "first", product["id"])
    assert r.status_code == 409 and r.json()["type"].endswith("/sold-out")

    assert await join_waitlist(live, "wes", product["id"]) == 1
    assert await join_waitlist(live, "wyn", product["id"]) == 2
    assert await join_waitlist(live, "wes", product["id"]) == 1  # joining twice keeps the place

    r = await live.http.put(f"/api/v1/products/{product['id']}/variants/default/stock",
                            json={"adjust": 1, "reason": "restock"},
                            headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    assert r.json()["waitlist_holds"] == 1
    assert await levels(live, product["id"]) == (0, 1, 1, 2)

    events = await waitlist_events(live, "wes")
    assert [e["type"] for e in events] == ["waitlist.hold"]
    hold = events[0]["order"]
    assert hold["state"] == "reserved" and hold["buyer"] == "wes" and hold["qty"] == 1
    assert hold["channel"] == "waitlist" and "payment_token" not in hold
    assert await waitlist_events(live, "wyn") == []
    assert await join_waitlist(live, "wyn", product["id"]) == 1  # now next in line

    # Only the holder can pay the hold.
    r = await live.http.post(f"/api/v1/orders/{hold['id']}/pay", headers=live.auth("buyer", "wyn"))
    assert r.status_code == 404
    await give_wallet(live, "wes")
    r = await live.http.post(f"/api/v1/orders/{hold['id']}/pay", headers=live.auth("buyer", "wes"))
    assert r.status_code == 201, r.text
    assert r.json()["order"]["state"] == "paid" and r.json()["payment"] == "settled"
    assert await levels(live, product["id"]) == (0, 0, 2, 2)
    r = await live.http.post(f"/api/v1/orders/{hold['id']}/pay", headers=live.auth("buyer", "wes"))
    assert r.status_code == 409 and r.json()["type"].endswith("/order-not-payable")


@pytest.mark.parametrize("node_settings", [{"waitlist_hold_s": 60}])
async def test_an_unpaid_waitlist_hold_passes_to_the_next_in_line(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=0)
    assert await join_waitlist(live, "una", product["id"]) == 1
    assert await join_waitlist(live, "vic", product["id"]) == 2
    r = await live.http.put(f"/api/v1/products/{product['id']}/variants/default/stock",
                            json={"set": 1, "reason": "restock"},
                            headers=live.auth("brand", "acme"))
    assert r.json()["waitlist_holds"] == 1
    una = (await waitlist_events(live, "una"))[0]["order"]
    # Una lets her hold run out: one sweep on a clock past its deadline. Vic's hold, which
    # that sweep makes, starts on the real clock, so he has its whole minute to pay (a 1 s
    # hold for both ran out before a loaded machine let him pay).
    await live.services.sweeper.sweep_once(now_ms=int(time.time() * 1000) + 61_000)

    async def vic_holds() -> list[dict[str, Any]]:
        return await waitlist_events(live, "vic")
    vic = (await eventually(vic_holds, "the hold to pass to the next in line"))[0]["order"]
    assert (await order_of(live, "una", una["id"]))["state"] == "expired"
    assert vic["state"] == "reserved" and vic["buyer"] == "vic"
    assert await levels(live, product["id"]) == (0, 1, 0, 1)
    await give_wallet(live, "vic")
    r = await live.http.post(f"/api/v1/orders/{vic['id']}/pay", headers=live.auth("buyer", "vic"))
    assert r.status_code == 201 and r.json()["order"]["state"] == "paid"


@pytest.mark.parametrize("how", ["removed", "declined"])
async def test_stock_given_back_by_the_cart_goes_to_the_waitlist(live: Live, how: str) -> None:
    await make_brand(live)
    product = await make_product(live, stock=1)
    stream = await make_live_stream(live, [product["id"]], purchase_mode="cart_hold")
    item = (await add_to_cart(live, "holder", product["id"], stream["id"])).json()
    assert await levels(live, product["id"]) == (0, 1, 0, 1)
    assert await join_waitlist(live, "waiter", product["id"]) == 1
    if how == "removed":
        r = await live.http.delete(f"/api/v1/cart/items/{item['id']}",
                                   headers=live.auth("buyer", "holder"))
        assert r.status_code == 204
    else:
        await give_wallet(live, "holder", token="tok_decline")
        assert [o["result"] for o in await checkout(live, "holder")] == ["declined"]
    # The unit is back: the first in line should now hold it.
    assert [e["type"] for e in await waitlist_events(live, "waiter")] == ["waitlist.hold"]


async def test_a_failure_while_serving_the_line_keeps_the_buyers_place(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serving the waitlist fails on our side (not a rule refusal): the buyer popped from
    the line goes back to the front, and the next return serves them."""
    await make_brand(live)
    product = await make_product(live, stock=0)
    assert await join_waitlist(live, "wes", product["id"]) == 1
    buys = live.services.buys
    real_reserve = buys.reserve

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("storage hiccup")

    monkeypatch.setattr(buys, "reserve", broken)
    with pytest.raises(ConnectionError):
        await live.services.waitlist.serve(product["id"], "default")
    monkeypatch.setattr(buys, "reserve", real_reserve)
    line = product_keys(product["id"]).waitlist("default")
    assert await live.services.client.lrange(line, 0, -1) == [b"wes"]  # still in line
    r = await live.http.put(f"/api/v1/products/{product['id']}/variants/default/stock",
                            json={"set": 1, "reason": "restock"},
                            headers=live.auth("brand", "acme"))
    assert r.json()["waitlist_holds"] == 1
