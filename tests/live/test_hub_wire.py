"""The hub's wire-level pieces: frames built once (the same bytes websockets would send),
snapshots in fragments, the tick pause that keeps state frames from starving the loop, and
the snapshot shared by the sockets that join together."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import given, settings, strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from live.hub.protocol import (RateLimiter, Snapshot, Wire, decode_server, encode_server,
                               with_server_time, ws_continuations, ws_first_fragment, ws_frame)


def empty_snapshot(seq: int, **parts: Any) -> Snapshot:
    fields: dict[str, Any] = dict(stream={}, tray=[], pinned=[], deals={}, products={}, stock={},
                                  deal_sold={}, viewers=0, likes=0, sales={}, just_bought=[])
    return Snapshot(seq=seq, **{**fields, **parts})


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]) | st.integers(0, 70000),
       st.sampled_from(list(Wire)))
def test_ws_frame_matches_websockets(size: int, wire: Wire) -> None:
    payload = bytes(i % 251 for i in range(size))
    opcode = Opcode.TEXT if wire is Wire.JSON else Opcode.BINARY
    assert ws_frame(payload, wire) == Frame(opcode, payload).serialize(mask=False, extensions=[])


def test_ticks_take_at_most_their_share_of_the_loop() -> None:
    from live.hub.rooms import HubLimits, tick_pause
    limits = HubLimits(tick_s=0.1, tick_share=0.5)
    assert tick_pause(limits, 0.01) == pytest.approx(0.09)  # a small room: the usual period
    assert tick_pause(limits, 0.09) == pytest.approx(0.09)  # 10,000 sockets: 180 ms apart
    assert tick_pause(limits, 0.3) == pytest.approx(0.3)
    assert tick_pause(HubLimits(tick_s=0.1, tick_share=1.0), 0.3) == 0.0


def _received(data: bytes) -> list[Frame]:
    """The frames a websockets client parses out of `data` (it checks the fragment
    sequence and the UTF-8 of text across fragments)."""
    client = ClientProtocol(parse_uri("ws://hub/"), state=State.OPEN, max_size=None)
    client.receive_data(data)
    assert client.state is State.OPEN and not client.data_to_send(), client.close_exc
    return [e for e in client.events_received() if isinstance(e, Frame)]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=3000), st.integers(64, 1500), st.sampled_from(list(Wire)),
       st.integers(0, 2**53))
def test_a_snapshot_in_fragments_is_one_message_with_the_server_time(
        text: str, size: int, wire: Wire, now_ms: int) -> None:
    message = empty_snapshot(3, products={"p": text}, tray=[str(i) for i in range(20)])
    payload = encode_server(message, wire)
    head, rest = with_server_time(payload, wire, now_ms)
    shared = ws_continuations(with_server_time(payload, wire, 0)[1], size)  # built once
    assert bytes(rest) == payload[len(payload) - len(rest):]  # the shared bytes, not a copy
    frames = _received(ws_first_fragment(head, wire) + b"".join(shared))
    assert [f.opcode for f in frames] == [Opcode.TEXT if wire is Wire.JSON else Opcode.BINARY] + \
        [Opcode.CONT] * (len(frames) - 1)
    assert [f.fin for f in frames] == [False] * (len(frames) - 1) + [True]
    assert frames[0].data == head and all(len(f.data) <= size for f in frames)
    data = b"".join(f.data for f in frames)
    decoded = orjson.loads(data) if wire is Wire.JSON else msgpack.unpackb(data)
    assert list(decoded)[:2] == ["server_time_ms", "type"]
    assert decode_server(data if wire is Wire.MSGPACK else data.decode(), wire) == \
        Snapshot(**{**{f: getattr(message, f) for f in Snapshot.__slots__}, "server_time_ms": now_ms})


def test_a_bucket_is_idle_once_refilled() -> None:
    bucket = RateLimiter(2.0, 4, now=0.0)
    assert bucket.idle(0.0)
    assert bucket.allow(0.0) and not bucket.idle(0.0)
    assert not bucket.idle(0.4) and bucket.idle(0.5)


async def test_joins_share_one_snapshot_until_an_event_or_its_age() -> None:
    from live.hub.rooms import HubLimits, Room
    room = Room("s", [], seq=5, limits=HubLimits(snapshot_reuse_s=1.0))
    reads = []

    async def read() -> Snapshot:
        reads.append(room.seq)
        await asyncio.sleep(0)  # others join while it reads
        return empty_snapshot(room.seq)

    joins = await asyncio.gather(*(room.snapshot(Wire.JSON, 0.0, read) for _ in range(50)))
    assert len(reads) == 1 and len({id(j) for j in joins}) == 1
    assert orjson.loads(joins[0].payload)["seq"] == 5
    assert (await room.snapshot(Wire.JSON, 1.0, read)) is joins[0]
    assert len(reads) == 1
    await room.snapshot(Wire.MSGPACK, 1.0, read)  # encoded once per wire
    assert len(reads) == 2
    room.seq = 6  # an event happened: a socket joining now would miss it
    assert (await room.snapshot(Wire.JSON, 1.0, read)).seq == 6
    assert (await room.snapshot(Wire.JSON, 2.5, read)) is not None  # too old
    assert reads == [5, 5, 6, 6]
