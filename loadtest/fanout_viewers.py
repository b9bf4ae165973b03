"""The viewers of the fan-out test: thousands of WebSocket viewers per client process.

One `ViewerPool` runs in one event loop (a client process): it opens its viewers with
`websockets.asyncio.client` (compression off, no client pings: the server pings; frames
handled as they are parsed, see `_ViewerConnection`), and each viewer keeps what a real
page would: the last seq, the pins and the stock it was shown, applying the snapshot, then
events and coalesced `state` frames. A viewer that gets closed reconnects with jittered
exponential backoff and `since=<last seq>`, a bounded number of times in a row.

Each viewer also checks its own seq sequence (a gap: a seq skipped; a duplicate: a seq seen
again) and stamps the arrival of every pin/unpin frame, and of each rise of the auction's
bid count it is shown, with `time.monotonic()`, which is one clock for every process on the
machine (CLOCK_MONOTONIC), so the parent's send times and the viewers' arrival times can be
subtracted.

`child_main` is a client process: it obeys the parent's `loadtest.fanout_fleet.ViewerFleet`
over a pipe, one answer per command (the commands are in `Worker.handle`), and exits when
told, when the pipe closes, or after `ViewerOptions.lifetime_s`.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import logging
import multiprocessing
import multiprocessing.connection
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode

from loadtest.child_procs import run_child
from loadtest.histogram import LatencyHistogram

__all__ = ["Viewer", "ViewerPool", "ViewerOptions", "Worker", "child_main"]

log = logging.getLogger(__name__)

_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY)
_EVENT_TYPES = frozenset({"pin", "unpin"})  # the frames whose arrival is stamped
_PIPE_POLL_S = 1.0
_CLOSE_TIMEOUT_S = 2.0
_EXAMPLES = 5  # detail kept per kind of problem


@dataclass(frozen=True, slots=True)
class ViewerOptions:
    open_timeout_s: float = 30.0
    connect_concurrency: int = 50  # handshakes in flight per client process
    max_attempts: int = 8  # reconnects in a row (without a frame in between) before giving up
    backoff_first_s: float = 0.2
    backoff_max_s: float = 5.0
    lifetime_s: float = 3600.0  # a client process exits by itself after this long


@dataclass(eq=False, slots=True)
class Viewer:
    index: int
    last_seq: int | None = None  # None until a snapshot (never, against the bare server)
    stock: dict[str, Any] = field(default_factory=dict)
    pinned: list[str] = field(default_factory=list)
    arrivals: dict[int, float] = field(default_factory=dict)  # pin/unpin seq -> monotonic
    auction_bids: int = 0  # the auction's bid count this viewer is shown
    # each rise of it: (count, monotonic), counts ascending (docs/auctions.md: the tick's
    # `state` carries the latest bid, so a viewer sees counts jump, not every bid)
    bid_counts: list[int] = field(default_factory=list)
    bid_arrivals: list[float] = field(default_factory=list)
    ready: bool = False
    gave_up: bool = False
    connects: int = 0
    gaps: int = 0
    dups: int = 0
    burst: int = 0
    framed: bool = False  # a frame arrived since the last connect
    ws: Any = None
    token: str | None = None  # a signed-in viewer's access_token


class _ViewerConnection(ClientConnection):
    """A client connection that hands each complete data frame to `on_message(data, now)`
    as the bytes are parsed, in `data_received`, stamped then: no receive queue, no task
    wake-up per frame, so the client costs less and its arrival times are not delayed by
    its own backlog of other sockets' frames. Anything else (control frames, fragments)
    takes the library's usual path."""

    def __init__(self, *args: Any, on_message: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_message = on_message

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.fin and event.opcode in _DATA_OPCODES:
            self._on_message(event.data, time.monotonic())
            return
        super().process_event(event)


class ViewerPool:
    """The viewers of one client process and what they saw."""

    def __init__(self, options: ViewerOptions) -> None:
        self.options = options
        self.viewers: list[Viewer] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.url = ""
        self.hub = True  # False: the bare server (no snapshot, no seq discipline)
        self.stopping = False
        self.types: collections.Counter[str] = collections.Counter()
        self.closes: collections.Counter[str] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()
        self.problems: list[str] = []
        # The burst window: frames with lo < seq <= hi (lo None: every frame) are counted.
        self.burst_on = False
        self.burst_lo: int | None = None
        self.burst_hi = 0
        self.burst_expected = 0
        self.burst_frames = 0
        self.burst_done = 0
        self.burst_last_at = 0.0
        self.burst_keep: list[str] | None = None  # the first viewer's burst frames, if asked
        self._slots: asyncio.Semaphore | None = None

    # ---- frames
    def on_frame(self, v: Viewer, frame: str | bytes, now: float) -> None:
        self.apply(v, orjson.loads(frame), frame, now)

    def apply(self, v: Viewer, msg: dict[str, Any], frame: str | bytes, now: float) -> None:
        """What a page does with one parsed frame (a subclass adds the frames it watches)."""
        kind = msg.get("type")
        self.types[str(kind)] += 1
        if kind == "snapshot":
            v.last_seq = int(msg["seq"])
            v.stock = msg.get("stock", {})
            v.pinned = msg.get("pinned", [])
            v.ready = True
            self._bids_shown(v, msg.get("auction"), now)
            return
        if kind == "state":
            stock = msg.get("stock")
            if stock:
                v.stock.update(stock)
            self._bids_shown(v, msg.get("auction"), now)
            return
        if str(kind).startswith("auction."):
            self._bids_shown(v, msg, now)
        seq = msg.get("seq")
        if seq is None:
            return
        fresh = True
        if v.last_seq is not None:
            if seq == v.last_seq + 1:
                v.last_seq = seq
            elif seq <= v.last_seq:
                fresh = False
                v.dups += 1
                if len(self.problems) < _EXAMPLES:
                    self.problems.append(f"viewer {v.index}: duplicate seq {seq} after "
                                         f"{v.last_seq} ({kind})")
            else:
                v.gaps += 1
                if len(self.problems) < _EXAMPLES:
                    self.problems.append(f"viewer {v.index}: gap, seq {seq} after {v.last_seq}")
                v.last_seq = seq
        if kind in _EVENT_TYPES:
            if fresh:
                v.pinned = msg.get("pinned", v.pinned)
            if seq not in v.arrivals:
                v.arrivals[seq] = now
        if self.burst_on and fresh and (self.burst_lo is None
                                        or self.burst_lo < seq <= self.burst_hi):
            self.burst_frames += 1
            self.burst_last_at = now
            v.burst += 1
            if v.burst == self.burst_expected:
                self.burst_done += 1
            if self.burst_keep is not None and v is self.viewers[0]:
                self.burst_keep.append(frame if isinstance(frame, str) else bytes(frame).decode())

    @staticmethod
    def _bids_shown(v: Viewer, auction: dict[str, Any] | None, now: float) -> None:
        """The auction's bid count the page would show (one auction per run: a higher count
        is a later bid, as the reducers take it)."""
        bids = auction.get("bids") if auction else None
        if isinstance(bids, int) and bids > v.auction_bids:
            v.auction_bids = bids
            v.bid_counts.append(bids)
            v.bid_arrivals.append(now)

    # ---- connections
    def _handler(self, v: Viewer) -> Any:
        def on_message(data: bytes, now: float) -> None:
            v.framed = True
            try:
                self.on_frame(v, data, now)
            except Exception as exc:  # never break the connection's data_received
                self.failures[f"bad frame: {type(exc).__name__}"] += 1
        return on_message

    async def _run(self, v: Viewer) -> None:
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        o = self.options
        failures = 0
        assert self._slots is not None
        # websockets documents create_connection as "a wrapper or a subclass" but types it as
        # the class only: this wrapper binds the viewer's handler.
        factory = functools.partial(_ViewerConnection, on_message=self._handler(v))
        while not self.stopping:
            url = self._url(v)
            code: str | None = None
            v.framed = False
            try:
                async with self._slots:  # bounds handshakes in flight, not open sockets
                    ws = await connect(url, compression=None, ping_interval=None,
                                       ping_timeout=None, open_timeout=o.open_timeout_s,
                                       close_timeout=_CLOSE_TIMEOUT_S, proxy=None,
                                       user_agent_header=None, max_size=2**20,
                                       create_connection=factory)  # type: ignore[arg-type]
                v.ws = ws
                v.connects += 1
                if v.last_seq is not None or not self.hub:
                    v.ready = True  # a resume has no snapshot; the bare server sends none
                try:
                    async for frame in ws:  # only what the fast path passed on (fragments)
                        self.on_frame(v, frame, time.monotonic())
                finally:
                    await ws.close()
                code = str(ws.close_code)
            except ConnectionClosed as exc:
                code = str(exc.rcvd.code) if exc.rcvd is not None else "1006 (no close frame)"
            except InvalidStatus as exc:
                self.failures[f"HTTP {exc.response.status_code}"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, reset, timeout: count it, back off, retry
                self.failures[type(exc).__name__] += 1
            finally:
                v.ws = None
                v.ready = False
            if self.stopping:
                break
            if code is not None:
                self.closes[code] += 1
            failures = 1 if v.framed else failures + 1
            if failures > o.max_attempts:
                v.gave_up = True
                return
            delay = min(o.backoff_max_s, o.backoff_first_s * 2 ** (failures - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))

    def _url(self, v: Viewer) -> str:
        query = [f"access_token={v.token}"] if v.token else []
        if v.last_seq is not None:
            query.append(f"since={v.last_seq}")
        return f"{self.url}?{'&'.join(query)}" if query else self.url

    def start(self, url: str, count: int, first_index: int, hub: bool,
              tokens: list[str] | None = None) -> None:
        """Open `count` viewers; with `tokens` (one each), signed in."""
        if tokens is not None and len(tokens) != count:
            raise ValueError(f"{len(tokens)} tokens for {count} viewers")
        self.url = url
        self.hub = hub
        self.stopping = False
        self._slots = asyncio.Semaphore(self.options.connect_concurrency)
        self.viewers = [Viewer(first_index + i, token=tokens[i] if tokens else None)
                        for i in range(count)]
        self.tasks = [asyncio.create_task(self._run(v)) for v in self.viewers]

    async def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if all(v.ready or v.gave_up for v in self.viewers):
                break
            await asyncio.sleep(0.05)
        return {"ready": sum(v.ready for v in self.viewers),
                "gave_up": sum(v.gave_up for v in self.viewers),
                "waited_s": round(time.monotonic() - started, 3)}

    async def stop(self) -> None:
        self.stopping = True
        for v in self.viewers:
            if v.ws is not None:
                v.ws.transport.abort()  # not 10,000 close handshakes: the server sees a reset
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    # ---- answers
    def status(self) -> dict[str, Any]:
        return {"viewers": len(self.viewers), "ready": sum(v.ready for v in self.viewers),
                "gave_up": sum(v.gave_up for v in self.viewers),
                "connects": sum(v.connects for v in self.viewers),
                "types": dict(self.types), "closes": dict(self.closes),
                "failures": dict(self.failures)}

    def burst_begin(self, lo: int | None, hi: int, expected: int, keep: bool) -> None:
        self.burst_lo, self.burst_hi, self.burst_expected = lo, hi, expected
        self.burst_frames = self.burst_done = 0
        self.burst_last_at = 0.0
        self.burst_keep = [] if keep else None
        for v in self.viewers:
            v.burst = 0
        self.burst_on = True

    def burst_status(self) -> dict[str, Any]:
        return {"frames": self.burst_frames, "done": self.burst_done,
                "last_at": self.burst_last_at, "viewers": len(self.viewers),
                "live": sum(1 for v in self.viewers if not v.gave_up)}

    def burst_end(self) -> dict[str, Any]:
        self.burst_on = False
        out = self.burst_status()
        out["kept"] = self.burst_keep or []
        self.burst_keep = None
        return out

    def latency(self, sent: dict[int, float], within_s: float) -> dict[str, Any]:
        """Latency of every (viewer, pin) pair: arrival - the host's send time."""
        hist = LatencyHistogram()
        within = collections.Counter[int]()
        missed = collections.Counter[int]()
        viewers_missing = 0
        worst = 0.0
        for v in self.viewers:
            missing = False
            for seq, at in sent.items():
                arrived = v.arrivals.get(seq)
                if arrived is None:
                    missed[seq] += 1
                    missing = True
                    continue
                lat = arrived - at
                hist.record(lat)
                worst = max(worst, lat)
                if lat <= within_s:
                    within[seq] += 1
            viewers_missing += missing
        return {"histogram": hist.encode(), "within": dict(within), "missed": dict(missed),
                "viewers_missing": viewers_missing, "max_s": worst}

    def bid_latency(self, due: dict[int, float]) -> dict[str, Any]:
        """Bid to screen for every (viewer, sampled bid): when the viewer was first shown a
        bid count at least the bid's (`due`: count -> when the bid was due) minus that."""
        hist = LatencyHistogram()
        missed = 0
        worst = 0.0
        for v in self.viewers:
            for count, at in due.items():
                i = bisect.bisect_left(v.bid_counts, int(count))
                if i == len(v.bid_counts):
                    missed += 1
                    continue
                lat = max(0.0, v.bid_arrivals[i] - at)
                hist.record(lat)
                worst = max(worst, lat)
        return {"histogram": hist.encode(), "missed": missed, "max_s": worst}

    def reset_arrivals(self) -> None:
        for v in self.viewers:
            v.arrivals.clear()

    def check(self, stock: dict[str, Any], pinned: list[str], seq: int,
              auction_bids: int | None = None) -> dict[str, Any]:
        """Compare what each viewer shows with the truth read from the server."""
        stale = behind = pinned_wrong = bids_behind = 0
        examples: list[str] = []
        for v in self.viewers:
            shown = {p: v.stock.get(p) for p in stock}
            if shown != stock or v.gave_up:
                stale += 1
                if len(examples) < _EXAMPLES:
                    examples.append(f"viewer {v.index} shows {shown}, truth {stock}"
                                    + (" (gave up)" if v.gave_up else ""))
            if v.last_seq != seq:
                behind += 1
            if sorted(v.pinned) != sorted(pinned):
                pinned_wrong += 1
            if auction_bids is not None and v.auction_bids != auction_bids:
                bids_behind += 1
        return {"stale": stale, "stale_examples": examples, "behind_seq": behind,
                "pinned_wrong": pinned_wrong, "auction_bids_behind": bids_behind,
                "gaps": sum(v.gaps for v in self.viewers),
                "dups": sum(v.dups for v in self.viewers),
                "viewers_with_gaps": sum(1 for v in self.viewers if v.gaps),
                "viewers_with_dups": sum(1 for v in self.viewers if v.dups),
                "problems": list(self.problems), **self.status()}


class Worker:
    """The command loop of one client process (a subclass adds commands and its pool)."""

    def __init__(self, pipe: multiprocessing.connection.Connection, options: ViewerOptions) -> None:
        self.pipe = pipe
        self.pool = self.make_pool(options)
        self.options = options

    def make_pool(self, options: ViewerOptions) -> ViewerPool:
        return ViewerPool(options)

    async def main(self) -> None:
        deadline = time.monotonic() + self.options.lifetime_s
        try:
            while time.monotonic() < deadline:
                if not await asyncio.to_thread(self.pipe.poll, _PIPE_POLL_S):
                    continue
                try:
                    op, args = self.pipe.recv()
                except EOFError:  # the parent is gone
                    return
                if op == "exit":
                    self.pipe.send(("ok", None))
                    return
                self.pipe.send(("ok", await self.handle(op, args)))
            log.warning("client process lifetime over; exiting")
        finally:
            await self.pool.stop()

    async def handle(self, op: str, args: dict[str, Any]) -> Any:
        pool = self.pool
        match op:
            case "connect":  # open `count` viewers to `url`; answer when all are ready
                await pool.stop()
                pool.types.clear()
                pool.closes.clear()
                pool.failures.clear()
                pool.problems.clear()
                pool.start(args["url"], args["count"], args["first_index"], args["hub"],
                           args.get("tokens"))
                return await pool.wait_ready(args["timeout_s"])
            case "wait_ready":
                return await pool.wait_ready(args["timeout_s"])
            case "status":
                return pool.status()
            case "burst_begin":
                pool.burst_begin(args["lo"], args["hi"], args["expected"], args["keep"])
                return None
            case "burst_status":
                return pool.burst_status()
            case "burst_end":
                return pool.burst_end()
            case "reset_arrivals":
                pool.reset_arrivals()
                return None
            case "latency":
                return pool.latency(args["sent"], args["within_s"])
            case "bid_latency":
                return pool.bid_latency(args["due"])
            case "check":
                return pool.check(args["stock"], args["pinned"], args["seq"],
                                  args.get("auction_bids"))
            case "disconnect":
                await pool.stop()
                return pool.status()
        raise ValueError(f"unknown command {op!r}")


def child_main(pipe: multiprocessing.connection.Connection, options: ViewerOptions,
               worker: type[Worker] = Worker) -> None:
    """A client process: `worker`'s command loop on uvloop until told to exit."""
    run_child(pipe, lambda: worker(pipe, options).main())
