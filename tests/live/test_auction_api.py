"""Auctions over HTTP on a real node (docs/auctions.md): who may do what, bidding with a
saved wallet, a retried bid, the bid log for the seller, and the events on a viewer's socket."""

from __future__ import annotations

from typing import Any

import orjson
from websockets.asyncio.client import connect

from conftest import Live
from shop import give_wallet, make_brand, make_live_stream, make_product
from test_hub import recv_until, room_url


async def auction_show(live: Live) -> tuple[dict[str, Any], dict[str, Any]]:
    await make_brand(live)
    product = await make_product(live, sku="LOT-1", stock=5)  # a unit per auction
    return await make_live_stream(live, [product["id"]]), product


def url(stream: dict[str, Any], tail: str = "") -> str:
    return f"/api/v1/streams/{stream['id']}/auctions{tail}"


async def put_up(live: Live, stream: dict[str, Any], product: dict[str, Any],
                 **body: Any) -> dict[str, Any]:
    r = await live.http.post(url(stream), headers=live.auth("creator", "cleo"),
                             json={"product_id": product["id"], "start_minor": 1000, **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def place(live: Live, stream: dict[str, Any], auction: str, buyer: str, max_minor: int,
                key: str) -> Any:
    return await live.http.post(url(stream, f"/{auction}/bids"), json={"max_minor": max_minor},
                                headers={**live.auth("buyer", buyer), "Idempotency-Key": key})


async def test_only_the_host_puts_a_product_up(live: Live) -> None:
    stream, product = await auction_show(live)
    body = {"product_id": product["id"], "start_minor": 1000}
    cells = {("buyer", "ann"): 403, ("brand", "acme"): 403, ("creator", "other"): 403,
             ("moderator", "cleo"): 403, ("creator", "cleo"): 201, ("operator", "ops"): 201}
    for (role, subject), status in cells.items():
        r = await live.http.post(url(stream), json=body, headers=live.auth(role, subject))
        assert r.status_code == status, (role, subject, r.text)
    assert (await live.http.post(url(stream), json=body)).status_code == 401
    bad = await live.http.post(url(stream), headers=live.auth("creator", "cleo"),
                               json={**body, "product_id": "p_nothere"})
    assert bad.status_code == 422 and bad.json()["type"].endswith("not-in-lineup")
    low_reserve = await live.http.post(url(stream), headers=live.auth("creator", "cleo"),
                                       json={**body, "reserve_minor": 500})
    assert low_reserve.status_code == 422
    # The host's own increment table, as JSON pairs (a strict model once refused any).
    bands = [[2000, 100], [-1, 500]]
    own = await put_up(live, stream, product, increments=bands)
    public = (await live.http.get(url(stream, f"/{own['id']}"))).json()
    assert public["increments"] == bands
    for bad in ([[2000, 100]], [[-1, 0]], [[2000, 100, 5], [-1, 500]]):
        r = await live.http.post(url(stream), headers=live.auth("creator", "cleo"),
                                 json={**body, "increments": bad})
        assert r.status_code == 422, (bad, r.text)


async def recv_bids(ws: Any, bids: int) -> dict[str, Any]:
    """The auction a viewer is shown once its bid count reaches `bids`: bids are not
    events, they ride in the hub's tick (`state` {auction}), coalesced."""
    while True:
        auction = (await recv_until(ws, "state")).get("auction")
        if auction and auction["bids"] >= bids:
            return dict(auction)


async def test_bidding_with_a_wallet_proxy_and_a_retried_bid(live: Live) -> None:
    stream, product = await auction_show(live)
    auction = (await put_up(live, stream, product))["id"]
    no_wallet = await place(live, stream, auction, "ann", 2000, "bid-ann-0001")
    assert no_wallet.status_code == 409 and no_wallet.json()["type"].endswith("wallet-missing")
    for buyer in ("ann", "bob"):
        await give_wallet(live, buyer)
    async with connect(room_url(live, stream["id"])) as viewer:
        await recv_until(viewer, "snapshot")
        ann = await place(live, stream, auction, "ann", 3000, "bid-ann-0002")
        assert ann.status_code == 201 and ann.json()["high"] is True
        shown = await recv_bids(viewer, ann.json()["bids"])
        assert (shown["price_minor"], shown["high_paddle"], shown["bids"]) == (1000, 1, 1)
        again = await place(live, stream, auction, "ann", 3000, "bid-ann-0002")
        assert again.json() == ann.json()
        bob = await place(live, stream, auction, "bob", 2000, "bid-bob-0001")
        assert bob.status_code == 201 and bob.json()["outcome"] == "outbid"
        low = await place(live, stream, auction, "bob", 2000, "bid-bob-0002")
        assert low.status_code == 409 and low.json()["next_minor"] == 2100
        public = (await live.http.get(url(stream, f"/{auction}"))).json()
        assert public["price_minor"] == 2050 and public["high_paddle"] == 1
        assert "high" not in public and "seller" not in public
        assert "ann" not in orjson.dumps(public).decode()


async def test_the_seller_and_the_host_read_the_bid_log_and_no_one_else(live: Live) -> None:
    stream, product = await auction_show(live)
    auction = (await put_up(live, stream, product))["id"]
    await give_wallet(live, "ann")
    await place(live, stream, auction, "ann", 3000, "bid-ann-0003")
    for (role, subject), status in {("brand", "acme"): 200, ("creator", "cleo"): 200,
                                    ("brand", "other"): 403, ("buyer", "ann"): 403}.items():
        r = await live.http.get(url(stream, f"/{auction}/bids"), headers=live.auth(role, subject))
        assert r.status_code == status, (role, subject, r.text)
    log = (await live.http.get(url(stream, f"/{auction}/bids"),
                               headers=live.auth("brand", "acme"))).json()["items"]
    assert [(b["bidder"], b["max_minor"], b["outcome"]) for b in log] == [("ann", 3000, "high")]
    cancel = await live.http.post(url(stream, f"/{auction}/cancel"),
                                  headers=live.auth("brand", "acme"))
    assert cancel.status_code == 409 and cancel.json()["type"].endswith("has-bids")
    other = (await put_up(live, stream, product))["id"]
    assert (await live.http.post(url(stream, f"/{other}/cancel"),
                                 headers=live.auth("brand", "other"))).status_code == 403
    done = await live.http.post(url(stream, f"/{other}/cancel"), headers=live.auth("brand", "acme"))
    assert done.status_code == 200 and done.json()["result"] == "cancelled"


async def test_the_bid_log_pages_newest_first_with_a_cursor(live: Live) -> None:
    stream, product = await auction_show(live)
    auction = (await put_up(live, stream, product))["id"]
    for buyer in ("ann", "bob"):
        await give_wallet(live, buyer)
    maxes = [1000 + 500 * i for i in range(7)]  # each beats the last: seven bids, in order
    for i, max_minor in enumerate(maxes):
        r = await place(live, stream, auction, ("ann", "bob")[i % 2], max_minor,
                        f"bid-page-{i:04d}")
        assert r.status_code == 201, r.text
    await place(live, stream, auction, "bob", 1000, "bid-page-late")  # a refusal is logged too
    host = live.auth("creator", "cleo")
    seen: list[str] = []
    before = ""
    while True:
        r = await live.http.get(url(stream, f"/{auction}/bids"), headers=host,
                                params={"limit": 3, **({"before": before} if before else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 3
        seen += [b["bid_id"] for b in page["items"]]
        if page["before"] is None:
            break
        assert page["before"] == page["items"][-1]["id"]
        before = page["before"]
    assert seen == ["bid-page-late", *[f"bid-page-{i:04d}" for i in reversed(range(7))]]
    first = (await live.http.get(url(stream, f"/{auction}/bids"), headers=host)).json()
    assert first["items"][0]["outcome"] == "too-low" and first["before"] is None  # limit 100
    for bad in ({"limit": 0}, {"limit": 1001}, {"before": "not-an-id"}):
        r = await live.http.get(url(stream, f"/{auction}/bids"), headers=host, params=bad)
        assert r.status_code == 400, (bad, r.text)
    buyer = await live.http.get(url(stream, f"/{auction}/bids"), headers=live.auth("buyer", "ann"),
                                params={"limit": 3, "before": before})
    assert buyer.status_code == 403  # the page's cursor changes nobody's rights


async def test_a_late_joiners_snapshot_carries_the_auction_as_its_last_tick_said(live: Live) -> None:
    """The pages draw the card from the snapshot and then the events and ticks: the
    snapshot's `auction` must be what the latest tick said (the next least bid included)."""
    stream, product = await auction_show(live)
    async with connect(room_url(live, stream["id"])) as early:
        assert (await recv_until(early, "snapshot"))["auction"] is None
        auction = (await put_up(live, stream, product, reserve_minor=5000))["id"]
        for buyer in ("ann", "bob"):
            await give_wallet(live, buyer)
        await place(live, stream, auction, "ann", 3000, "bid-ann-0010")
        await place(live, stream, auction, "bob", 2000, "bid-bob-0010")
        said = await recv_bids(early, 2)
    async with connect(room_url(live, stream["id"])) as late:
        snapshot = await recv_until(late, "snapshot")
    assert snapshot["auction"] == {**said, "product": product["id"], "start_minor": 1000,
                                   "state": "open", "result": None}
    assert (said["price_minor"], said["next_minor"], said["reserve_met"]) == (2050, 2100, False)
