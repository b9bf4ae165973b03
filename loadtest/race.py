"""The race: send N pre-encoded requests, each once to completion, over bounded connections.

One `Race` drives one slice of the requests in one event loop; `run_race` spreads the
slices over client processes (spawned, uvloop) so the client is not the bottleneck, starts
them together on a shared monotonic deadline, and merges what they saw.

Closed loop (default): `concurrency` connections, each sends its next request as soon as its
last one is answered. Open loop (`rate_per_s`): request i is due at go + i / rate, and its
latency is counted from when it was due, not when a connection was free, so a server that
falls behind shows it in the latency (no coordinated omission).

A request whose connection fails, that times out, or that gets a 5xx or a 202 (payment
pending) is sent again, the same bytes (so the same Idempotency-Key), up to `max_attempts`,
so each resolves to one outcome. Status 0 means it never got a final answer.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import multiprocessing.connection
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from loadtest.histogram import LatencyHistogram
from loadtest.http_client import ConnectionFailed, HttpConnection, RequestTimeout

__all__ = ["RaceSpec", "RaceResult", "Race", "run_race"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_RETRY_STATUSES = frozenset({202, 500, 502, 503, 504})
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 1.0
_CONNECT_BATCH = 64  # connections opened at once while warming up
_GO_DELAY_S = 0.2  # from "all ready" to "go": every process is waiting by then
_READY_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class RaceSpec:
    host: str
    port: int
    concurrency: int
    rate_per_s: float | None = None  # None: closed loop
    attempt_timeout_s: float = 10.0
    max_attempts: int = 6
    duration_limit_s: float = 300.0


@dataclass(slots=True)
class RaceResult:
    """What the clients saw; per-request lists are in the order of the requests given."""

    statuses: list[int]
    order_ids: list[str]
    attempts: list[int]
    problems: dict[str, int]
    histogram: bytes
    go_at: float
    last_done_at: float
    connection_errors: int = 0
    timeouts: int = 0
    retried_statuses: dict[int, int] = field(default_factory=dict)
    connects: int = 0
    histogram_201: bytes = b""  # the acknowledged buys alone
    last_201_at: float = 0.0  # when the last acknowledged buy was answered

    @property
    def completed(self) -> int:
        return sum(1 for s in self.statuses if s)

    @property
    def elapsed_s(self) -> float:
        return max(self.last_done_at - self.go_at, 1e-9)

    @property
    def throughput_per_s(self) -> float:
        return self.completed / self.elapsed_s

    def latency(self) -> LatencyHistogram:
        return LatencyHistogram.decode(self.histogram)

    def latency_201(self) -> LatencyHistogram:
        return LatencyHistogram.decode(self.histogram_201)


class Race:
    """One slice of requests in one event loop: `await connect()`, then `await run(go_at)`."""

    def __init__(self, spec: RaceSpec, requests: Sequence[bytes]) -> None:
        self.spec = spec
        self.requests = requests
        n = len(requests)
        self._conns = [HttpConnection(spec.host, spec.port)
                       for _ in range(max(1, min(spec.concurrency, n)))]
        self._statuses = [0] * n
        self._bodies: list[bytes] = [b""] * n
        self._attempts = [0] * n
        self._hist = LatencyHistogram()
        self._hist_201 = LatencyHistogram()
        self._next = 0
        self._last_done = 0.0
        self._last_201 = 0.0
        self._conn_errors = 0
        self._timeouts = 0
        self._retried: collections.Counter[int] = collections.Counter()

    async def connect(self) -> None:
        """Open every connection before the start, so the race measures requests only."""
        for i in range(0, len(self._conns), _CONNECT_BATCH):
            await asyncio.gather(*[c.open() for c in self._conns[i:i + _CONNECT_BATCH]])

    async def run(self, go_at: float) -> RaceResult:
        delay = go_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        deadline = go_at + self.spec.duration_limit_s
        try:
            await asyncio.gather(*[self._loop(c, go_at, deadline) for c in self._conns])
        finally:
            for conn in self._conns:
                conn.close()
        order_ids, problems = _read_bodies(self._statuses, self._bodies)
        return RaceResult(
            statuses=self._statuses, order_ids=order_ids, attempts=self._attempts,
            problems=problems, histogram=self._hist.encode(), go_at=go_at,
            last_done_at=self._last_done or go_at, connection_errors=self._conn_errors,
            timeouts=self._timeouts, retried_statuses=dict(self._retried),
            connects=sum(c.connects for c in self._conns),
            histogram_201=self._hist_201.encode(), last_201_at=self._last_201)

    async def _loop(self, conn: HttpConnection, go_at: float, deadline: float) -> None:
        spec = self.spec
        n = len(self.requests)
        interval = 1.0 / spec.rate_per_s if spec.rate_per_s else 0.0
        while self._next < n:
            i = self._next
            self._next += 1
            if interval:
                due = go_at + i * interval
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                start = due
            else:
                start = time.monotonic()
            if start > deadline:
                return
            await self._one(conn, i, start, deadline)

    async def _one(self, conn: HttpConnection, i: int, start: float, deadline: float) -> None:
        spec = self.spec
        raw = self.requests[i]
        status = 0
        body = b""
        attempt = 0
        while attempt < spec.max_attempts:
            attempt += 1
            timeout = min(spec.attempt_timeout_s, deadline - time.monotonic())
            if timeout <= 0:
                break
            try:
                reply = await conn.request(raw, timeout)
            except ConnectionFailed:
                self._conn_errors += 1
            except RequestTimeout:
                self._timeouts += 1
            else:
                status, body = reply.status, reply.body
                if status not in _RETRY_STATUSES:
                    break
                self._retried[status] += 1
            if attempt < spec.max_attempts:
                await asyncio.sleep(min(_BACKOFF_FIRST_S * 2 ** (attempt - 1), _BACKOFF_MAX_S))
        now = time.monotonic()
        self._attempts[i] = attempt
        if status:
            self._statuses[i] = status
            self._bodies[i] = body
            self._hist.record(now - start)
            if status == 201:
                self._hist_201.record(now - start)
                self._last_201 = max(self._last_201, now)
            self._last_done = max(self._last_done, now)


def _read_bodies(statuses: list[int], bodies: list[bytes]) -> tuple[list[str], dict[str, int]]:
    """Order ids of the 2xx replies; a count of problem types (the last path segment)."""
    order_ids = [""] * len(statuses)
    problems: collections.Counter[str] = collections.Counter()
    for i, (status, body) in enumerate(zip(statuses, bodies)):
        if not status:
            problems["no-answer"] += 1
            continue
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if 200 <= status < 300:
            order = data.get("order")
            if isinstance(order, dict):
                order_ids[i] = str(order.get("id", ""))
        else:
            problems[f"{status} {str(data.get('type', '')).rsplit('/', 1)[-1]}"] += 1
    return order_ids, dict(problems)


def _merge(parts: list[tuple[list[int], RaceResult]], n: int) -> RaceResult:
    statuses, order_ids, attempts = [0] * n, [""] * n, [0] * n
    hist = LatencyHistogram()
    hist_201 = LatencyHistogram()
    problems: collections.Counter[str] = collections.Counter()
    retried: collections.Counter[int] = collections.Counter()
    for indices, part in parts:
        for j, i in enumerate(indices):
            statuses[i] = part.statuses[j]
            order_ids[i] = part.order_ids[j]
            attempts[i] = part.attempts[j]
        hist.merge(part.latency())
        hist_201.merge(part.latency_201())
        problems.update(part.problems)
        retried.update(part.retried_statuses)
    return RaceResult(
        statuses=statuses, order_ids=order_ids, attempts=attempts, problems=dict(problems),
        histogram=hist.encode(), go_at=min(p.go_at for _, p in parts),
        last_done_at=max(p.last_done_at for _, p in parts),
        connection_errors=sum(p.connection_errors for _, p in parts),
        timeouts=sum(p.timeouts for _, p in parts), retried_statuses=dict(retried),
        connects=sum(p.connects for _, p in parts), histogram_201=hist_201.encode(),
        last_201_at=max(p.last_201_at for _, p in parts))


def _child(spec: RaceSpec, requests: list[bytes],
           conn: multiprocessing.connection.Connection) -> None:
    """A client process: connect, say ready, wait for the go time, race, send the result."""
    import uvloop

    async def main() -> None:
        race = Race(spec, requests)
        await race.connect()
        conn.send(("ready",))
        go_at = await asyncio.to_thread(conn.recv)
        conn.send(("done", await race.run(go_at)))

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    except BaseException as exc:  # the parent hears why instead of waiting for nothing
        try:
            conn.send(("error", repr(exc)))
        except OSError:
            pass
        raise
    finally:
        conn.close()


async def run_race(spec: RaceSpec, requests: Sequence[bytes], *, processes: int = 1,
                   during: Callable[[float], Awaitable[object]] | None = None) -> RaceResult:
    """Race every request once; `processes=0` runs in this event loop.

    `during(go_at)` runs alongside the race (e.g. a chaos action) and is cancelled if it is
    still running when the race ends.
    """
    n = len(requests)
    if processes <= 0:
        race = Race(spec, requests)
        await race.connect()
        go_at = time.monotonic() + 0.01
        return await _with_side_task(race.run(go_at), during, go_at)
    processes = max(1, min(processes, n))
    per_proc = RaceSpec(spec.host, spec.port, max(1, spec.concurrency // processes),
                        spec.rate_per_s / processes if spec.rate_per_s else None,
                        spec.attempt_timeout_s, spec.max_attempts, spec.duration_limit_s)
    ctx = multiprocessing.get_context("spawn")
    slices = [list(range(k, n, processes)) for k in range(processes)]
    children: list[tuple[multiprocessing.context.SpawnProcess,
                         multiprocessing.connection.Connection]] = []
    try:
        for indices in slices:
            ours, theirs = ctx.Pipe()
            part = [requests[i] for i in indices]
            proc = ctx.Process(target=_child, args=(per_proc, part, theirs),
                               name="loadtest-client", daemon=True)
            proc.start()
            theirs.close()
            children.append((proc, ours))
        for _, pipe in children:
            _expect(await _recv(pipe, _READY_TIMEOUT_S), "ready")
        go_at = time.monotonic() + _GO_DELAY_S
        for _, pipe in children:
            pipe.send(go_at)

        async def collect() -> list[RaceResult]:
            limit = _GO_DELAY_S + spec.duration_limit_s + spec.attempt_timeout_s + 30
            return [_expect(await _recv(pipe, limit), "done") for _, pipe in children]

        results = await _with_side_task(collect(), during, go_at)
        return _merge(list(zip(slices, results)), n)
    finally:
        for proc, pipe in children:
            pipe.close()
            await asyncio.to_thread(proc.join, 5)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join)
            proc.close()


async def _with_side_task(main: Awaitable[T], during: Callable[[float], Awaitable[object]] | None,
                             go_at: float) -> T:
    if during is None:
        return await main
    side = asyncio.ensure_future(during(go_at))
    try:
        return await main
    finally:
        if not side.done():
            side.cancel()
        try:
            await side
        except asyncio.CancelledError:
            pass


async def _recv(pipe: multiprocessing.connection.Connection,
                timeout_s: float) -> tuple[object, ...]:
    ready = await asyncio.to_thread(pipe.poll, timeout_s)
    if not ready:
        raise TimeoutError(f"a client process said nothing for {timeout_s:.0f} s")
    try:
        message = pipe.recv()
    except EOFError:
        raise RuntimeError("a client process died") from None
    assert isinstance(message, tuple)
    return message


def _expect(message: tuple[object, ...], kind: str) -> Any:
    """The payload of a `kind` message (unpickled from the child: the caller knows its type)."""
    if message[0] == "error":
        raise RuntimeError(f"a client process failed: {message[1]}")
    if message[0] != kind:
        raise RuntimeError(f"a client process said {message[0]!r}, expected {kind!r}")
    return message[1] if len(message) > 1 else None
