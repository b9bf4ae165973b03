"""The room's fan-out rules, without sockets: each test's sockets are `MemorySink`s, the
room's `Sink` interface over a list of frames and a write buffer the test fills, and every
frame is read back with the protocol's own decoder."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.protocol import State as WsState
from websockets.uri import parse_uri

from live.hub.protocol import (CloseCode, Event, ServerMessage, Snapshot, State, Wire,
                               decode_server, encode_server)
from live.hub.rooms import EncodedSnapshot, HubLimits, Room, Subscriber, send_snapshot

LIMITS = HubLimits(outbox_bytes=1000, slow_close_s=5.0, pending_limit=3)


class MemorySink:
    """A socket that keeps what it is sent; `unread` stands for bytes the peer has not taken."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.unread = 0
        self.open = True
        self.closed_with: CloseCode | None = None
        self.drain = asyncio.Event()
        self.drain.set()

    def is_open(self) -> bool:
        return self.open

    def buffered(self) -> int:
        return self.unread

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)

    async def drained(self) -> bool:
        await self.drain.wait()
        return self.open

    async def close_or_drop(self, code: CloseCode, reason: str, drop_after_s: float) -> None:
        self.closed_with, self.open = code, False


def received(sink: MemorySink, wire: Wire = Wire.JSON) -> list[ServerMessage]:
    """The messages a websockets client parses out of the sink's bytes."""
    client = ClientProtocol(parse_uri("ws://hub/"), state=WsState.OPEN, max_size=None)
    client.receive_data(b"".join(sink.frames))
    messages, parts = [], b""
    for frame in (e for e in client.events_received() if isinstance(e, Frame)):
        parts += frame.data  # a fragmented message ends at the frame with FIN
        if frame.fin:
            messages.append(decode_server(parts.decode() if wire is Wire.JSON else parts, wire))
            parts = b""
    return messages


def join(room: Room, wire: Wire = Wire.JSON, *, active: bool = True,
         base_seq: int = 0) -> tuple[Subscriber, MemorySink]:
    sink = MemorySink()
    sub = Subscriber(sink, wire)
    room.subscribers.add(sub)
    if active:
        room.activate(sub, base_seq, now=0.0)
    return sub, sink


def logged(seq: int, kind: str = "pin", **data: Any) -> bytes:
    return orjson.dumps({"seq": seq, "type": kind, "at_ms": 1000 + seq, **data})


def tick(**parts: Any) -> dict[str, Any]:
    """A state read as `live.hub.state.read_states` returns it."""
    state: dict[str, Any] = {"seq": 0, "stock": {}, "deal_sold": {}, "viewers": 0, "likes": 0,
                             "sales": {"units": 0, "orders": 0, "gmv_minor": 0}, "ticker": [],
                             "reactions": {}, "auction": None}
    return {**state, **parts}


async def settled() -> None:
    for _ in range(3):  # a close runs as its own task
        await asyncio.sleep(0)


async def test_an_event_reaches_every_socket_once_in_order_as_the_same_bytes() -> None:
    room = Room("s", ["p1"], seq=0, limits=LIMITS)
    (_, a), (_, b) = join(room), join(room)
    room.event(1, logged(1, product_id="p1", pinned=["p1"]), now=0.0)
    room.event(1, logged(1, product_id="p1", pinned=["p1"]), now=0.0)  # again: dropped
    room.event(2, logged(2, "unpin", product_id="p1", pinned=[]), now=0.0)
    assert received(a) == received(b) == [
        Event(1, "pin", 1001, {"product_id": "p1", "pinned": ["p1"]}),
        Event(2, "unpin", 1002, {"product_id": "p1", "pinned": []})]
    assert a.frames[0] is b.frames[0]  # encoded once for the room, not per socket


async def test_each_wire_gets_the_event_in_its_own_encoding() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    _, text = join(room, Wire.JSON)
    _, binary = join(room, Wire.MSGPACK)
    room.event(1, logged(1, "stream.state", state="live"), now=0.0)
    assert received(text) == received(binary, Wire.MSGPACK) == [
        Event(1, "stream.state", 1001, {"state": "live"})]


async def test_a_joining_socket_gets_what_its_snapshot_missed_and_nothing_twice() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    sub, sink = join(room, active=False)
    for seq in (1, 2, 3):
        room.event(seq, logged(seq), now=0.0)
    assert sink.frames == []  # nothing before its snapshot
    room.activate(sub, base_seq=2, now=0.0)  # its snapshot was current to seq 2
    assert [m.seq for m in received(sink) if isinstance(m, Event)] == [3]


async def test_a_socket_that_queued_more_than_the_limit_is_told_to_resume() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    sub, sink = join(room, active=False)
    for seq in range(1, LIMITS.pending_limit + 2):
        room.event(seq, logged(seq), now=0.0)
    room.activate(sub, base_seq=0, now=0.0)
    await settled()
    assert sink.closed_with is CloseCode.TOO_SLOW


async def test_state_sends_only_what_changed_and_new_sales_once() -> None:
    room = Room("s", ["p1", "p2"], seq=0, limits=LIMITS)
    _, sink = join(room)
    sale = {"order": "p1.a", "product": "p1", "qty": 1, "buyer": "b***", "at_ms": 5}
    room.apply_state(tick(stock={"p1": {"default": 5}, "p2": {"default": 9}}, viewers=3,
                          ticker=[sale]), now=0.0)
    room.apply_state(tick(stock={"p1": {"default": 4}, "p2": {"default": 9}}, viewers=3,
                          ticker=[{**sale, "order": "p1.b"}, sale]), now=0.1)
    room.apply_state(tick(stock={"p1": {"default": 4}, "p2": {"default": 9}}, viewers=3,
                          ticker=[{**sale, "order": "p1.b"}, sale]), now=0.2)  # no change
    first, second = received(sink)
    assert isinstance(first, State) and first.just_bought is None  # the first read only learns
    assert first.stock == {"p1": {"default": 5}, "p2": {"default": 9}} and first.viewers == 3
    assert second == State(stock={"p1": {"default": 4}}, just_bought=[{**sale, "order": "p1.b"}])


