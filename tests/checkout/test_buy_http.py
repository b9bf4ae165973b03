"""The one-tap buy over real HTTP against a real node and a real Valkey."""

from __future__ import annotations

import asyncio

from conftest import Live
from shop import buy, give_wallet, idem, make_brand, make_live_stream, make_product, stock_of


async def test_buy_in_stream_pays_and_credits_the_host(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=5, commission_bps=1250)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    r = await buy(live, "bob", product["id"], stream=stream["id"], quantity=2)
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    assert order["state"] == "paid"
    assert order["amount_minor"] == 10000
    assert order["creator"] == "cleo"
    assert order["commission_minor"] == 1250
    assert "payment_token" not in order
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["held"], levels["sold"], levels["total"]) == (3, 0, 2, 5)
    await live.services.aggregator.drain()
    earnings = await live.http.get("/api/v1/creators/cleo/earnings",
                                   headers=live.auth("creator", "cleo"))
    assert earnings.json()["earned_minor"] == {"USD": 1250}
    report = (await live.http.get("/api/v1/brands/acme/report",
                                  headers=live.auth("brand", "acme"))).json()
    assert (report["units"], report["gmv_minor"], report["payout_minor"]) == (2, 10000, 8750)


async def test_same_key_replays_and_different_body_is_422(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    key = idem()
    first = await buy(live, "bob", product["id"], stream=stream["id"], key=key)
    again = await buy(live, "bob", product["id"], stream=stream["id"], key=key)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["order"]["id"] == again.json()["order"]["id"]
    other = await buy(live, "bob", product["id"], stream=stream["id"], key=key, quantity=2)
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert (await stock_of(live, product["id"]))["default"]["sold"] == 1


async def test_fifty_concurrent_duplicates_make_one_order_and_one_authorization(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    key = idem()
    replies = await asyncio.gather(*[buy(live, "bob", product["id"], stream=stream["id"], key=key)
                                     for _ in range(50)])
    assert {r.status_code for r in replies} == {201}
    assert len({r.json()["order"]["id"] for r in replies}) == 1
    assert await live.services.gateway.authorizations_count() == 1
    assert (await stock_of(live, product["id"]))["default"]["sold"] == 1


async def test_race_for_stock_sells_exactly_the_units(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=7)
    stream = await make_live_stream(live, [product["id"]])
    buyers = [f"b{i}" for i in range(40)]
    await asyncio.gather(*[give_wallet(live, b) for b in buyers])
    replies = await asyncio.gather(*[buy(live, b, product["id"], stream=stream["id"])
                                     for b in buyers])
    codes = [r.status_code for r in replies]
    assert codes.count(201) == 7
    assert codes.count(409) == 33
    assert all(r.json()["type"].endswith("/sold-out") for r in replies if r.status_code == 409)
    levels = (await stock_of(live, product["id"]))["default"]
    assert levels["available"] == 0 and levels["sold"] == 7
    assert levels["total"] == levels["available"] + levels["held"] + levels["sold"]


async def test_declined_card_gives_stock_back(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=1)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "dee", token="tok_insufficient_funds")
    r = await buy(live, "dee", product["id"], stream=stream["id"])
    assert r.status_code == 402
    assert r.json()["order"]["reason"] == "insufficient_funds"
    assert (await stock_of(live, product["id"]))["default"]["available"] == 1


async def test_not_live_stream_and_not_in_lineup_are_refused(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live)
    other = await make_product(live, sku="OTHER")
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    r = await buy(live, "bob", other["id"], stream=stream["id"])
    assert r.status_code == 409 and r.json()["type"].endswith("/not-offered")
    await live.http.post(f"/api/v1/streams/{stream['id']}/end", headers=live.auth("creator", "cleo"))
    r = await buy(live, "bob", product["id"], stream=stream["id"])
    assert r.status_code == 409 and r.json()["type"].endswith("/stream-not-live")
