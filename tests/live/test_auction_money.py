"""The money of live auctions on real nodes (docs/auctions.md): the lot held from the
opening and given back when nothing sells, the winner's one order at the hammer price with
the creator's commission, two closers making one order, the second chance after a
declined card, and a reserve not met."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from websockets.asyncio.client import connect

from checkout.auction_lots import AuctionLots, lot_id
from checkout.ids import ProductId, VariantId
from checkout.orders import order_from_fields
from checkout.reconcile import reconcile
from checkout.store.keys import AUCTIONS_DUE, product_keys
from checkout.store.replies import int_hash
from conftest import Live, make_settings
from live.auctions.store import AuctionTerms
from live.node.services import Services
from live.node.valkey_server import EmbeddedValkey
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product
from test_auction_api import place, url
from test_hub import recv_until, room_url

LATER_MS = 10**13  # a closer's clock past every deadline and window of these tests


async def show_with_lot(live: Live, stock: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    await make_brand(live)
    product = await make_product(live, sku="LOT-1", stock=stock, price_minor=9000,
                                 commission_bps=1000)
    return await make_live_stream(live, [product["id"]]), product


async def put_up(live: Live, stream: dict[str, Any], product: dict[str, Any],
                 **body: Any) -> Any:
    return await live.http.post(url(stream), headers=live.auth("creator", "cleo"),
                                json={"product_id": product["id"], "start_minor": 1000,
                                      "duration_s": 600, **body})


async def stock(client: redis.Redis, product: dict[str, Any]) -> dict[str, int]:
    levels = int_hash(await client.hgetall(product_keys(product["id"]).stock))
    return {b: levels.get(f"{b}:default", 0) for b in ("avail", "lot", "held", "sold", "total")}


async def orders_of(client: redis.Redis, product: dict[str, Any]) -> list[dict[str, Any]]:
    pattern = product_keys(product["id"]).order("") + "*"
    return [order_from_fields(await client.hgetall(key)).fields
            async for key in client.scan_iter(match=pattern)]


async def auction_of(live: Live, stream: dict[str, Any], auction: str) -> dict[str, Any]:
    found = await live.services.auctions.get(stream["id"], auction)
    assert found is not None
    return found


async def test_the_lot_is_held_from_the_opening_and_given_back_on_cancel(live: Live) -> None:
    stream, product = await show_with_lot(live)
    await give_wallet(live, "ann")
    scheduled = await put_up(live, stream, product, open=False)
    assert scheduled.status_code == 201
    assert (await stock(live.services.client, product))["avail"] == 1  # pre-bids hold nothing
    auction = scheduled.json()["id"]
    lots, lot = AuctionLots(live.services.batcher), lot_id(stream["id"], auction)
    pid, variant = ProductId(product["id"]), VariantId("default")
    assert await lots.take(pid, lot, variant) == "held"  # a node died after this step
    opened = await live.http.post(url(stream, f"/{auction}/open"),
                                  headers=live.auth("creator", "cleo"))
    assert opened.status_code == 200, opened.text
    assert (await stock(live.services.client, product)) == {
        "avail": 0, "lot": 1, "held": 0, "sold": 0, "total": 1}
    sold_out = await buy(live, "ann", product["id"], stream=stream["id"])
    assert sold_out.status_code == 409 and sold_out.json()["type"].endswith("sold-out")
    other = await put_up(live, stream, product)  # no unit left to put up
    assert other.status_code == 409 and other.json()["type"].endswith("sold-out")
    cancel = await live.http.post(url(stream, f"/{auction}/cancel"),
                                  headers=live.auth("creator", "cleo"))
    assert cancel.status_code == 200, cancel.text
    assert (await stock(live.services.client, product))["avail"] == 1
    # Every move is once, whatever is retried: the lot given back cannot be taken again.
    assert await lots.give_back(pid, lot, variant) == "returned"
    assert await lots.take(pid, lot, variant) == "returned"
    assert (await stock(live.services.client, product))["avail"] == 1
    assert await live.services.client.zscore(AUCTIONS_DUE, lot) is None
    bought = await buy(live, "ann", product["id"], stream=stream["id"])
    assert bought.status_code == 201, bought.text


async def test_sold_makes_one_paid_order_at_the_hammer_price_for_the_show(live: Live) -> None:
    stream, product = await show_with_lot(live)
    auction = (await put_up(live, stream, product)).json()["id"]
    for buyer in ("ann", "bob"):
        await give_wallet(live, buyer)
    assert (await place(live, stream, auction, "ann", 3000, "bid-ann-0001")).status_code == 201
    assert (await place(live, stream, auction, "bob", 2000, "bid-bob-0001")).status_code == 201
    async with connect(room_url(live, stream["id"])) as viewer:
        await recv_until(viewer, "snapshot")
        assert await live.services.desk.close_due(LATER_MS) >= 1
        closed = await recv_until(viewer, "auction.closed")
    assert (closed["result"], closed["price_minor"]) == ("sold", 2050)
    a = await auction_of(live, stream, auction)
    assert (a["lot"], a["buyer"]) == ("sold", "ann")
    [order] = await orders_of(live.services.client, product)
    assert order["id"] == a["order"] and order["state"] == "paid"
    assert (order["buyer"], order["amount_minor"], order["unit_price_minor"]) == ("ann", 2050, 2050)
    assert (order["stream"], order["creator"], order["commission_minor"]) == (
        stream["id"], "cleo", 205)
    assert (order["channel"], order["auction"]) == ("auction", f"{stream['id']}/{auction}")
    mine = await live.http.get(f"/api/v1/orders/{order['id']}", headers=live.auth("buyer", "ann"))
    assert mine.status_code == 200 and mine.json()["auction"] == order["auction"]
    assert await stock(live.services.client, product) == {
        "avail": 0, "lot": 0, "held": 0, "sold": 1, "total": 1}
    await live.services.desk.close_due(LATER_MS)  # again: nothing more
    assert len(await orders_of(live.services.client, product)) == 1
    assert await live.services.client.zscore(AUCTIONS_DUE, order["auction"]) is None


async def test_two_closers_racing_one_auction_make_one_order(live: Live, valkey: EmbeddedValkey,
                                                             tmp_path: Path) -> None:
    stream, product = await show_with_lot(live)
    auction = (await put_up(live, stream, product)).json()["id"]
    await give_wallet(live, "ann")
    await place(live, stream, auction, "ann", 3000, "bid-ann-0002")
    other = await Services.start(make_settings(valkey, tmp_path / "b"), background=False)
    try:
        await asyncio.gather(live.services.desk.close_due(LATER_MS),
                                      other.desk.close_due(LATER_MS),
                                      live.services.desk.step(stream["id"], auction, LATER_MS),
                                      other.desk.step(stream["id"], auction, LATER_MS))
    finally:
        await other.close()
    orders = await orders_of(live.services.client, product)
    assert [(o["buyer"], o["state"], o["amount_minor"]) for o in orders] == [("ann", "paid", 1000)]
    assert (await auction_of(live, stream, auction))["order"] == orders[0]["id"]
    assert (await stock(live.services.client, product))["sold"] == 1


async def test_a_declined_winner_gives_the_runner_up_a_second_chance(live: Live) -> None:
    stream, product = await show_with_lot(live)
    auction = (await put_up(live, stream, product)).json()["id"]
    await give_wallet(live, "ann", token="tok_decline")
    for buyer in ("bob", "cal"):
        await give_wallet(live, buyer)
    await place(live, stream, auction, "ann", 3000, "bid-ann-0003")
    await place(live, stream, auction, "bob", 2000, "bid-bob-0003")
    await place(live, stream, auction, "cal", 1500, "bid-cal-0003")
    async with connect(room_url(live, stream["id"])) as viewer:
        await recv_until(viewer, "snapshot")
        await live.services.desk.close_due(LATER_MS - 1)
        offer = await recv_until(viewer, "auction.second_chance")
    assert (offer["paddle"], offer["price_minor"]) == (2, 2000)  # bob's paddle, bob's max
    [declined] = await orders_of(live.services.client, product)
    assert (declined["buyer"], declined["state"]) == ("ann", "declined")
    assert await stock(live.services.client, product) == {  # the unit waits in the lot
        "avail": 0, "lot": 1, "held": 0, "sold": 0, "total": 1}
    second = url(stream, f"/{auction}/second-chance")
    cal = await live.http.post(second, headers=live.auth("buyer", "cal"))
    assert cal.status_code == 409 and cal.json()["type"].endswith("no-offer")
    bob = await live.http.post(second, headers=live.auth("buyer", "bob"))
    assert bob.status_code == 201, bob.text
    assert (bob.json()["order"]["amount_minor"], bob.json()["payment"]) == (2000, "settled")
    again = await live.http.post(second, headers=live.auth("buyer", "bob"))
    assert again.status_code == 201 and again.json()["order"]["id"] == bob.json()["order"]["id"]
    orders = sorted((o["buyer"], o["state"], o["amount_minor"], o["commission_minor"])
                    for o in await orders_of(live.services.client, product))
    assert orders == [("ann", "declined", 2050, 205), ("bob", "paid", 2000, 200)]
    assert await stock(live.services.client, product) == {
        "avail": 0, "lot": 0, "held": 0, "sold": 1, "total": 1}
    await live.services.desk.close_due(LATER_MS)  # the closer finds it done
    assert len(await orders_of(live.services.client, product)) == 2
    assert (await reconcile(live.services.client, live.services.gateway,
                            live.services.settings.partitions)).mismatches == []


async def test_an_offer_not_taken_lapses_and_the_lot_goes_back(live: Live) -> None:
    stream, product = await show_with_lot(live)
    auction = (await put_up(live, stream, product)).json()["id"]
    await give_wallet(live, "ann", token="tok_decline")
    await give_wallet(live, "bob")
    await place(live, stream, auction, "ann", 3000, "bid-ann-0004")
    await place(live, stream, auction, "bob", 2000, "bid-bob-0004")
    desk = live.services.desk
    closed_at = LATER_MS - 10**9
    assert await desk.step(stream["id"], auction, closed_at) == (
        closed_at + live.services.settings.auction_second_chance_s * 1000)
    assert await desk.step(stream["id"], auction, LATER_MS) is None  # lapsed: back in stock
    assert (await stock(live.services.client, product))["avail"] == 1
    late = await live.http.post(url(stream, f"/{auction}/second-chance"),
                                headers=live.auth("buyer", "bob"))
    assert late.status_code == 409 and late.json()["type"].endswith("offer-lapsed")
    assert [o["buyer"] for o in await orders_of(live.services.client, product)] == ["ann"]


async def test_reserve_not_met_or_no_bids_sells_nothing_and_gives_the_lot_back(
        live: Live) -> None:
    stream, product = await show_with_lot(live, stock=2)
    reserved = (await put_up(live, stream, product, reserve_minor=5000)).json()["id"]
    unbid = (await put_up(live, stream, product)).json()["id"]
    await give_wallet(live, "ann")
    await place(live, stream, reserved, "ann", 3000, "bid-ann-0005")
    assert (await stock(live.services.client, product))["lot"] == 2
    await live.services.desk.close_due(LATER_MS)
    assert (await auction_of(live, stream, reserved))["result"] == "reserve-not-met"
    assert (await auction_of(live, stream, unbid))["result"] == "no-bids"
    assert await stock(live.services.client, product) == {
        "avail": 2, "lot": 0, "held": 0, "sold": 0, "total": 2}
    assert await orders_of(live.services.client, product) == []


async def test_a_viewer_cannot_run_an_auction_and_a_banned_buyer_cannot_bid(live: Live) -> None:
    stream, product = await show_with_lot(live)
    viewer = await live.http.post(url(stream), headers=live.auth("buyer", "ann"),
                                  json={"product_id": product["id"], "start_minor": 1000})
    assert viewer.status_code == 403
    auction = (await put_up(live, stream, product)).json()["id"]
    for path in ("/open", "/cancel"):
        r = await live.http.post(url(stream, f"/{auction}{path}"),
                                 headers=live.auth("buyer", "ann"))
        assert r.status_code == 403, path
    await give_wallet(live, "mallory")
    ban = await live.http.post(f"/api/v1/streams/{stream['id']}/chat/bans",
                               headers=live.auth("creator", "cleo"),
                               json={"user": "buyer:mallory"})
    assert ban.status_code == 201, ban.text
    refused = await place(live, stream, auction, "mallory", 2000, "bid-mal-0001")
    assert refused.status_code == 409 and refused.json()["type"].endswith("banned")


async def test_every_node_runs_the_closer(live: Live) -> None:
    """The closer loop of a running node (no test clock) ends a due auction on its own."""
    stream, product = await show_with_lot(live)
    terms = AuctionTerms(id="a_00000000c105", product=product["id"], variant="default",
                         currency="USD", start_minor=1000, duration_ms=200, seller="brand:acme")
    await live.services.desk.create(stream["id"], terms, open_now=True)
    assert (await stock(live.services.client, product))["lot"] == 1

    async def finished() -> bool:  # closed, its lot back, out of the index
        a = await auction_of(live, stream, terms.id)
        filed = await live.services.client.zscore(AUCTIONS_DUE, lot_id(stream["id"], terms.id))
        return a["state"] == "closed" and a.get("lot") == "returned" and filed is None
    await eventually(finished, "the node's closer ends the auction and gives the lot back")
    assert (await auction_of(live, stream, terms.id))["result"] == "no-bids"
    assert (await stock(live.services.client, product))["avail"] == 1