async def test_bids_ride_in_the_tick_one_frame_for_many_and_none_when_nothing_moved() -> None:
    room = Room("s", ["p1"], seq=0, limits=LIMITS)
    _, sink = join(room)
    bid = {"auction": "a1", "price_minor": 1000, "next_minor": 1050, "high_paddle": 1,
           "bids": 1, "ends_ms": 9000, "reserve_met": True}
    room.apply_state(tick(auction=bid), now=0.0)
    room.apply_state(tick(auction=bid), now=0.1)  # no bid since
    later = {**bid, "price_minor": 1400, "high_paddle": 3, "bids": 7}  # six bids in one tick
    room.apply_state(tick(auction=later), now=0.2)
    first, second = received(sink)
    assert isinstance(first, State) and first.auction == bid  # the first: all there is
    assert second == State(auction=later)
    assert room.full_state().auction == later  # a socket that missed ticks gets the latest


async def test_a_socket_over_the_cap_misses_state_then_gets_it_whole_once_drained() -> None:
    room = Room("s", ["p1"], seq=0, limits=LIMITS)
    _, slow = join(room)
    _, fast = join(room)
    slow.unread = LIMITS.outbox_bytes + 1
    room.apply_state(tick(stock={"p1": {"default": 5}}, likes=1), now=0.0)
    room.apply_state(tick(stock={"p1": {"default": 4}}, likes=2), now=0.1)
    assert slow.frames == [] and len(fast.frames) == 2
    slow.unread = LIMITS.outbox_bytes // 2  # it read
    room.apply_state(tick(stock={"p1": {"default": 4}}, likes=2), now=0.2)
    assert received(slow) == [room.full_state()]
    assert room.full_state().stock == {"p1": {"default": 4}} and room.full_state().likes == 2
    await settled()
    assert slow.closed_with is None


async def test_an_event_a_socket_cannot_take_closes_it_too_slow_once() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    sub, slow = join(room)
    slow.unread = LIMITS.outbox_bytes + 1
    room.event(1, logged(1), now=0.0)
    room.event(2, logged(2), now=0.0)
    assert sub.closing is not None
    await settled()
    assert slow.closed_with is CloseCode.TOO_SLOW and slow.frames == []


async def test_a_socket_over_the_cap_for_too_long_is_closed_at_a_tick() -> None:
    room = Room("s", ["p1"], seq=0, limits=LIMITS)
    _, slow = join(room)
    slow.unread = LIMITS.outbox_bytes + 1
    room.apply_state(tick(likes=1), now=0.0)
    room.apply_state(tick(likes=1), now=LIMITS.slow_close_s)
    await settled()
    assert slow.closed_with is None
    room.apply_state(tick(likes=1), now=LIMITS.slow_close_s + 0.2)
    await settled()
    assert slow.closed_with is CloseCode.TOO_SLOW


@pytest.mark.parametrize("wire", list(Wire))
async def test_a_snapshot_goes_out_in_fragments_as_one_message_with_its_clock(wire: Wire) -> None:
    room = Room("s", ["p1"], seq=4, limits=LIMITS)
    snapshot = Snapshot(seq=4, stream={"id": "s"}, tray=["p1"], pinned=[], deals={},
                        products={"p1": {"title": "x" * 3000}}, stock={}, deal_sold={},
                        viewers=1, likes=0, sales={}, just_bought=[])

    async def read() -> Snapshot:
        return snapshot

    encoded = await room.snapshot(wire, 0.0, read)
    assert encoded is not None and len(encoded.continuations) > 1  # bigger than write_limit
    sub, sink = join(room, wire, active=False)
    assert await send_snapshot(sub, encoded, LIMITS, now_ms=77)
    [message] = received(sink, wire)
    assert message == Snapshot(**{**{f: getattr(snapshot, f) for f in Snapshot.__slots__},
                                  "server_time_ms": 77})
    assert encode_server(snapshot, wire) == encoded.payload


async def test_a_snapshot_reader_that_never_drains_is_closed_too_slow() -> None:
    limits = HubLimits(outbox_bytes=1000, slow_close_s=0.01)
    room = Room("s", [], seq=1, limits=limits)

    async def read() -> Snapshot:
        return Snapshot(seq=1, stream={}, tray=[], pinned=[], deals={}, products={}, stock={},
                        deal_sold={}, viewers=0, likes=0, sales={}, just_bought=[])

    encoded = await room.snapshot(Wire.JSON, 0.0, read)
    assert encoded is not None
    sub, sink = join(room, active=False)
    sink.drain.clear()  # the peer reads nothing
    assert not await send_snapshot(sub, encoded, limits, now_ms=0)
    await settled()
    assert sink.closed_with is CloseCode.TOO_SLOW and sink.frames == []


async def test_taps_hear_events_and_state_as_the_sockets_do() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    heard: list[tuple[int | None, dict[str, Any]]] = []
    room.taps.add(lambda seq, message: heard.append((seq, message)))
    room.event(1, logged(1, "lineup.changed", lineup=["p9"], pinned=[]), now=0.0)
    room.apply_state(tick(likes=3), now=0.0)
    assert room.lineup == ["p9"]
    assert [seq for seq, _ in heard] == [1, None]
    assert heard[1][1]["type"] == "state" and heard[1][1]["likes"] == 3
