"""A show's product funnel for its brands, over real sockets, HTTP and Valkey: views and taps
from the viewers' `product_seen` / `product_tap` frames (the host console and the OBS source
count nothing), cart adds where they succeed, orders, units and GMV from the aggregator,
per show and product, and each brand reads only its own products' rows."""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import AsyncExitStack
from typing import Any

import orjson
import redis.asyncio as redis
from websockets.asyncio.client import ClientConnection, connect

from checkout.funnel import FunnelBatch, write_funnel
from checkout.store.keys import stream_funnel_key, stream_seen_key
from checkout.store.scripts import load_all
from conftest import UNIT, Live
from shop import (buy, eventually, give_wallet, idem, make_brand, make_live_stream, make_product,
                  make_stream)


def room(live: Live, stream_id: str, token: str | None = None, client: str | None = None) -> str:
    query = [f"access_token={token}"] if token else []
    query += [f"client={client}"] if client else []
    return f"{live.ws_url}/ws/streams/{stream_id}" + ("?" + "&".join(query) if query else "")


async def joined(ws: ClientConnection) -> None:
    message = orjson.loads(await asyncio.wait_for(ws.recv(), 5 * UNIT))
    assert message["type"] == "snapshot"


async def answer(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    """Send `frame` with a ref and wait for its ack or error: by then the hub has taken it."""
    ref = idem()
    await ws.send(orjson.dumps({**frame, "ref": ref}).decode())
    async with asyncio.timeout(5 * UNIT):
        while True:
            message = orjson.loads(await ws.recv())
            if message.get("ref") == ref:
                return dict(message)


def seen(product: str) -> dict[str, str]:
    return {"type": "product_seen", "product_id": product}


def tap(product: str) -> dict[str, str]:
    return {"type": "product_tap", "product_id": product}


async def rows(live: Live, stream_id: str, brand: str = "acme") -> dict[str, dict[str, Any]]:
    r = await live.http.get(f"/api/v1/brands/{brand}/shows/{stream_id}/products",
                            headers=live.auth("brand", brand))
    assert r.status_code == 200, r.text
    assert r.json()["show"]["id"] == stream_id
    return {row["product_id"]: row for row in r.json()["items"]}


async def funnel_of(live: Live, stream_id: str, product: str) -> tuple[int, int]:
    row = (await rows(live, stream_id))[product]
    return row["views"], row["clicks"]


async def _is(pending: Any, expected: Any) -> bool:
    return bool(await pending == expected)


async def test_views_count_each_viewer_once_and_taps_each_tap(live: Live) -> None:
    await make_brand(live)
    shoe, jacket, other = [(await make_product(live, sku=f"S-{i}"))["id"] for i in range(3)]
    sid = (await make_live_stream(live, [shoe, jacket]))["id"]
    bob = live.token("buyer", "bob")
    async with AsyncExitStack() as stack:
        viewers = [await stack.enter_async_context(connect(url)) for url in (
            room(live, sid, bob), room(live, sid))]  # bob, and an anonymous viewer
        staff = [await stack.enter_async_context(connect(url)) for url in (
            room(live, sid, live.token("creator", "cleo")),  # the host console
            room(live, sid, live.token("operator", "ops")),
            room(live, sid, client="obs"))]  # the OBS source
        for ws in (*viewers, *staff):
            await joined(ws)
        bob_ws, anon = viewers
        for ws, frame in ((bob_ws, seen(shoe)), (bob_ws, seen(shoe)), (anon, seen(shoe)),
                          (bob_ws, tap(shoe)), (bob_ws, tap(shoe)), (anon, tap(shoe)),
                          (anon, seen(jacket)),
                          *[(ws, f) for ws in staff for f in (seen(shoe), tap(shoe),
                                                               seen(jacket), tap(jacket))]):
            assert (await answer(ws, frame))["type"] == "ack"
        # A product outside the lineup (the brand's own, even) is refused and counts nothing.
        for frame in (seen(other), tap(other)):
            refused = await answer(anon, frame)
            assert (refused["type"], refused["code"]) == ("error", "not-in-lineup")
        await eventually(lambda: _is(funnel_of(live, sid, shoe), (2, 3)), "shoe: 2 views, 3 taps")
        await eventually(lambda: _is(funnel_of(live, sid, jacket), (1, 0)), "jacket: 1 view")
        # bob again, on another socket: the same account is the same viewer.
        async with connect(room(live, sid, bob)) as again:
            await joined(again)
            assert (await answer(again, seen(shoe)))["type"] == "ack"
            assert (await answer(again, seen(jacket)))["type"] == "ack"
        await eventually(lambda: _is(funnel_of(live, sid, jacket), (2, 0)), "jacket: bob's view")
        assert await funnel_of(live, sid, shoe) == (2, 3)
    assert other not in await rows(live, sid)
    row = (await rows(live, sid))[shoe]
    assert (row["click_through"], row["conversion"], row["cart_adds"], row["orders"]) == (
        1.0, 0.0, 0, 0)  # 3 taps of 2 viewers: at most 100%


class RecordingBatch(FunnelBatch):
    """The hub's batch, noting each view it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.views: list[str] = []

    def seen(self, stream: str, product: str, viewer: str) -> None:
        self.views.append(product)
        super().seen(stream, product, viewer)


async def test_a_socket_counts_a_view_once_and_at_most_its_cap(live: Live) -> None:
    await make_brand(live)
    shoe, jacket = [(await make_product(live, sku=f"S-{i}"))["id"] for i in range(2)]
    sid = (await make_live_stream(live, [shoe, jacket]))["id"]
    server = live.services.hub_server
    assert server.limits.seen_per_socket == 2 * 50  # twice the lineup cap
    batch = live.services.hub.funnel = RecordingBatch()
    async with connect(room(live, sid)) as ws:
        await joined(ws)
        for _ in range(5):
            assert (await answer(ws, seen(shoe)))["type"] == "ack"
        assert batch.views == [shoe]  # the socket's own set: one view, not five frames
        server.limits = dataclasses.replace(server.limits, seen_per_socket=1)
        assert (await answer(ws, seen(jacket)))["type"] == "ack"
        assert batch.views == [shoe]  # past its cap, the socket counts no more views
    async with connect(room(live, sid)) as ws:  # another socket has its own set
        await joined(ws)
        assert (await answer(ws, seen(jacket)))["type"] == "ack"
    assert batch.views == [shoe, jacket]
    await eventually(lambda: _is(funnel_of(live, sid, jacket), (1, 0)), "the jacket's view")


async def test_a_tick_writes_each_show_in_one_script_call(rclient: redis.Redis) -> None:
    """A storm of views is one funnel.lua call per show and tick, however many frames (and
    past the script's PFADD chunk of 1,000 arguments)."""
    await load_all(rclient)
    batch = FunnelBatch()
    for i in range(2500):
        batch.seen("s1", "p1", f"viewer-{i}")
        batch.seen("s2", "p1", f"viewer-{i % 3}")
    for _ in range(7):
        batch.tapped("s1", "p2")
    before = await _evalsha_calls(rclient)
    await write_funnel(rclient, batch.take())
    assert await _evalsha_calls(rclient) - before == 2
    assert not batch
    assert abs(await rclient.pfcount(stream_seen_key("s1", "p1")) - 2500) <= 2500 * 0.02
    assert await rclient.pfcount(stream_seen_key("s2", "p1")) == 3
    assert await rclient.hgetall(stream_funnel_key("s1")) == {
        b"p1:clicks": b"0", b"p1:cart_adds": b"0", b"p1:cart_units": b"0",
        b"p2:clicks": b"7", b"p2:cart_adds": b"0", b"p2:cart_units": b"0"}
    # Valkey lost its scripts (a restart): the write loads them and goes through.
    await rclient.script_flush()
    batch.tapped("s1", "p2")
    await write_funnel(rclient, batch.take())
    assert await rclient.hget(stream_funnel_key("s1"), "p2:clicks") == b"8"


async def _evalsha_calls(client: redis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_cart_adds_and_buys_count_for_their_show_and_product(live: Live) -> None:
    await make_brand(live)
    shoe = (await make_product(live, stock=20))["id"]
    jacket = (await make_product(live, sku="J", price_minor=12900))["id"]
    off_lineup = (await make_product(live, sku="X"))["id"]
    s1 = (await make_live_stream(live, [shoe, jacket]))["id"]
    s2 = (await make_live_stream(live, [shoe], creator="dana"))["id"]
    for buyer in ("bob", "eve"):
        await give_wallet(live, buyer)
    key = idem()
    for _ in range(2):  # a retried add is the same item: it counts once
        r = await live.http.post("/api/v1/cart/items", json={
            "product_id": shoe, "quantity": 2, "stream_id": s1},
            headers={**live.auth("buyer", "bob"), "Idempotency-Key": key})
        assert r.status_code == 201, r.text
    r = await live.http.post("/api/v1/cart/items", json={"product_id": off_lineup, "stream_id": s1},
                             headers={**live.auth("buyer", "bob"), "Idempotency-Key": idem()})
    assert r.status_code == 201, r.text  # added, but not from the show: it was not in it
    bought = await buy(live, "bob", shoe, stream=s1)
    assert bought.status_code == 201, bought.text
    assert (await buy(live, "eve", shoe, stream=s2, quantity=3)).status_code == 201
    assert (await buy(live, "eve", jacket, stream=s1)).status_code == 201
    await live.services.aggregator.drain()

    one = await rows(live, s1)
    assert set(one) == {shoe, jacket}
    assert {k: one[shoe][k] for k in ("cart_adds", "cart_units", "orders", "units", "gmv_minor",
                                      "buyers")} == {
        "cart_adds": 1, "cart_units": 2, "orders": 1, "units": 1, "gmv_minor": 5000, "buyers": 1}
    assert (one[jacket]["orders"], one[jacket]["gmv_minor"], one[jacket]["cart_adds"]) == (
        1, 12900, 0)
    two = (await rows(live, s2))[shoe]
    assert (two["cart_adds"], two["orders"], two["units"], two["gmv_minor"]) == (0, 1, 3, 15000)

    # A refund leaves the show's numbers as it leaves the stream's own totals.
    order = bought.json()["order"]["id"]
    r = await live.http.post(f"/api/v1/orders/{order}/refund", headers={
        **live.auth("brand", "acme"), "Idempotency-Key": idem()})
    assert r.status_code == 200, r.text
    await live.services.aggregator.drain()
    stats = (await live.http.get(f"/api/v1/streams/{s1}/stats")).json()
    one = await rows(live, s1)
    assert one[shoe]["units"] + one[jacket]["units"] == stats["units"] == 2
    assert one[shoe]["gmv_minor"] + one[jacket]["gmv_minor"] == stats["gmv_minor"]


async def test_a_brand_reads_only_its_own_products_and_shows(live: Live) -> None:
    await make_brand(live, "acme")
    await make_brand(live, "bravo")
    a1 = (await make_product(live, "acme", title="Acme Shoe"))["id"]
    b1 = (await make_product(live, "bravo", sku="B", title="Bravo Bag"))["id"]
    older = (await make_stream(live, [a1], scheduled_at_ms=1_000))["id"]
    shared = (await make_live_stream(live, [a1, b1]))["id"]
    async with connect(room(live, shared)) as ws:
        await joined(ws)
        for frame in (seen(a1), seen(b1), tap(b1)):
            assert (await answer(ws, frame))["type"] == "ack"
        await eventually(lambda: _is(funnel_of(live, shared, a1), (1, 0)), "acme's view")
    await give_wallet(live, "bob")
    assert (await buy(live, "bob", b1, stream=shared)).status_code == 201
    await live.services.aggregator.drain()

    acme = await rows(live, shared, "acme")
    assert list(acme) == [a1] and acme[a1]["title"] == "Acme Shoe"
    bravo = await rows(live, shared, "bravo")
    assert list(bravo) == [b1]
    assert {k: bravo[b1][k] for k in ("views", "clicks", "orders", "gmv_minor", "conversion")} == {
        "views": 1, "clicks": 1, "orders": 1, "gmv_minor": 5000, "conversion": 1.0}

    def shows(brand: str) -> Any:
        return live.http.get(f"/api/v1/brands/{brand}/shows", headers=live.auth("brand", brand))
    assert [s["id"] for s in (await shows("acme")).json()["items"]] == [shared, older]
    assert [s["id"] for s in (await shows("bravo")).json()["items"]] == [shared]
    # A show that featured none of bravo's products is not bravo's, like one that is not.
    for stream in (older, "s_000000000000"):
        r = await live.http.get(f"/api/v1/brands/bravo/shows/{stream}/products",
                                headers=live.auth("brand", "bravo"))
        assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (404, "not-found")
    # Another brand's routes: 403, before anything is read.
    for path in ("/api/v1/brands/acme/shows", f"/api/v1/brands/acme/shows/{shared}/products"):
        r = await live.http.get(path, headers=live.auth("brand", "bravo"))
        assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (403, "forbidden")
