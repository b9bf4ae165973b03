"""Buying from a replay (channel `replay`): an ended show's lineup at today's list price,
credited to the show's creator, and reported apart from the show's live sales."""

from __future__ import annotations

from typing import Any

from conftest import Live
from shop import buy, give_wallet, idem, make_brand, make_live_stream, make_product, stock_of
from test_affiliate import earnings, refund
from test_deals import DEAL, REGULAR, now_ms, rewrite_deal, start_deal


async def end(live: Live, stream: str, creator: str = "cleo") -> None:
    r = await live.http.post(f"/api/v1/streams/{stream}/end",
                             headers=live.auth("creator", creator))
    assert r.status_code == 200, r.text


async def report(live: Live, brand: str = "acme") -> dict[str, Any]:
    r = await live.http.get(f"/api/v1/brands/{brand}/report", headers=live.auth("brand", brand))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_replay_sells_at_todays_price_credits_the_host_and_reports_apart(
        live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=10, price_minor=REGULAR, commission_bps=1250)
    stream = (await make_live_stream(live, [product["id"]]))["id"]
    await start_deal(live, stream, product["id"])
    await rewrite_deal(live, stream, product["id"], opens_ms=now_ms() - 1000)
    await give_wallet(live, "bob")
    r = await buy(live, "bob", product["id"], stream=stream)
    assert r.status_code == 201 and r.json()["order"]["unit_price_minor"] == DEAL, r.text
    await end(live, stream)
    # The show's deal, still open by its clock, is not the replay's price.
    await rewrite_deal(live, stream, product["id"], opens_ms=now_ms() - 1000)
    key = idem()
    r = await buy(live, "bob", product["id"], stream=stream, key=key, quantity=2, replay=True)
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    assert (order["channel"], order["stream"], order["creator"], order["state"]) == (
        "replay", stream, "cleo", "paid")
    assert (order["unit_price_minor"], order["amount_minor"], order["commission_bps"],
            order["commission_minor"], bool(order["deal"])) == (
        REGULAR, 2 * REGULAR, 1250, 1250, False)
    # The same key answers the same order; the same key without `replay` is another request.
    again = await buy(live, "bob", product["id"], stream=stream, key=key, quantity=2,
                      replay=True)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["order"]["id"] == order["id"]
    other = await buy(live, "bob", product["id"], stream=stream, key=key, quantity=2)
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    assert (await stock_of(live, product["id"]))["default"]["sold"] == 3

    await live.services.aggregator.drain()
    brand = await report(live)
    assert (brand["units"], brand["orders"], brand["gmv_minor"]) == (3, 2, DEAL + 2 * REGULAR)
    assert brand["streams"] == [{"stream_id": stream, "units": 1, "orders": 1,
                                 "gmv_minor": DEAL, "replay_units": 2, "replay_orders": 1,
                                 "replay_gmv_minor": 2 * REGULAR}]
    # The live room's counters and ticker are what the show sold; the replay's apart.
    stats = (await live.http.get(f"/api/v1/streams/{stream}/stats")).json()
    assert (stats["units"], stats["orders"], stats["gmv_minor"]) == (1, 1, DEAL)
    assert stats["replay"] == {"units": 2, "orders": 1, "gmv_minor": 2 * REGULAR}
    assert [t["order"] for t in stats["just_bought"]] != [] and order["id"] not in [
        t["order"] for t in stats["just_bought"]]
    cleo = live.auth("creator", "cleo")
    earned = (await live.http.get("/api/v1/creators/cleo/earnings", headers=cleo)).json()
    live_commission = DEAL * 1250 // 10000
    assert earned["earned_minor"] == {"USD": live_commission + 1250}
    assert earned["replay_earned_minor"] == {"USD": 1250}
    assert {(e["order"], e["channel"], e["stream"], e["commission_minor"])
            for e in earned["ledger"]} >= {(order["id"], "replay", stream, 1250)}
    assert {e["channel"] for e in earned["ledger"]} == {"stream", "replay"}
    parts = (await live.http.get("/api/v1/creators/cleo/earnings/breakdown",
                                 headers=cleo)).json()
    assert parts["shows"] == [{"stream_id": stream, "currency": "USD",
                               "commission_minor": live_commission, "sales_minor": DEAL,
                               "orders": 1}]
    assert parts["replays"] == [{"stream_id": stream, "currency": "USD",
                                 "commission_minor": 1250, "sales_minor": 2 * REGULAR,
                                 "orders": 1}]


