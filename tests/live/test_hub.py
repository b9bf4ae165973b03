"""The hub over real sockets: real uvicorn + real websockets server on port 0, real
`websockets` clients, the session Valkey."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgpack
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from checkout.catalog import BrandIn
from conftest import UNIT, Live, make_settings, start_hub, start_node, stop_node
from live.accounts.auth import Role
from shop import buy, give_wallet, make_brand, make_live_stream, make_product


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout * UNIT))


async def recv_until(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout * UNIT):
        while True:
            message = orjson.loads(await ws.recv())
            if message["type"] == kind:
                return message


async def shop_live(live: Live, products: int = 2) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    await make_brand(live)
    items = [await make_product(live, sku=f"SKU-{i}", stock=5) for i in range(products)]
    stream = await make_live_stream(live, [p["id"] for p in items])
    return stream, items


def room_url(live: Live, stream_id: str, token: str | None = None, since: int | None = None) -> str:
    query = []
    if token:
        query.append(f"access_token={token}")
    if since is not None:
        query.append(f"since={since}")
    return f"{live.ws_url}/ws/streams/{stream_id}" + ("?" + "&".join(query) if query else "")


async def test_join_gives_a_snapshot_then_a_pin_arrives_as_a_delta(live: Live) -> None:
    stream, products = await shop_live(live)
    async with connect(room_url(live, stream["id"])) as ws:
        snap = await recv_json(ws)
        assert snap["type"] == "snapshot"
        assert snap["stream"]["state"] == "live"
        assert snap["tray"] == [p["id"] for p in products]
        assert snap["stock"][products[0]["id"]] == {"default": 5}
        assert snap["products"][products[0]["id"]]["price_minor"] == 5000
        r = await live.http.post(f"/api/v1/streams/{stream['id']}/pins",
                                 json={"product_id": products[1]["id"]},
                                 headers=live.auth("creator", "cleo"))
        assert r.status_code == 200
        pin = await recv_until(ws, "pin")
        assert pin["product_id"] == products[1]["id"]
        assert pin["seq"] == snap["seq"] + 1


async def test_stock_is_pushed_as_coalesced_state(live: Live) -> None:
    stream, products = await shop_live(live, products=1)
    await give_wallet(live, "bob")
    async with connect(room_url(live, stream["id"])) as ws:
        await recv_until(ws, "snapshot")
        r = await buy(live, "bob", products[0]["id"], stream=stream["id"], quantity=2)
        assert r.status_code == 201
        async with asyncio.timeout(5 * UNIT):
            while True:
                state = await recv_until(ws, "state")
                if state.get("stock", {}).get(products[0]["id"]) == {"default": 3}:
                    break
        async with asyncio.timeout(5 * UNIT):
            while not (state := await recv_until(ws, "state")).get("just_bought"):
                pass
        [bought] = state["just_bought"]
        assert bought["product"] == products[0]["id"] and bought["buyer"] == "b***"


async def test_msgpack_subprotocol(live: Live) -> None:
    stream, _ = await shop_live(live, products=1)
    async with connect(room_url(live, stream["id"]), subprotocols=["livecart.v1.msgpack"]) as ws:
        assert ws.subprotocol == "livecart.v1.msgpack"
        frame = await asyncio.wait_for(ws.recv(), 5 * UNIT)
        assert isinstance(frame, bytes)
        assert msgpack.unpackb(frame)["type"] == "snapshot"


async def test_host_commands_over_the_socket_and_the_role_matrix(live: Live) -> None:
    stream, products = await shop_live(live)
    host_token = live.token("creator", "cleo")
    async with connect(room_url(live, stream["id"], host_token)) as host, \
            connect(room_url(live, stream["id"], live.token("buyer", "bob"))) as viewer, \
            connect(room_url(live, stream["id"], live.token("creator", "mallory"))) as other:
        for ws in (host, viewer, other):
            await recv_until(ws, "snapshot")
        await viewer.send(orjson.dumps({"type": "pin", "product_id": products[1]["id"],
                                        "ref": "v1"}).decode())
        refused = await recv_until(viewer, "error")
        assert (refused["code"], refused["ref"]) == ("forbidden", "v1")
        await other.send(orjson.dumps({"type": "stream.end", "ref": "o1"}).decode())
        assert (await recv_until(other, "error"))["code"] == "forbidden"
        await host.send(orjson.dumps({"type": "pin", "product_id": products[1]["id"],
                                      "ref": "h1"}).decode())
        assert (await recv_until(host, "ack"))["ref"] == "h1"
        assert (await recv_until(viewer, "pin"))["product_id"] == products[1]["id"]
        await host.send(orjson.dumps({"type": "deal.start", "product_id": products[0]["id"],
                                      "price_minor": 3000, "quantity": 5, "countdown_s": 10,
                                      "duration_s": 60, "ref": "h2"}).decode())
        assert (await recv_until(host, "ack"))["ref"] == "h2"
        deal = await recv_until(viewer, "deal.scheduled")
        assert (deal["price_minor"], deal["cap"]) == (3000, 5)
    state = (await live.http.get(f"/api/v1/streams/{stream['id']}")).json()
    assert state["state"] == "live" and products[1]["id"] in state["pinned"]


async def test_resume_fills_the_gap_without_duplicates(live: Live) -> None:
    stream, products = await shop_live(live)
    streams = live.services.streams
    async with connect(room_url(live, stream["id"])) as ws:
        snap = await recv_until(ws, "snapshot")
    last = snap["seq"]
    await streams.pin(stream["id"], products[1]["id"])
    await streams.unpin(stream["id"], products[1]["id"])
    await streams.pin(stream["id"], products[1]["id"])
    async with connect(room_url(live, stream["id"], since=last)) as ws:
        seen = [await recv_json(ws) for _ in range(3)]
        assert [m["seq"] for m in seen] == [last + 1, last + 2, last + 3]
        assert [m["type"] for m in seen] == ["pin", "unpin", "pin"]
        await streams.unpin(stream["id"], products[1]["id"])
        nxt = await recv_until(ws, "unpin")
        assert nxt["seq"] == last + 4


async def test_resume_from_a_reset_history_gets_a_snapshot(live: Live) -> None:
    stream, _ = await shop_live(live)
    async with connect(room_url(live, stream["id"], since=10_000)) as ws:
        assert (await recv_json(ws))["type"] == "snapshot"


async def test_malformed_frames_get_errors_and_the_room_carries_on(live: Live) -> None:
    stream, products = await shop_live(live)
    async with connect(room_url(live, stream["id"])) as bad, \
            connect(room_url(live, stream["id"])) as good:
        await recv_until(bad, "snapshot")
        await recv_until(good, "snapshot")
        for frame, code in (("{nope", "malformed"), ('{"type": "warp"}', "unknown-type"),
                            ('{"type": "like", "count": "many"}', "bad-field"), ("[1,2]", "malformed")):
            await bad.send(frame)
            assert (await recv_until(bad, "error"))["code"] == code
        await bad.send(b"\x00binary")
        with pytest.raises(ConnectionClosed) as closed:
            await recv_until(bad, "never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    async with connect(room_url(live, stream["id"]), max_size=2**20) as big:
        await recv_until(big, "snapshot")
        await big.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await recv_until(big, "never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_foreign_origin_and_feeds_are_refused_before_the_upgrade(live: Live) -> None:
    stream, _ = await shop_live(live)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(room_url(live, stream["id"]), origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with connect(room_url(live, stream["id"]), origin=live.url):  # type: ignore[arg-type]
        pass
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{live.ws_url}/ws/brands/acme/sales?access_token="
                           f"{live.token('brand', 'other')}"):
            pass
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{live.ws_url}/ws/brands/acme/sales"):
            pass
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{live.ws_url}/ws/creators/cleo/earnings?access_token=garbage"):
            pass
    assert refused.value.response.status_code == 401


async def test_brand_feed_rises_after_a_purchase(live: Live) -> None:
    stream, products = await shop_live(live, products=1)
    await give_wallet(live, "bob")
    url = f"{live.ws_url}/ws/brands/acme/sales?access_token={live.token('brand', 'acme')}"
    async with connect(url) as feed:
        first = await recv_until(feed, "sales")
        assert first["units"] == 0
        assert (await buy(live, "bob", products[0]["id"], stream=stream["id"])).status_code == 201
        async with asyncio.timeout(10 * UNIT):
            while True:
                update = await recv_until(feed, "sales")
                if update["units"] == 1:
                    break
        assert update["gmv_minor"] == 5000
        assert update["streams"][0]["stream_id"] == stream["id"]


async def test_a_node_going_away_tells_clients_to_come_back(valkey: Any, rclient: Any,
                                                            tmp_path: Any) -> None:
    services, server, task, url = await start_node(make_settings(valkey, tmp_path))
    ws_url = await start_hub(services, url)
    await services.catalog.create_brand(BrandIn(id="acme", name="Acme", currency="USD"))
    async with httpx.AsyncClient(base_url=url) as http:
        headers = {"Authorization": "Bearer " + services.tokens.mint(Role.CREATOR, "cleo", ttl_s=60)}
        stream = (await http.post("/api/v1/streams", json={"title": "t"}, headers=headers)).json()
    async with connect(f"{ws_url}/ws/streams/{stream['id']}") as ws:
        await recv_until(ws, "snapshot")
        closer = asyncio.create_task(stop_node(services, server, task))
        with pytest.raises(ConnectionClosed) as closed:
            await recv_until(ws, "never", timeout=10)
        await closer
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4011
