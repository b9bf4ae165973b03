"""The hub: one room per live stream, fan-out of encoded bytes, backpressure per socket.

A room encodes each message once per wire format and writes the same bytes to every
socket, synchronously, the way `websockets.broadcast` does (never awaiting one viewer).
Unlike `broadcast`, it bounds each socket: state frames to a socket whose write buffer is
over the cap are conflated (it gets the full current state once it drains); an event it
cannot take means it has a gap, so it is closed with TOO_SLOW and resumes from its last seq.
The join snapshot, which can be bigger than the cap, is read and encoded once per room and
written to each socket only as fast as that socket reads it (`send_snapshot`).
Events arrive from Valkey pub/sub (so a pin made on any node reaches every node); state is
read from Valkey once per tick for all rooms and only what changed is sent.

A room sees its sockets only through `Sink` (live/hub/sockets.py adapts websockets), so
its rules are tested without sockets (tests/live/test_room.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol
from urllib.parse import unquote

import orjson
import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub

from checkout.funnel import FunnelBatch, write_funnel
from checkout.ids import StreamId
from checkout.store.keys import chat_keys, stream_likes_key, stream_seq_key, stream_viewers_key
from checkout.tasks import stop_task
from live.chat.store import STAFF_BADGES, chat_channel
from live.hub.protocol import (ChatBatch, CloseCode, Error, ServerMessage, Snapshot, State, Wire,
                               encode_server, event_frame, server_frame, with_server_time,
                               ws_continuations, ws_first_fragment)
from live.hub.state import read_events_after, read_states
from live.hub.stock_history import STOCK_HISTORY_MAX, record_stock
from live.streams.store import events_channel
from live.streams.viewers import viewer_share

__all__ = ["Hub", "Room", "Sink", "Subscriber", "HubLimits", "EncodedSnapshot", "send_snapshot",
           "write_frame", "close_slow", "tick_pause"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HubLimits:
    outbox_bytes: int = 256 * 1024  # per-socket write buffer before conflating / closing
    slow_close_s: float = 5.0  # over the cap (or a snapshot stalled) this long: closed TOO_SLOW
    slow_drop_s: float = 2.0  # a TOO_SLOW close frame not taken by then: the TCP link is dropped
    snapshot_reuse_s: float = 1.0  # joins share one snapshot read for this long (no event since)
    tick_s: float = 0.1  # state coalescing period (the shortest)
    tick_share: float = 0.5  # at most this share of the loop goes to ticks; big rooms tick slower
    heartbeat_s: float = 1.0  # viewer-count share refresh; valid for 3 beats
    replay_limit: int = 1000  # events replayed on resume before falling back to a snapshot
    pending_limit: int = 256  # events queued for a socket between join and snapshot
    chat_per_viewer_s: float = 10.0  # ordinary chat messages a viewer is sent per second
    chat_buckets: int = 8  # viewers spread over this many samples of a busy chat
    chat_pending_limit: int = 5000  # messages buffered per room between two ticks
    chat_owed_limit: int = 100  # staff messages kept for a socket that skipped a chat frame
    chat_recent: int = 200  # messages a room remembers for sockets joining on an older snapshot
    chat_tick_s: float = 0.25  # chat frames at most this often: fewer, fuller frames
    tick_chunk: int = 1000  # sockets written between two turns of the loop in a tick
    stock_history_max: int = STOCK_HISTORY_MAX  # a live show's recorded stock changes, entries

    @property
    def write_limit(self) -> int:
        """Each transport's high-water mark (websockets' `write_limit`), and the size of a
        snapshot fragment, written only below it: a snapshot fills at most half the cap."""
        return self.outbox_bytes // 4


class Sink(Protocol):
    """One socket as a room needs it: complete frames written in order without awaiting,
    the bytes it has not taken yet, a wait for it to drain, and a way out."""

    def is_open(self) -> bool: ...

    def buffered(self) -> int: ...

    def write(self, frame: bytes) -> None: ...

    async def drained(self) -> bool: ...  # below the high-water mark; False if it closed

    async def close_or_drop(self, code: CloseCode, reason: str, drop_after_s: float) -> None: ...


@dataclass(eq=False, slots=True)
class Subscriber:
    sink: Sink
    wire: Wire
    counted: bool = True  # a viewer; False for the host's console and the OBS source
    active: bool = False
    base_seq: int = 0
    queued: list[tuple[int, bytes]] = field(default_factory=list)
    needs_state: bool = False
    over_since: float | None = None
    overflowed: bool = False
    closing: asyncio.Task[None] | None = None
    # Chat (docs/chat.md): every message, held ones too (host console, moderators), or the
    # sample of `bucket`; who it chats as (a ban names it); staff messages it still owes.
    full_chat: bool = False
    bucket: int = 0
    chat_user: str | None = None
    owed_chat: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EncodedSnapshot:
    """A room's snapshot encoded once for one wire, without `server_time_ms` (each socket
    gets its own, see `protocol.with_server_time`), and all its frames but the first."""

    seq: int
    taken_at: float
    payload: bytes
    continuations: tuple[bytes, ...]


def write_frame(sub: Subscriber, frame: bytes, limits: HubLimits, *, droppable: bool,
                now: float) -> bool:
    """Write one complete WebSocket frame (`protocol.ws_frame`) without awaiting.
    False if it was not written."""
    sink = sub.sink
    if not sink.is_open():
        return False
    if sink.buffered() > limits.outbox_bytes:
        if sub.over_since is None:
            sub.over_since = now
        if droppable:
            sub.needs_state = True
        else:
            close_slow(sub, limits)
        return False
    sub.over_since = None
    sink.write(frame)
    return True


def tick_pause(limits: HubLimits, spent_s: float) -> float:
    """The pause after a tick that took `spent_s`: the rest of the tick period, and at least
    enough that ticks take no more than `tick_share` of the loop. State is conflatable, so
    a room whose state frame takes 90 ms to reach 10,000 sockets gets one every ~180 ms
    instead of starving pins and buys of the loop (BENCHMARKS.md)."""
    floor = spent_s * (1 - limits.tick_share) / limits.tick_share
    return max(limits.tick_s - spent_s, floor, 0.0)


async def send_snapshot(sub: Subscriber, snapshot: EncodedSnapshot, limits: HubLimits,
                        now_ms: int) -> bool:
    """Write the snapshot to a socket that is not active yet, as fragments, each once the
    socket has drained below `limits.write_limit`; True once it has taken the last one.

    A room of 50 products with 100 variants each (the catalog's limits) has a 1.8 MB
    snapshot: written whole, every socket that does not read holds all of it. Fragments
    gated on the transport keep a socket's unsent bytes under the cap, and all but the
    first (its own `server_time_ms`) are the room's shared bytes, so a socket holds
    references, not copies (measured: a copy per socket cost ~1.7x the cap in RSS). Compression would not bound it (names can
    be random) and a cap on the snapshot would refuse rooms the catalog allows. A socket
    that does not drain for `slow_close_s` is closed TOO_SLOW. Nothing else is written to
    it meanwhile: its events queue (`Room.activate`) and only websockets' control frames
    (pings, the close) go between fragments, which RFC 6455 5.4 allows.
    """
    head, _ = with_server_time(snapshot.payload, sub.wire, now_ms)
    for frame in (ws_first_fragment(head, sub.wire), *snapshot.continuations):
        if not await _drained(sub, limits):
            return False
        sub.sink.write(frame)
    return await _drained(sub, limits)


async def _drained(sub: Subscriber, limits: HubLimits) -> bool:
    """Wait until the socket's buffer is below its high-water mark; False if it closed, or
    stayed above it for `slow_close_s` (then it is closed)."""
    try:
        async with asyncio.timeout(limits.slow_close_s):
            return await sub.sink.drained()
    except TimeoutError:
        close_slow(sub, limits)
        return False


def close_slow(sub: Subscriber, limits: HubLimits) -> None:
    """Close the socket TOO_SLOW, once; a peer that reads nothing is dropped after
    `slow_drop_s` instead of holding its buffers until it goes away."""
    if sub.closing is None and sub.sink.is_open():
        sub.closing = asyncio.get_running_loop().create_task(sub.sink.close_or_drop(
            CloseCode.TOO_SLOW, "too slow: resume from your last seq", limits.slow_drop_s))


# On a cluster, redis-py reads each shard's subscription in turn, waiting up to the timeout
# on each: a short one keeps a message on the next shard from waiting behind an idle one.
_CLUSTER_BUS_POLL_S = 0.02
_STATE_KEYS = ("stock", "deal_sold", "viewers", "likes", "sales", "reactions", "auction")


@dataclass(slots=True)
class TickFrames:
    """One tick of a room, encoded once: the state frame per wire (none: nothing changed),
    and the chat: every message (the full feeds) and the buckets' messages (one list for
    all when nothing was sampled)."""

    state: dict[Wire, bytes] = field(default_factory=dict)
    chat_all: list[dict[str, Any]] = field(default_factory=list)
    chat: list[list[dict[str, Any]]] = field(default_factory=list)

    def key_for(self, sub: Subscriber) -> int:
        if sub.full_chat:
            return -1
        return sub.bucket % len(self.chat) if self.chat else 0

    def messages_for(self, sub: Subscriber) -> list[dict[str, Any]]:
        if sub.full_chat:
            return self.chat_all
        return self.chat[sub.bucket % len(self.chat)] if self.chat else []


class Room:
    """The sockets watching one stream and the last state they were sent."""

    def __init__(self, stream_id: StreamId, lineup: list[str], seq: int, limits: HubLimits) -> None:
        self.stream_id = stream_id
        self.lineup = lineup
        self.seq = seq
        self.limits = limits
        self.subscribers: set[Subscriber] = set()
        self.state: dict[str, Any] = {}
        self.ticker_head: str | None = None
        self._ticker_known = False  # the first read only learns the head, announces nothing
        # In-process listeners (the video data channels): (seq or None for state, message).
        self.taps: set[Callable[[int | None, dict[str, Any]], None]] = set()
        self._snapshots: dict[Wire, EncodedSnapshot] = {}
        self._snapshot_lock = asyncio.Lock()
        # Chat messages heard since the last tick, and each viewer's allowance of them.
        self.chat_pending: list[dict[str, Any]] = []
        # The posted messages heard lately, with when: a joiner's shared snapshot may be a
        # second old, so it is sent those heard since (`chat_since`).
        self.recent_chat: deque[tuple[float, dict[str, Any]]] = deque(maxlen=limits.chat_recent)
        self._chat_allowance = limits.chat_per_viewer_s
        self._chat_flushed: float | None = None
        self._rng = random.Random()
        self._joined = 0
        self._writing: TickFrames | None = None  # the tick being written, chunk by chunk
        # What comments are read against (comment-to-buy, live/hub/claims.py): the chat
        # settings and the product codes, read once, then kept current by the events.
        self.chat_settings: dict[str, Any] | None = None
        self.codes: dict[str, int] | None = None
        self.bans_epoch = 0  # ban changes heard: a socket's cached channel ban is read again
        # The stock levels this room's hub had recorded in the show's history (live only).
        self.stock_recorded: dict[str, dict[str, int]] = {}

    async def snapshot(self, wire: Wire, now: float,
                       read: Callable[[], Awaitable[Snapshot | None]]
                       ) -> EncodedSnapshot | None:
        """The room's snapshot for `wire`: one `read()` and one encoding shared by every
        socket that joins within `snapshot_reuse_s` while no event has happened since.
        A join storm then costs one read of the room (~0.1 s for 50 products of 100
        variants) and its memory, not one per socket. The state parts (stock, viewers, ...)
        may be that old: the full `state` sent after it makes them current."""
        async with self._snapshot_lock:
            cached = self._snapshots.get(wire)
            if (cached is None or cached.seq < self.seq
                    or now - cached.taken_at > self.limits.snapshot_reuse_s):
                snapshot = await read()
                if snapshot is None:
                    return None
                payload = encode_server(snapshot, wire)
                _, rest = with_server_time(payload, wire, 0)
                cached = EncodedSnapshot(snapshot.seq, now, payload,
                                         ws_continuations(rest, self.limits.write_limit))
                self._snapshots[wire] = cached
            return cached

    def event(self, seq: int, raw_json: bytes, now: float) -> None:
        """Deliver logged event `seq` (raw JSON as logged) once; older seqs are dropped."""
        if seq <= self.seq:
            return
        self.seq = seq
        message = orjson.loads(raw_json)
        if message.get("type") == "lineup.changed":
            self.lineup = list(message.get("lineup", self.lineup))
            if "codes" in message:
                self.codes = dict(message["codes"])
        elif message.get("type") == "chat.settings":
            self.chat_settings = {k: v for k, v in message.items() if k not in ("type", "seq")}
        if str(message.get("type", "")).startswith("chat."):
            self._moderated(message, now)
        for tap in list(self.taps):
            tap(seq, message)
        frames = {w: event_frame(raw_json, w) for w in self._wires()}
        for sub in list(self.subscribers):
            if not sub.active:
                if len(sub.queued) < self.limits.pending_limit:
                    sub.queued.append((seq, frames[sub.wire]))
                else:
                    sub.overflowed = True  # it would have a gap: it resumes instead
                continue
            if seq <= sub.base_seq:
                continue  # its snapshot or replay already had this event
            write_frame(sub, frames[sub.wire], self.limits, droppable=False, now=now)

    def _moderated(self, event: dict[str, Any], now: float) -> None:
        """A moderation event: what it removes is never sent from this room's buffer, and a
        banned user's own sockets are told (docs/chat.md)."""
        kind = event["type"]
        if kind == "chat.deleted":
            self._forget(lambda m: m["id"] == event["id"])
        elif kind == "chat.cleared":
            self._forget(lambda m: not m.get("held"))
        elif kind == "chat.unbanned":
            self.bans_epoch += 1
        elif kind == "chat.banned":
            self.bans_epoch += 1
            user, until = event["user"], event.get("until_ms")
            self._forget(lambda m: m["user"] == user)
            error = (Error("banned", "you are banned from this chat") if until is None
                     else Error("timed-out", f"you are timed out of this chat until {until}"))
            for sub in list(self.subscribers):
                if sub.chat_user == user and sub.active:
                    write_frame(sub, server_frame(error, sub.wire), self.limits,
                                droppable=False, now=now)

    def _forget(self, gone: Callable[[dict[str, Any]], bool]) -> None:
        self.chat_pending = [m for m in self.chat_pending if not gone(m)]
        if self._writing is not None:  # the sockets of the tick's later chunks: not them either
            self._writing.chat_all = [m for m in self._writing.chat_all if not gone(m)]
            self._writing.chat = [[m for m in b if not gone(m)] for b in self._writing.chat]
        kept = [(t, m) for t, m in self.recent_chat if not gone(m)]
        self.recent_chat.clear()
        self.recent_chat.extend(kept)
        for sub in self.subscribers:  # staff messages a slow socket is still owed
            if sub.owed_chat:
                sub.owed_chat = [m for m in sub.owed_chat if not gone(m)]

    def chat(self, message: dict[str, Any], now: float) -> None:
        """A posted (or held) message from the bus: sent with the next tick."""
        kept = len(self.chat_pending)
        if kept < self.limits.chat_pending_limit or (_is_staff(message)
                                                     and kept < 2 * self.limits.chat_pending_limit):
            self.chat_pending.append(message)
        if not message.get("held"):
            self.recent_chat.append((now, message))

    def chat_since(self, since: float) -> list[dict[str, Any]]:
        """The posted messages this room heard at or after `since` (monotonic)."""
        return [m for t, m in self.recent_chat if t >= since]

    def flush_chat(self, now: float) -> None:
        """Send the chat now, on its own (tests; the hub sends it with the tick's state)."""
        self.write_tick(self.prepare_tick(None, now, chat_due=True), list(self.subscribers), now)

    def _chat_samples(self, now: float) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        """(every message, each bucket's messages): to viewers the staff messages and, of
        the others, at most `chat_per_viewer_s` a second: all of them when they come
        slower, else each bucket of sockets its own uniform sample, in log order
        (docs/chat.md). Empty when nothing is pending."""
        elapsed = 0.0 if self._chat_flushed is None else now - self._chat_flushed
        self._chat_flushed = now
        rate = self.limits.chat_per_viewer_s
        self._chat_allowance = min(rate, self._chat_allowance + elapsed * rate)
        pending, self.chat_pending = self.chat_pending, []
        if not pending:
            return [], []
        public = [m for m in pending if not m.get("held")]
        ordinary = [m["id"] for m in public if not _is_staff(m)]
        allowed = int(self._chat_allowance)
        if len(ordinary) <= allowed:
            self._chat_allowance -= len(ordinary)
            return pending, [public]
        self._chat_allowance -= allowed
        samples = []
        for _ in range(self.limits.chat_buckets):
            chosen = set(self._rng.sample(ordinary, allowed))
            samples.append([m for m in public if m["id"] in chosen or _is_staff(m)])
        return pending, samples

    def broadcast(self, message: ServerMessage, now: float, *, droppable: bool) -> None:
        frames = {w: server_frame(message, w) for w in self._wires()}
        for sub in self.subscribers:
            if sub.active:
                write_frame(sub, frames[sub.wire], self.limits, droppable=droppable, now=now)

    def apply_state(self, state: dict[str, Any], now: float) -> None:
        """Send what changed since the last tick, coalesced into one frame (tests; the hub
        sends it with the tick's chat)."""
        self.write_tick(self.prepare_tick(state, now, chat_due=False), list(self.subscribers), now)

    def chat_due(self, now: float) -> bool:
        """Chat goes out every `chat_tick_s`, not every state tick: fewer, fuller frames."""
        return self._chat_flushed is None or now - self._chat_flushed >= self.limits.chat_tick_s

    def prepare_tick(self, state: dict[str, Any] | None, now: float, *,
                     chat_due: bool) -> TickFrames:
        """A tick's frames, encoded once per wire (and per bucket for a sampled chat): what
        changed in `state` since the last tick, and the chat when it is due."""
        frames = TickFrames()
        if state is not None:
            change = self._state_change(state)
            if change is not None:
                frames.state = {w: server_frame(change, w) for w in self._wires()}
                for tap in list(self.taps):
                    tap(None, change.fields())
        if chat_due:
            frames.chat_all, frames.chat = self._chat_samples(now)
        self._writing = frames
        return frames

    def write_tick(self, frames: TickFrames, subs: list[Subscriber], now: float) -> None:
        """Write the tick to `subs`, each in one write: its state frame and its chat frame
        together (two writes per socket per tick cost twice the loop). A socket over its
        cap gets neither: the full state once drained, and the staff messages it missed."""
        encoded: dict[tuple[int, Wire], bytes] = {}
        for sub in subs:
            if not sub.active:
                continue
            parts = []
            state_frame = frames.state.get(sub.wire)
            if state_frame is not None:
                parts.append(state_frame)
            messages = frames.messages_for(sub)
            if sub.owed_chat:
                owed, sub.owed_chat = sub.owed_chat, []
                ids = {m["id"] for m in owed}
                messages = owed + [m for m in messages if m["id"] not in ids]
                parts.append(server_frame(ChatBatch(messages), sub.wire))
            elif messages:
                key = (frames.key_for(sub), sub.wire)
                frame = encoded.get(key)
                if frame is None:
                    frame = encoded[key] = server_frame(ChatBatch(messages), sub.wire)
                parts.append(frame)
            if parts:
                frame = parts[0] if len(parts) == 1 else b"".join(parts)
                if not write_frame(sub, frame, self.limits, droppable=True, now=now):
                    sub.owed_chat = [m for m in messages if _is_staff(m)][
                        -self.limits.chat_owed_limit:]
            self._catch_up(sub, now)

    def stock_change(self, state: dict[str, Any]) -> dict[str, dict[str, int]]:
        """The products whose stock in `state` differs from what this room last recorded
        (all of them until the show is live): what the stock history is offered."""
        return {p: v for p, v in state["stock"].items() if self.stock_recorded.get(p) != v}

    def _state_change(self, state: dict[str, Any]) -> State | None:
        change: dict[str, Any] = {}
        for key in ("stock", "deal_sold"):  # per product: only the products that changed
            old = self.state.get(key, {})
            changed = {p: v for p, v in state[key].items() if old.get(p) != v}
            if changed:
                change[key] = changed
        for key in ("viewers", "likes", "sales", "reactions", "auction"):
            if self.state.get(key) != state[key]:
                change[key] = state[key]
        self.state = {k: state[k] for k in _STATE_KEYS}
        fresh = self._ticker(state["ticker"])
        if fresh:
            # New sales ride in the tick's one frame: a frame per sale per viewer was 60%
            # of the send time under a buy storm and pushed pins seconds back (BENCHMARKS.md).
            change["just_bought"] = fresh
        return State(**change) if change else None

    def viewer_count(self) -> int:
        """The sockets that are viewers: the host's own sockets are not an audience."""
        return sum(1 for sub in self.subscribers if sub.counted)

    def full_state(self) -> State:
        return State(**self.state)

    def activate(self, sub: Subscriber, base_seq: int, now: float) -> None:
        """The socket has its snapshot (or replay) up to `base_seq`: release what queued."""
        for seq, frame in sub.queued:
            if seq > base_seq:
                write_frame(sub, frame, self.limits, droppable=False, now=now)
        sub.queued.clear()
        sub.active = True
        sub.bucket = self._joined % self.limits.chat_buckets  # round robin: even buckets
        self._joined += 1
        sub.base_seq = base_seq
        if sub.overflowed:
            close_slow(sub, self.limits)

    def _ticker(self, ticker: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The sales at the head of the ticker not seen last tick, newest first."""
        head = ticker[0].get("order") if ticker else None
        fresh: list[dict[str, Any]] = []
        if self._ticker_known and head != self.ticker_head:
            for item in ticker:
                if item.get("order") == self.ticker_head:
                    break
                fresh.append(item)
        self.ticker_head = head
        self._ticker_known = True
        return fresh

    def _catch_up(self, sub: Subscriber, now: float) -> None:
        """For a socket that was over the cap or missed a state frame (the others cost two
        reads): closed if still over the cap `slow_close_s` on, or the full state once drained."""
        if sub.over_since is None and not sub.needs_state:
            return
        if not sub.sink.is_open():
            return
        buffered = sub.sink.buffered()
        if buffered <= self.limits.outbox_bytes:
            sub.over_since = None
        elif sub.over_since is None:
            sub.over_since = now
        elif now - sub.over_since > self.limits.slow_close_s:
            close_slow(sub, self.limits)
            return
        if sub.needs_state and sub.active and buffered <= self.limits.outbox_bytes // 2:
            sub.needs_state = False
            write_frame(sub, server_frame(self.full_state(), sub.wire), self.limits,
                        droppable=True, now=now)
        if sub.owed_chat and sub.active and buffered <= self.limits.outbox_bytes // 2:
            owed, sub.owed_chat = sub.owed_chat, []
            write_frame(sub, server_frame(ChatBatch(owed), sub.wire), self.limits,
                        droppable=True, now=now)

    def _wires(self) -> set[Wire]:
        """The wire formats in use: each message is encoded once per format, not per socket."""
        return {sub.wire for sub in self.subscribers}


async def _next_message(pubsub: PubSub) -> dict[str, Any] | None:
    """The next message of the rooms' shard channels (events_channel, chat_channel), or
    None after a quiet while; a cluster client reads them from every shard they live on."""
    if isinstance(pubsub, ClusterPubSub):
        return await pubsub.get_sharded_message(ignore_subscribe_messages=True,
                                                timeout=_CLUSTER_BUS_POLL_S)
    message: dict[str, Any] | None = await pubsub.get_message(timeout=1.0)
    return message


@dataclass(slots=True)
class BusPace:
    """Paces a cluster bus poll that keeps answering None early.

    redis-py's sharded pub/sub answers None at once, without awaiting anything, in some
    states (no shard connection held: the cluster gone, a failover half done): the bus loop
    then never yielded, and hub processes were found spinning at 100 % CPU. Only a cluster
    poll is paced, and only after `limit` early empty answers in a row: a plain
    `get_message` answers None early on a subscribe confirmation, and so does a cluster poll
    now and then, and waiting out every such poll delayed the next message (chat tests
    failed on it). A message resets the count."""

    limit: int = 3
    pause_s: float = _CLUSTER_BUS_POLL_S
    early: int = 0

    async def after_empty(self, pubsub: PubSub, spent_s: float) -> None:
        if not isinstance(pubsub, ClusterPubSub):
            return
        if spent_s >= _CLUSTER_BUS_POLL_S / 2:
            self.early = 0
            return
        self.early += 1
        if self.early >= self.limit:
            await asyncio.sleep(self.pause_s)


def _is_staff(message: dict[str, Any]) -> bool:
    return not STAFF_BADGES.isdisjoint(message.get("badges", ()))


class Hub:
    """Owns every room of this node, its pub/sub subscription, the tick and the heartbeat."""

    def __init__(self, client: redis.Redis, node_id: str, limits: HubLimits) -> None:
        self.client = client
        self.node_id = node_id
        self.limits = limits
        self.rooms: dict[str, Room] = {}
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pace = BusPace()
        self._tasks: list[asyncio.Task[None]] = []
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._likes: dict[str, int] = {}
        self._reactions: dict[str, dict[str, int]] = {}
        # The sockets' product views and taps, written once per tick like the likes.
        self.funnel = FunnelBatch()
        self.ticks = 0

    def add_likes(self, stream_id: str, count: int) -> None:
        """Likes are summed locally and written once per tick, not once per tap."""
        self._likes[stream_id] = self._likes.get(stream_id, 0) + count

    def add_reaction(self, stream_id: str, emoji: str) -> None:
        """Reactions are summed like likes and written once per tick."""
        counts = self._reactions.setdefault(stream_id, {})
        counts[emoji] = counts.get(emoji, 0) + 1

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._tick_loop(), name="hub-tick"),
                           asyncio.create_task(self._bus_loop(), name="hub-bus"),
                           asyncio.create_task(self._heartbeat_loop(), name="hub-heartbeat")]

    async def close(self) -> None:
        for task in self._tasks:
            await stop_task(task)
        self._tasks = []
        if self.rooms:
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for stream_id in self.rooms:
                        pipe.hdel(stream_viewers_key(stream_id), self.node_id)
                    await pipe.execute()
            except Exception:  # shutting down: the share expires on its own
                log.debug("could not clear viewer shares", exc_info=True)
        await self._pubsub.aclose()

    async def room(self, stream_id: StreamId, lineup: list[str]) -> Room:
        room = self.rooms.get(stream_id)
        if room is not None:
            return room
        lock = self._room_locks.setdefault(stream_id, asyncio.Lock())
        async with lock:
            room = self.rooms.get(stream_id)
            if room is None:
                # Subscribe before reading seq: nothing published in between is missed.
                await self._pubsub.ssubscribe(events_channel(stream_id), chat_channel(stream_id))
                seq = int(await self.client.get(stream_seq_key(stream_id)) or 0)
                room = Room(stream_id, lineup, seq, self.limits)
                self.rooms[stream_id] = room
        return room

    async def tap(self, stream_id: StreamId, lineup: list[str],
                  listener: Callable[[int | None, dict[str, Any]], None]) -> Room:
        """Hear a room's events and state changes in-process (kept open while tapped)."""
        room = await self.room(stream_id, lineup)
        room.taps.add(listener)
        return room

    async def untap(self, room: Room, listener: Callable[[int | None, dict[str, Any]], None]) -> None:
        room.taps.discard(listener)
        await self._drop_if_empty(room)

    async def leave(self, room: Room, sub: Subscriber) -> None:
        room.subscribers.discard(sub)
        await self._drop_if_empty(room)

    async def _drop_if_empty(self, room: Room) -> None:
        if not room.subscribers and not room.taps and self.rooms.get(room.stream_id) is room:
            del self.rooms[room.stream_id]
            await self._pubsub.sunsubscribe(events_channel(room.stream_id),
                                            chat_channel(room.stream_id))
            await self.client.hdel(stream_viewers_key(room.stream_id), self.node_id)

    async def catch_up_room(self, room: Room) -> None:
        """Pull events the bus did not bring (a dropped pub/sub message, a reconnect)."""
        events = await read_events_after(self.client, room.stream_id, room.seq,
                                         self.limits.replay_limit)
        now = time.monotonic()
        if events is None:
            # Too far behind to replay: every socket must start over from a snapshot.
            for sub in list(room.subscribers):
                close_slow(sub, self.limits)
            room.seq = int(await self.client.get(stream_seq_key(room.stream_id)) or 0)
            return
        for raw in events:
            room.event(int(orjson.loads(raw)["seq"]), raw, now)

    async def _bus_loop(self) -> None:
        resubscribe = False
        while True:
            try:
                if resubscribe:
                    await self._resubscribe()
                    resubscribe = False
                if not self._pubsub.shard_channels:
                    await asyncio.sleep(self.limits.tick_s)
                    continue
                started = time.monotonic()
                message = await _next_message(self._pubsub)
                if message is None:
                    await self._pace.after_empty(self._pubsub, time.monotonic() - started)
                    continue
                self._pace.early = 0
                if message["type"] != "smessage":
                    continue
                tag, _, kind = message["channel"].decode().rpartition(":")
                room = self.rooms.get(unquote(tag.removeprefix("lc:{s:").removesuffix("}")))
                if room is None:
                    continue
                raw = message["data"]
                if kind == "chatlive":
                    room.chat(orjson.loads(raw), time.monotonic())
                    continue
                seq = int(orjson.loads(raw)["seq"])
                if seq > room.seq + 1:
                    await self.catch_up_room(room)
                room.event(seq, raw, time.monotonic())
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failed resubscribe (the cluster still away) is tried again next turn:
                # raised from here it would end the loop, and the hub would hear no more events.
                log.exception("hub bus failed; resubscribing")
                resubscribe = True
                await asyncio.sleep(self.limits.tick_s)

    async def _resubscribe(self) -> None:
        try:
            await self._pubsub.aclose()
        except Exception:
            log.debug("closing the old pubsub failed", exc_info=True)
        self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        if self.rooms:
            await self._pubsub.ssubscribe(*[events_channel(s) for s in self.rooms],
                                          *[chat_channel(s) for s in self.rooms])
        for room in list(self.rooms.values()):
            await self.catch_up_room(room)

    async def _tick_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                if self._likes or self._reactions:
                    likes, self._likes = self._likes, {}
                    reactions, self._reactions = self._reactions, {}
                    async with self.client.pipeline(transaction=False) as pipe:
                        for stream_id, count in likes.items():
                            pipe.incrby(stream_likes_key(stream_id), count)
                        for stream_id, counts in reactions.items():
                            for emoji, count in counts.items():
                                pipe.hincrby(chat_keys(stream_id).reactions, emoji, count)
                        await pipe.execute()
                if self.rooms:
                    rooms = {s: list(r.lineup) for s, r in self.rooms.items()}
                    states = await read_states(self.client, rooms)
                    now = time.monotonic()
                    seen: dict[str, tuple[int, dict[str, dict[str, int]]]] = {}
                    for stream_id, state in states.items():
                        room = self.rooms.get(stream_id)
                        if room is None:
                            continue
                        if state["seq"] > room.seq:
                            await self.catch_up_room(room)
                        seen[stream_id] = (state["read_ms"], room.stock_change(state))
                        await self._tick_room(room, state, now)
                    await self._record_stock(seen)
                if self.funnel:
                    await self._write_funnel()
                self.ticks += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hub tick failed")
            await asyncio.sleep(tick_pause(self.limits, time.monotonic() - started))

    async def _tick_room(self, room: Room, state: dict[str, Any], now: float) -> None:
        """A room's tick, written `tick_chunk` sockets at a time with a turn of the loop
        between: a pin, a buy or a chat post waits for one chunk, not for 10,000 writes."""
        frames = room.prepare_tick(state, now, chat_due=room.chat_due(now))
        subs = list(room.subscribers)
        chunk = self.limits.tick_chunk
        for start in range(0, len(subs), chunk):
            if start:
                await asyncio.sleep(0)
                now = time.monotonic()
            room.write_tick(frames, subs[start:start + chunk], now)

    async def _record_stock(self, seen: dict[str, tuple[int, dict[str, dict[str, int]]]]) -> None:
        """The rooms' stock changes of this tick, for the replay (live/hub/stock_history.py).
        After the rooms' state, which it must not delay; a failed write is offered again
        next tick, and never costs the state."""
        if not any(stock for _, stock in seen.values()):
            return
        try:
            appended = await record_stock(self.client, seen, self.limits.stock_history_max)
        except Exception:
            log.exception("hub stock history write failed")  # offered again next tick
            return
        for stream_id, n in appended.items():
            room = self.rooms.get(stream_id)
            if room is not None and n != -1:  # -1: not live yet, offered again next tick
                room.stock_recorded.update(seen[stream_id][1])

    async def _write_funnel(self) -> None:
        """The tick's product views and taps, one step per show (checkout/funnel.py). After
        the rooms' state, which it must not delay; a failed write loses that tick's counts,
        as it would its likes, and never the rooms' state."""
        try:
            await write_funnel(self.client, self.funnel.take())
        except Exception:
            log.exception("hub funnel write failed")

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hub heartbeat failed")
            await asyncio.sleep(self.limits.heartbeat_s)

    async def heartbeat(self) -> None:
        if not self.rooms:
            return
        expires = int(time.time() * 1000 + 3000 * self.limits.heartbeat_s)
        async with self.client.pipeline(transaction=False) as pipe:
            for stream_id, room in self.rooms.items():
                pipe.hset(stream_viewers_key(stream_id), self.node_id,
                          viewer_share(room.viewer_count(), expires))
            await pipe.execute()
