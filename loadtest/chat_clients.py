"""The chat test's client processes: the fan-out test's viewers (`loadtest.fanout_viewers`,
same connections, same seq discipline) that also watch the room's chat, and chatters that
send it.

Every message the test sends says who and when in its text: `c<n> <us>` from a chatter,
`h<n> <us>` from the host, `<us>` being `time.monotonic()` in microseconds at the send (one
clock for every process on this machine), so a viewer measures each message's latency as it
parses it. A viewer counts the ordinary messages that reach it inside a measurement window
(its delivered rate), the host's messages it got (never sampled: every viewer must get
each), the `chat.deleted` events it got, and messages out of the log's order.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtest.fanout_viewers import ViewerOptions, ViewerPool, Worker, Viewer
from loadtest.histogram import LatencyHistogram

__all__ = ["ChatPool", "ChatWorker", "chat_text"]

# Filler so a message is the size of a real one (~60 characters), not a bare stamp.
_PAD = "what size is the blue one and does it run small"
_HOST_PREFIX = "h"
_CHAT_PREFIX = "c"
_ANSWER_WAIT_S = 5.0


def chat_text(prefix: str, n: int, pad: bool = True) -> str:
    """A message's text: who (`prefix` and number), the send time, filler."""
    text = f"{prefix}{n} {int(time.monotonic() * 1e6)}"
    return f"{text} {_PAD}" if pad else text


def _id_key(message_id: str) -> tuple[int, int] | None:
    """A posted message's place in the log (`<ms>-<n>`); None for any other id."""
    ms, _, n = message_id.partition("-")
    return (int(ms), int(n)) if ms.isdigit() and n.isdigit() else None


@dataclass(slots=True)
class _Seen:
    """What one viewer got of the chat."""
    counted: int = 0  # ordinary messages inside the window
    last_id: tuple[int, int] | None = None
    disorder: int = 0  # a message not after the one before it in the log
    host: set[int] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)


