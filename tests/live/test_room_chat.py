"""A room's chat fan-out rules without sockets (docs/chat.md, "Fan-out in big rooms"):
one frame per socket per tick, a fair sample at the per-viewer rate when chat runs faster,
and what is never sampled: staff messages, the full feeds, deletions."""

from __future__ import annotations

from typing import Any

from live.hub.protocol import ChatBatch, Wire
from live.hub.rooms import HubLimits, Room
from test_room import join, logged, received

LIMITS = HubLimits(outbox_bytes=100_000, chat_per_viewer_s=10.0, chat_buckets=8)


def message(n: int, *, user: str = "", badges: tuple[str, ...] = (), held: bool = False) -> dict[str, Any]:
    m: dict[str, Any] = {"id": f"{1000 + n}-0", "user": user or f"buyer:b{n}", "name": f"b{n}",
                         "badges": list(badges), "text": f"message {n}", "at_ms": 1000 + n,
                         "media_ms": n}
    if held:
        m["held"] = True
    return m


def chats(sink: Any) -> list[ChatBatch]:
    return [m for m in received(sink) if isinstance(m, ChatBatch)]


def texts(sink: Any) -> list[str]:
    return [m["text"] for batch in chats(sink) for m in batch.messages]


async def test_a_quiet_chat_reaches_every_viewer_whole_in_one_frame_per_tick() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    sinks = [join(room)[1] for _ in range(20)]
    for n in range(5):
        room.chat(message(n), now=0.0)
    room.flush_chat(now=1.0)
    for sink in sinks:
        assert len(chats(sink)) == 1
        assert texts(sink) == [f"message {n}" for n in range(5)]


async def test_a_flood_is_sampled_fairly_at_the_per_viewer_rate_and_staff_always_arrive() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    viewers = [join(room) for _ in range(64)]
    moderator, moderator_sink = join(room)
    moderator.full_chat = True
    room.flush_chat(now=0.0)  # the allowance starts full: one second of the rate
    for n in range(200):
        room.chat(message(n), now=0.0)
    room.chat(message(500, user="creator:cleo", badges=("host",)), now=0.0)
    room.chat(message(501, held=True), now=0.0)
    room.flush_chat(now=1.0)
    seen: set[str] = set()
    samples = set()
    for _, sink in viewers:
        got = texts(sink)
        assert "message 500" in got  # the host's message is never sampled out
        assert "message 501" not in got  # held: the full feeds only
        assert len(got) == 10 + 1  # the per-viewer rate (10 a second) plus the staff message
        seen.update(got)
        samples.add(tuple(got))
    assert 1 < len(samples) <= LIMITS.chat_buckets  # each bucket its own sample
    assert len(seen) > 50  # different viewers read different messages
    assert len(texts(moderator_sink)) == 202  # the full feed: everything, held too


async def test_the_allowance_refills_with_time_so_a_viewer_reads_the_rate_not_more() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    _, sink = join(room)
    room.flush_chat(now=0.0)
    delivered = 0
    for tick in range(1, 51):  # 5 s of 100 ms ticks, 20 messages a tick = 200 a second
        for n in range(20):
            room.chat(message(tick * 100 + n), now=tick / 10)
        room.flush_chat(now=tick / 10)
        delivered = len(texts(sink))
    assert 50 <= delivered <= 60  # 10 a second for 5 s, plus the first second's allowance


async def test_a_deleted_or_banned_message_still_waiting_for_the_tick_is_never_sent() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    _, sink = join(room)
    room.chat(message(1), now=0.0)
    room.chat(message(2, user="buyer:mallory"), now=0.0)
    room.chat(message(3), now=0.0)
    room.event(1, logged(1, "chat.deleted", id="1001-0"), now=0.0)
    room.event(2, logged(2, "chat.banned", user="buyer:mallory", until_ms=None), now=0.0)
    room.flush_chat(now=0.1)
    assert texts(sink) == ["message 3"]
    assert room.chat_since(0.0) == [message(3)]  # nor given to a socket joining late


async def test_a_socket_over_its_cap_skips_chat_but_is_owed_the_staff_messages() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    sub, sink = join(room)
    sink.unread = LIMITS.outbox_bytes + 1
    room.chat(message(1), now=0.0)
    room.chat(message(2, user="moderator:cleo", badges=("moderator",)), now=0.0)
    room.flush_chat(now=0.1)
    assert chats(sink) == []
    sink.unread = 0
    room.apply_state({"seq": 0, "stock": {}, "deal_sold": {}, "viewers": 0, "likes": 0,
                      "sales": {}, "ticker": [], "reactions": {}, "auction": None}, now=0.2)
    assert texts(sink) == ["message 2"]
    assert sub.owed_chat == []


async def test_a_message_deleted_while_owed_to_a_slow_socket_is_never_sent() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    sub, sink = join(room)
    sink.unread = LIMITS.outbox_bytes + 1
    for n in (1, 2):
        room.chat(message(n, user="moderator:cleo", badges=("moderator",)), now=0.0)
    room.flush_chat(now=0.1)
    assert len(sub.owed_chat) == 2
    room.event(1, logged(1, "chat.deleted", id=message(1)["id"]), now=0.15)
    sink.unread = 0
    room.apply_state({"seq": 1, "stock": {}, "deal_sold": {}, "viewers": 0, "likes": 0,
                      "sales": {}, "ticker": [], "reactions": {}, "auction": None}, now=0.2)
    assert texts(sink) == ["message 2"]


async def test_each_wire_gets_one_encoding_of_each_sample() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    (_, a), (_, b) = join(room), join(room)
    (_, c) = join(room, Wire.MSGPACK)
    room.chat(message(1), now=0.0)
    room.flush_chat(now=0.1)
    assert a.frames[-1] is b.frames[-1]
    assert received(c, Wire.MSGPACK)[-1] == received(a)[-1]


async def test_a_ticks_state_and_chat_go_to_a_socket_in_one_write() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    _, sink = join(room)
    room.chat(message(1), now=0.0)
    frames = room.prepare_tick(tick_state(likes=3), now=1.0, chat_due=True)
    room.write_tick(frames, list(room.subscribers), now=1.0)
    assert len(sink.frames) == 1  # one write: two WebSocket frames
    kinds = [type(m).__name__ for m in received(sink)]
    assert kinds == ["State", "ChatBatch"]


async def test_a_deletion_between_two_chunks_of_a_tick_reaches_the_later_sockets_first() -> None:
    room = Room("s", [], seq=0, limits=LIMITS)
    (_, early), (_, late) = join(room), join(room)
    room.chat(message(1), now=0.0)
    room.chat(message(2), now=0.0)
    frames = room.prepare_tick(None, now=1.0, chat_due=True)
    subs = sorted(room.subscribers, key=lambda s: s.sink is late)
    room.write_tick(frames, subs[:1], now=1.0)
    room.event(1, logged(1, "chat.deleted", id="1001-0"), now=1.0)  # between the chunks
    room.write_tick(frames, subs[1:], now=1.0)
    assert texts(early) == ["message 1", "message 2"]  # and then the deletion
    assert texts(late) == ["message 2"]


def tick_state(**parts: Any) -> dict[str, Any]:
    return {"seq": 0, "stock": {}, "deal_sold": {}, "viewers": 0, "likes": 0, "sales": {},
            "ticker": [], "reactions": {}, "auction": None, **parts}