async def test_only_an_ended_show_has_a_replay(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live)
    other = await make_product(live, sku="OTHER")
    stream = (await make_live_stream(live, [product["id"]]))["id"]
    await give_wallet(live, "bob")
    r = await buy(live, "bob", product["id"], stream=stream, replay=True)
    assert r.status_code == 409 and r.json()["type"].endswith("/not-a-replay"), r.text
    assert r.json()["state"] == "live"
    r = await buy(live, "bob", product["id"], replay=True)
    assert r.status_code == 422 and r.json()["type"].endswith("/replay-without-stream")
    await end(live, stream)
    # Not in the show's lineup: refused as the stream channel refuses it.
    r = await buy(live, "bob", other["id"], stream=stream, replay=True)
    assert r.status_code == 409 and r.json()["type"].endswith("/not-offered")
    # Without `replay`, an ended show answers as it always has.
    r = await buy(live, "bob", product["id"], stream=stream)
    assert r.status_code == 409 and r.json()["type"].endswith("/stream-not-live")
    r = await buy(live, "bob", product["id"], stream=stream, replay=True)
    assert r.status_code == 201, r.text
    # A scheduled show that was cancelled never had a replay.
    cancelled = (await live.http.post("/api/v1/streams", json={
        "title": "Off", "lineup": [product["id"]]}, headers=live.auth("creator", "cleo"))).json()
    r = await live.http.post(f"/api/v1/streams/{cancelled['id']}/cancel",
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    r = await buy(live, "bob", product["id"], stream=cancelled["id"], replay=True)
    assert r.status_code == 409 and r.json()["state"] == "cancelled"


async def test_a_replay_keeps_the_buyer_limits_and_the_invite_rule(live: Live) -> None:
    await make_brand(live)
    limited = await make_product(live, max_per_buyer=2)
    invited = await make_product(live, sku="INV", commission_bps=2000)
    stream = (await make_live_stream(live, [limited["id"], invited["id"]]))["id"]
    await give_wallet(live, "bob")
    assert (await buy(live, "bob", limited["id"], stream=stream)).status_code == 201
    await end(live, stream)
    r = await buy(live, "bob", limited["id"], stream=stream, quantity=2, replay=True)
    assert r.status_code == 409 and r.json()["type"].endswith("/limit-reached")
    # The brand made the product invite-only since, and never invited Cleo: as a live sale
    # would, the sale is hers but earns no commission.
    r = await live.http.patch(f"/api/v1/products/{invited['id']}",
                              json={"commission_mode": "invited"},
                              headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    r = await buy(live, "bob", invited["id"], stream=stream, replay=True)
    assert r.status_code == 201, r.text
    assert (r.json()["order"]["creator"], r.json()["order"]["commission_minor"]) == ("cleo", 0)


async def test_replay_sales_are_the_brands_own_and_only_buyers_buy(live: Live) -> None:
    await make_brand(live)
    await make_brand(live, "globex")
    product = await make_product(live)
    stream = (await make_live_stream(live, [product["id"]]))["id"]
    await end(live, stream)
    await give_wallet(live, "bob")
    for role, subject in (("brand", "acme"), ("creator", "cleo")):
        r = await live.http.post("/api/v1/buy", json={
            "product_id": product["id"], "stream_id": stream, "replay": True},
            headers={**live.auth(role, subject), "Idempotency-Key": idem()})
        assert r.status_code == 403, (role, r.text)
    assert (await buy(live, "bob", product["id"], stream=stream, replay=True)).status_code == 201
    await live.services.aggregator.drain()
    assert [s["replay_orders"] for s in (await report(live))["streams"]] == [1]
    theirs = await report(live, "globex")
    assert (theirs["orders"], theirs["streams"]) == (0, [])
    r = await live.http.get("/api/v1/brands/acme/report", headers=live.auth("brand", "globex"))
    assert r.status_code == 403


async def test_a_refunded_replay_sale_takes_back_the_creators_replay_commission(
        live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, price_minor=3333, commission_bps=1000)
    stream = (await make_live_stream(live, [product["id"]]))["id"]
    await end(live, stream)
    await give_wallet(live, "bob")
    r = await buy(live, "bob", product["id"], stream=stream, quantity=3, replay=True)
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    assert (order["amount_minor"], order["commission_minor"]) == (9999, 999)
    assert (await earnings(live, "cleo"))["replay_earned_minor"] == {"USD": 999}
    assert (await refund(live, order["id"]))["state"] == "refunded"
    got = await earnings(live, "cleo")
    assert (got["earned_minor"], got["replay_earned_minor"], got["orders"]) == (
        {"USD": 0}, {"USD": 0}, 0)
    assert sorted((e["kind"], e["channel"], e["commission_minor"]) for e in got["ledger"]) == [
        ("credit", "replay", 999), ("reversal", "replay", -999)]
    # The sale stays a sale of the replay (gross, as a live sale's); the refund is money back.
    brand = await report(live)
    assert brand["streams"] == [{"stream_id": stream, "units": 0, "orders": 0, "gmv_minor": 0,
                                 "replay_units": 3, "replay_orders": 1,
                                 "replay_gmv_minor": 9999}]
    assert (brand["captured_minor"], brand["refunded_minor"], brand["commission_minor"],
            brand["payout_minor"]) == (9999, 9999, 0, 0)
    stats = (await live.http.get(f"/api/v1/streams/{stream}/stats")).json()
    assert stats["replay"] == {"units": 3, "orders": 1, "gmv_minor": 9999}
    assert (stats["orders"], stats["just_bought"]) == (0, [])