class ChatPool(ViewerPool):
    """Viewers (or, signed in, chatters) that tally the chat they are sent."""

    def __init__(self, options: ViewerOptions) -> None:
        super().__init__(options)
        self.seen: list[_Seen] = []
        self.first_index = 0
        self.window = (0.0, 0.0)
        self.window_frames = 0
        self.chat_messages = 0  # every chat message received, window or not
        self.chat_latency = LatencyHistogram()  # ordinary messages
        self.host_chat_latency = LatencyHistogram()
        self.acks: collections.Counter[str] = collections.Counter()  # by the ref's prefix
        self.refused: collections.Counter[str] = collections.Counter()  # error code
        self.notices: collections.Counter[str] = collections.Counter()
        self.sending: asyncio.Task[dict[str, Any]] | None = None

    def start(self, url: str, count: int, first_index: int, hub: bool,
              tokens: list[str] | None = None) -> None:
        super().start(url, count, first_index, hub, tokens)
        self.first_index = first_index
        self.seen = [_Seen() for _ in range(count)]

    # ---- frames
    def apply(self, v: Viewer, msg: dict[str, Any], frame: str | bytes, now: float) -> None:
        kind = msg.get("type")
        if kind == "chat":
            self.types["chat"] += 1
            self._on_chat(self.seen[v.index - self.first_index], msg.get("messages") or [], now)
            return
        if kind == "ack":
            self.acks[str(msg.get("ref", ""))[:1]] += 1
        elif kind == "error":
            self.refused[str(msg.get("code"))] += 1
        elif kind == "notice":
            self.notices[str(msg.get("code"))] += 1
        super().apply(v, msg, frame, now)
        if kind == "chat.deleted":
            self.seen[v.index - self.first_index].deleted.add(str(msg.get("id")))

    def _on_chat(self, seen: _Seen, messages: list[dict[str, Any]], now: float) -> None:
        lo, hi = self.window
        inside = lo <= now <= hi
        if inside:
            self.window_frames += 1
        self.chat_messages += len(messages)
        for m in messages:
            key = _id_key(str(m.get("id", "")))
            if key is not None:
                if seen.last_id is not None and key <= seen.last_id:
                    seen.disorder += 1
                seen.last_id = key
            head, _, rest = str(m.get("text", "")).partition(" ")
            stamp = rest.partition(" ")[0]
            if not head[1:].isdigit() or not stamp.isdigit():
                continue  # not one of ours
            latency = now - int(stamp) / 1e6
            if head[0] == _HOST_PREFIX:
                seen.host.add(int(head[1:]))
                self.host_chat_latency.record(latency)
            elif head[0] == _CHAT_PREFIX:
                self.chat_latency.record(latency)
                if inside:
                    seen.counted += 1

    # ---- what the parent asks
    def begin_window(self, lo: float, hi: float) -> None:
        """Count ordinary messages arriving between these monotonic times (and start the
        latency histograms afresh)."""
        self.window = (lo, hi)
        self.window_frames = 0
        self.chat_latency = LatencyHistogram()
        self.host_chat_latency = LatencyHistogram()
        for seen in self.seen:
            seen.counted = 0

    def status(self) -> dict[str, Any]:
        return {**super().status(), "chat_messages": self.chat_messages}

    def chat_report(self, deleted: list[str], hosts: int) -> dict[str, Any]:
        live = [s for v, s in zip(self.viewers, self.seen) if not v.gave_up]
        return {
            "counts": [s.counted for s in self.seen],
            "window_frames": self.window_frames,
            "latency": self.chat_latency.encode(), "host_latency": self.host_chat_latency.encode(),
            "host_reached": {j: sum(1 for s in live if j in s.host) for j in range(hosts)},
            "deleted_reached": {d: sum(1 for s in live if d in s.deleted) for d in deleted},
            "disorder": sum(s.disorder for s in self.seen),
            "viewers_with_disorder": sum(1 for s in self.seen if s.disorder),
            "live": len(live),
        }

    # ---- sending (the chatters' process)
    def begin_sending(self, start_at: float, rate: float, duration_s: float,
                      host_at: list[float], likes_per_s: float) -> None:
        """In the background from `start_at`: chat at `rate` a second from the chatters
        (every viewer but the first) in turn, the host's messages (the first viewer, the
        stream's creator) at `host_at`, likes from the last chatter at `likes_per_s`."""
        self.acks.clear()
        self.refused.clear()
        self.notices.clear()
        self.sending = asyncio.create_task(
            self._send_all(start_at, rate, duration_s, host_at, likes_per_s))

    async def sent(self) -> dict[str, Any]:
        if self.sending is None:
            raise RuntimeError("nothing is being sent")
        out = await self.sending
        self.sending = None
        # The last messages' answers are still on their way: wait for them, a while.
        sent = out["sent"].get("chat", 0) + out["sent"].get("host", 0)
        deadline = time.monotonic() + _ANSWER_WAIT_S
        while (self.acks["c"] + self.acks["h"] + self.refused.total() < sent
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        return {**out, "acks": dict(self.acks), "refused": dict(self.refused),
                "notices": dict(self.notices)}

    async def _send_all(self, start_at: float, rate: float, duration_s: float,
                        host_at: list[float], likes_per_s: float) -> dict[str, Any]:
        host, chatters = self.viewers[0], self.viewers[1:] or self.viewers
        tally: collections.Counter[str] = collections.Counter()
        late: list[float] = [0.0]

        async def send(v: Viewer, message: dict[str, Any], what: str) -> None:
            if v.ws is None:
                tally[f"{what}_not_connected"] += 1
                return
            try:
                await v.ws.send(orjson.dumps(message).decode())
                tally[what] += 1
            except Exception as exc:  # closed meanwhile: counted, the run goes on
                tally[f"{what}_{type(exc).__name__}"] += 1

        async def at(when: float) -> None:
            wait = when - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                late[0] = max(late[0], -wait)

        async def chat() -> None:
            for i in range(int(rate * duration_s)):
                await at(start_at + i / rate)
                await send(chatters[i % len(chatters)],
                           {"type": "chat", "text": chat_text(_CHAT_PREFIX, i), "ref": f"c{i}"},
                           "chat")

        async def host_messages() -> None:
            for j, when in enumerate(host_at):
                await at(when)
                await send(host, {"type": "chat", "text": chat_text(_HOST_PREFIX, j),
                                  "ref": f"h{j}"}, "host")

        async def likes() -> None:
            for i in range(int(likes_per_s * duration_s)):
                await at(start_at + i / likes_per_s)
                await send(chatters[-1], {"type": "like", "count": 1}, "like")

        started = time.monotonic()
        parts = [chat()] if rate > 0 else []
        parts += [host_messages()] if host_at else []
        parts += [likes()] if likes_per_s > 0 else []
        await asyncio.gather(*parts)
        return {"sent": dict(tally), "seconds": round(time.monotonic() - started, 3),
                "max_late_s": round(late[0], 3)}


class ChatWorker(Worker):
    """A client process of the chat test: the fan-out viewer's commands and the chat's."""

    pool: ChatPool

    def make_pool(self, options: ViewerOptions) -> ChatPool:
        return ChatPool(options)

    async def handle(self, op: str, args: dict[str, Any]) -> Any:
        match op:
            case "chat_window":
                self.pool.begin_window(args["lo"], args["hi"])
                return None
            case "chat_report":
                return self.pool.chat_report(args["deleted"], args["hosts"])
            case "send":
                self.pool.begin_sending(args["start_at"], args["rate"], args["duration_s"],
                                        args["host_at"], args["likes_per_s"])
                return None
            case "sent":
                return await self.pool.sent()
        return await super().handle(op, args)
