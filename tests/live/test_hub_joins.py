"""Joining a room under abuse: snapshots bigger than what a socket may hold, sockets that
never read, and addresses that open sockets in a loop."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import msgpack
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

from conftest import UNIT, Live
from live.hub.state import read_snapshot
from shop import eventually, make_brand, make_live_stream, make_product
from test_hub import recv_until, room_url


async def big_room(live: Live, products: int, variants: int = 100) -> dict[str, Any]:
    """A live stream whose products have `variants` variants with the longest ids and names
    the catalog accepts (64 and 200 characters)."""
    await make_brand(live)
    lineup = []
    for p in range(products):
        items = [{"id": f"v{p:02d}-{v:03d}-".ljust(64, "x"), "name": f"Size {v} ".ljust(200, "y"),
                  "stock": 9_999_999} for v in range(variants)]
        product = await make_product(live, sku=f"SKU-{p}", title="T" * 200, variants=items)
        lineup.append(product["id"])
    return await make_live_stream(live, lineup)


def decode(frame: str | bytes) -> dict[str, Any]:
    return msgpack.unpackb(frame) if isinstance(frame, bytes) else orjson.loads(frame)


async def non_reader(live: Live, stream_id: str) -> ClientConnection:
    """A client with a tiny receive buffer that stops reading as soon as it has joined."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(
        sock, ("127.0.0.1", int(live.ws_url.rsplit(":", 1)[1])))
    ws = await connect(room_url(live, stream_id), sock=sock, max_size=None, max_queue=1)
    ws.transport.pause_reading()
    return ws


_SMALL_CAP = {"ws_outbox_bytes": 32 * 1024, "ws_slow_close_s": 0.5}


@pytest.mark.parametrize("node_settings", [_SMALL_CAP])
async def test_a_non_reader_of_a_big_snapshot_is_closed_holding_less_than_the_cap(
        live: Live) -> None:
    """With the default kernel send buffer: left to the OS, it grew to hold the whole
    snapshot of a socket that does not read."""
    stream = await big_room(live, products=8)  # a ~300 KB snapshot against a 32 KiB cap
    cap = live.services.hub.limits.outbox_bytes
    ws = await non_reader(live, stream["id"])
    try:
        room = await eventually(lambda: live.services.hub.rooms.get(stream["id"]), "the room")
        [sub] = await eventually(lambda: list(room.subscribers), "the socket in the room")
        peak = 0

        def closing() -> bool:
            nonlocal peak
            peak = max(peak, sub.sink.conn.transport.get_write_buffer_size())
            return sub.sink.conn.protocol.state is not State.OPEN

        # Nothing else happens in the room: only the unread snapshot can get it closed.
        await eventually(closing, "the non-reader closed")
        assert peak <= cap
        ws.transport.resume_reading()
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10 * UNIT):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
    finally:
        await ws.close()
    await eventually(lambda: not room.subscribers and not live.services.hub_server.per_ip,
                     "the socket's session gone")


@pytest.mark.parametrize("node_settings", [{**_SMALL_CAP, "ws_slow_close_s": 0.2}])
async def test_a_non_reader_that_never_takes_its_close_frame_is_dropped(live: Live) -> None:
    """Its close frame waits behind bytes it does not read: the connection is dropped, so
    its buffers are freed without waiting for the peer or the keepalive."""
    stream = await big_room(live, products=4)
    ws = await non_reader(live, stream["id"])
    try:
        room = await eventually(lambda: live.services.hub.rooms.get(stream["id"]), "the room")
        [sub] = await eventually(lambda: list(room.subscribers), "the socket in the room")
        await eventually(lambda: sub.sink.conn.protocol.state is State.CLOSED, "the socket dropped")
        assert sub.sink.conn.transport.is_closing()
        await eventually(lambda: not room.subscribers, "the session gone")
    finally:
        ws.transport.abort()


@pytest.mark.parametrize("node_settings", [_SMALL_CAP])
@pytest.mark.parametrize("subprotocol", ["livecart.v1.json", "livecart.v1.msgpack"])
async def test_a_reader_gets_the_whole_big_snapshot_then_deltas(live: Live,
                                                                 subprotocol: str) -> None:
    stream = await big_room(live, products=4)
    read = await read_snapshot(live.services.client, live.services.chat, stream["id"])
    assert read is not None
    expected = read.fields()
    async with connect(room_url(live, stream["id"]), max_size=None,
                       subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        snap = decode(await asyncio.wait_for(ws.recv(), 5 * UNIT))
        assert snap["type"] == "snapshot" and isinstance(snap.pop("server_time_ms"), int)
        assert snap == {**expected, "viewers": snap["viewers"]}
        assert sum(len(s) for s in snap["stock"].values()) == 400
        product = snap["tray"][1]
        await live.services.streams.pin(stream["id"], product)
        async with asyncio.timeout(5 * UNIT):
            while (message := decode(await ws.recv()))["type"] != "pin":
                pass
        assert (message["product_id"], message["seq"]) == (product, snap["seq"] + 1)


@pytest.mark.parametrize("node_settings", [{"ws_new_per_ip_s": 0.001,
                                             "ws_new_burst_per_ip": 3}])
async def test_new_sockets_per_address_are_rate_limited_before_the_upgrade(live: Live) -> None:
    await make_brand(live)
    stream = await make_live_stream(live, [(await make_product(live))["id"]])
    for _ in range(3):
        async with connect(room_url(live, stream["id"])) as ws:
            await recv_until(ws, "snapshot")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(room_url(live, stream["id"])):
            pass
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["Content-Type"] == "application/problem+json"
    assert orjson.loads(response.body)["type"].endswith("/too-many-new-sockets")
    assert int(response.headers["Retry-After"]) >= 1


def test_the_new_socket_rate_forgets_refilled_addresses_only() -> None:
    from live.hub.server import HubServer, WsLimits
    server = HubServer(None, allowed_origins=(), limits=WsLimits(new_per_ip_s=1.0,
                                                                 new_burst_per_ip=2))
    for i in range(9_999):
        assert server.new_socket_allowed(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert server.new_socket_allowed("busy", 99.5) and server.new_socket_allowed("busy", 99.5)
    assert server.new_socket_allowed("new", 100.0)  # the table is full: the refilled go
    assert len(server._new_per_ip) == 2
    assert not server.new_socket_allowed("busy", 100.0)  # half a token: it was kept
