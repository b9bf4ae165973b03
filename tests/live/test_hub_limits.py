"""The hub under pressure: slow consumers, floods, generated garbage, several nodes."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State

from conftest import UNIT, Live, make_settings, start_hub, start_node, stop_node
from shop import eventually
from test_hub import recv_json, recv_until, room_url, shop_live


@pytest.mark.parametrize("node_settings", [{"ws_outbox_bytes": 16 * 1024,
                                             "ws_sndbuf_bytes": 4096}])
async def test_a_slow_viewer_is_closed_and_its_neighbour_gets_everything(live: Live) -> None:
    stream, products = await shop_live(live)
    slow_sock = socket.socket()
    slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow_sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(slow_sock, ("127.0.0.1",
                                                              int(live.ws_url.rsplit(":", 1)[1])))
    async with connect(room_url(live, stream["id"]), sock=slow_sock, max_queue=1) as slow, \
            connect(room_url(live, stream["id"]), max_queue=None) as fast:
        first_seq = (await recv_until(fast, "snapshot"))["seq"]
        await asyncio.sleep(0)  # the slow one got its snapshot into its buffers; it reads no more
        room = live.services.hub.rooms[stream["id"]]
        port = slow_sock.getsockname()[1]
        [slow_sub] = await eventually(
            lambda: [s for s in room.subscribers if s.sink.conn.remote_address[1] == port],
            "the slow one in the room")
        n = 1500

        async def pin_and_unpin() -> None:
            for i in range(n):
                if i % 2 == 0:
                    await live.services.streams.pin(stream["id"], products[1]["id"])
                else:
                    await live.services.streams.unpin(stream["id"], products[1]["id"])

        pins = asyncio.create_task(pin_and_unpin())
        # Once closed it reads again: it gets its 4008 before the server gives up on it.
        await eventually(lambda: slow_sub.sink.conn.protocol.state is not State.OPEN,
                         "the slow one closed")
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(20 * UNIT):
                while True:
                    await slow.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        await pins
        seqs = []
        async with asyncio.timeout(20 * UNIT):
            while len(seqs) < n:
                message = await recv_json(fast)
                if "seq" in message and message["type"] in ("pin", "unpin"):
                    seqs.append(message["seq"])
        assert seqs == list(range(first_seq + 1, first_seq + n + 1))  # no gap, no duplicate


async def test_message_flood_is_rate_limited_then_closed(live: Live) -> None:
    stream, _ = await shop_live(live, products=1)
    async with connect(room_url(live, stream["id"])) as ws:
        await recv_until(ws, "snapshot")
        for _ in range(200):
            await ws.send('{"type": "like"}')
        codes = []
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10 * UNIT):
                while True:
                    message = await recv_json(ws)
                    if message["type"] == "error":
                        codes.append(message["code"])
        assert "rate-limited" in codes
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4029


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10),
                                                                       children, max_size=4),
    max_leaves=8)
_frames = st.one_of(
    st.text(max_size=200),
    _json_values.map(json.dumps),
    st.fixed_dictionaries({"type": st.sampled_from(["like", "pin", "unpin", "deal.start",
                                                    "stream.end", "x"])},
                          optional={"count": _json_values, "product_id": _json_values,
                                    "ref": _json_values, "price_minor": _json_values,
                                    "quantity": _json_values, "countdown_s": _json_values,
                                    "duration_s": _json_values}
                          ).map(json.dumps),
    st.binary(max_size=50),
)


def _generate(count: int, per_example: int = 100) -> list[str | bytes]:
    """Hypothesis draws batches (its per-example overhead is what costs, not the frames)."""
    frames: list[str | bytes] = []

    @settings(max_examples=count // per_example, database=None, deadline=None)
    @given(st.lists(_frames, min_size=per_example, max_size=per_example))
    def collect(batch: list[str | bytes]) -> None:
        frames.extend(batch)

    collect()
    return frames


@pytest.mark.parametrize("node_settings", [{"ws_message_rate": 1e6}])
async def test_ten_thousand_generated_frames_never_break_the_room(live: Live) -> None:
    """Text frames go to a JSON socket, binary ones to a msgpack socket: each answers with
    error frames and stays open; a neighbour keeps getting events; the node stays ready."""
    stream, products = await shop_live(live)
    frames = _generate(10_000)
    assert len(frames) >= 10_000
    token = live.token("buyer", "fuzz")
    # Every client reads everything (max_queue=None), so a paused reader cannot stall pings.
    async with connect(room_url(live, stream["id"]), max_queue=None) as neighbour, \
            connect(room_url(live, stream["id"], token), max_queue=None) as text_ws, \
            connect(room_url(live, stream["id"], token), max_queue=None,
                    subprotocols=["livecart.v1.msgpack"]) as binary_ws:  # type: ignore[list-item]
        for ws in (neighbour, text_ws):
            await recv_until(ws, "snapshot")
        await asyncio.wait_for(binary_ws.recv(), 5 * UNIT)
        for frame in frames:
            await (binary_ws if isinstance(frame, bytes) else text_ws).send(frame)
        await live.services.streams.pin(stream["id"], products[1]["id"])
        assert (await recv_until(neighbour, "pin"))["product_id"] == products[1]["id"]
        assert (await recv_until(text_ws, "pin", timeout=20))["product_id"] == products[1]["id"]
        async with asyncio.timeout(20 * UNIT):
            while True:  # the msgpack socket is still open and in the room
                message = msgpack.unpackb(await binary_ws.recv())
                if message["type"] == "pin":
                    break
    assert (await live.http.get("/readyz")).status_code == 200


async def test_two_nodes_share_one_valkey(live: Live, tmp_path: Any) -> None:
    stream, products = await shop_live(live)
    assert live.services.valkey is None
    assert live.services.settings.redis_url is not None
    other_settings = make_settings(live.services.settings.redis_url, tmp_path)
    services_b, server_b, task_b, url_b = await start_node(other_settings)
    ws_b = await start_hub(services_b, url_b)
    try:
        async with connect(room_url(live, stream["id"])) as on_a, \
                connect(f"{ws_b}/ws/streams/{stream['id']}") as on_b1, \
                connect(f"{ws_b}/ws/streams/{stream['id']}") as on_b2:
            for ws in (on_a, on_b1, on_b2):
                await recv_until(ws, "snapshot")
            r = await live.http.post(f"/api/v1/streams/{stream['id']}/pins",
                                     json={"product_id": products[1]["id"]},
                                     headers=live.auth("creator", "cleo"))
            assert r.status_code == 200
            assert (await recv_until(on_b1, "pin"))["product_id"] == products[1]["id"]
            await _wait_viewers(on_b2, 3)
            # Node A stops beating (as if it died): B's count drops within the share's life.
            for task in live.services.hub._tasks:
                if task.get_name() == "hub-heartbeat":
                    task.cancel()
            await _wait_viewers(on_b2, 2, timeout=10)
    finally:
        await stop_node(services_b, server_b, task_b)


async def _wait_viewers(ws: Any, expected: int, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout * UNIT):
        while True:
            message = await recv_json(ws, timeout)
            if message["type"] == "state" and message.get("viewers") == expected:
                return


@pytest.mark.parametrize("node_settings", [{"ws_max_per_token": 2}])
async def test_connection_cap_per_token_is_refused_before_the_upgrade(live: Live) -> None:
    stream, _ = await shop_live(live, products=1)
    url = room_url(live, stream["id"], live.token("buyer", "greedy"))
    async with connect(url) as first, connect(url) as second:
        await recv_until(first, "snapshot")
        await recv_until(second, "snapshot")
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        assert refused.value.response.status_code == 429
    async with connect(url) as again:  # the cap counts open sockets only
        await recv_until(again, "snapshot")
