"""The counting WHEP viewers of the video test, spread over client processes.

Decoding 640x360 at 30 fps costs a load generator more than the server spends on a viewer,
and both share this machine's cores, so these viewers do not decode: each counts the frames
that arrive complete (`watch(decode=False)`), and the video test decodes only a small sample
itself. A client process holds up to `per_process` viewers; `CountingFleet` spawns another
when one is full, and every process answers the same few commands over a pipe
(`_Viewers.handle`), exiting when told, when the pipe closes, or after `_LIFETIME_S`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import time
from dataclasses import dataclass
from typing import Any, Self

import httpx

from live.video.compat import restrict_ice_hosts
from loadtest.child_procs import answer, run_child, stop_children
from loadtest.webrtc_peers import Viewer, watch

__all__ = ["CountingFleet", "arrivals"]

log = logging.getLogger(__name__)

_PIPE_POLL_S = 1.0
_LIFETIME_S = 3600.0
_CONNECT_CONCURRENCY = 4  # WHEP offers in flight per process: each one gathers and handshakes
_ERRORS_KEPT = 3


@dataclass(eq=False)
class _Child:
    proc: multiprocessing.process.BaseProcess
    pipe: multiprocessing.connection.Connection
    viewers: int = 0  # asked for, connected or not


class CountingFleet:
    """Client processes holding counting viewers; `async with` ends them all."""

    def __init__(self, url: str, stream: str, per_process: int) -> None:
        self.url, self.stream, self.per_process = url, stream, per_process
        self._children: list[_Child] = []

    @property
    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children if c.proc.pid is not None]

    @property
    def viewers(self) -> int:
        return sum(c.viewers for c in self._children)

    async def add(self, count: int, timeout_s: float) -> dict[str, Any]:
        """Open `count` more viewers, filling the processes in order; returns how many came
        up and the first errors of those that did not."""
        plan: list[tuple[_Child, int]] = []
        for child in self._children:
            take = min(count, self.per_process - child.viewers)
            if take > 0:
                plan.append((child, take))
                count -= take
        while count > 0:
            take = min(count, self.per_process)
            plan.append((self._spawn(), take))
            count -= take
        for child, take in plan:
            child.viewers += take
        answers = await asyncio.gather(*(
            self._call(child, "add", {"url": self.url, "stream": self.stream, "count": take,
                                      "timeout_s": timeout_s}, timeout_s + 60)
            for child, take in plan))
        errors = [e for a in answers for e in a["errors"]]
        return {"ready": sum(a["ready"] for a in answers), "errors": errors[:_ERRORS_KEPT]}

    async def counts(self) -> list[dict[str, Any]]:
        """`arrivals` of each process's viewers."""
        return list(await asyncio.gather(*(self._call(c, "counts", {}, 30)
                                           for c in self._children)))

    async def close_viewers(self) -> None:
        """End every viewer's session (WHEP DELETE) and peer."""
        await asyncio.gather(*(self._call(c, "close", {}, 60) for c in self._children))
        for child in self._children:
            child.viewers = 0

    def _spawn(self) -> _Child:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=child_main, args=(theirs,), name="loadtest-video-viewers",
                           daemon=True)
        proc.start()
        theirs.close()
        self._children.append(_Child(proc, ours))
        return self._children[-1]

    @staticmethod
    async def _call(child: _Child, op: str, args: dict[str, Any], timeout_s: float) -> Any:
        child.pipe.send((op, args))
        return await answer(child.pipe, timeout_s, f"viewer process {child.proc.pid}")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        children, self._children = self._children, []
        await stop_children([(c.proc, c.pipe) for c in children], 30)


def arrivals(viewers: list[Viewer]) -> dict[str, Any]:
    """When (CLOCK_MONOTONIC, one clock for every process here), and the complete frames and
    payload bytes each viewer has received so far."""
    return {"at": time.monotonic(), "frames": [v.arrived for v in viewers],
            "bytes": [v.payload_bytes for v in viewers]}


class _Viewers:
    """One client process's viewers (all of one stream on one node)."""

    def __init__(self) -> None:
        self.http: httpx.AsyncClient | None = None
        self.viewers: list[Viewer] = []

    async def add(self, url: str, stream: str, count: int, timeout_s: float) -> dict[str, Any]:
        if self.http is None:
            self.http = httpx.AsyncClient(base_url=url, timeout=30)
        http = self.http
        before = len(self.viewers)
        errors: list[str] = []
        gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)

        async def one() -> None:
            async with gate:
                try:
                    self.viewers.append(await watch(http, stream, audio=False, decode=False))
                except Exception as exc:  # counted and reported, not fatal
                    errors.append(f"{type(exc).__name__}: {exc}")

        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(one() for _ in range(count)))
        except TimeoutError:
            errors.append(f"not every viewer connected within {timeout_s:.0f} s")
        return {"ready": len(self.viewers) - before, "errors": errors[:_ERRORS_KEPT]}

    def counts(self) -> dict[str, Any]:
        return arrivals(self.viewers)

    async def close(self) -> None:
        viewers, self.viewers = self.viewers, []

        # stop() closes the peer even when the node is gone already.
        await asyncio.gather(*(v.stop() for v in viewers), return_exceptions=True)

    async def handle(self, op: str, args: dict[str, Any]) -> Any:
        match op:
            case "add":
                return await self.add(args["url"], args["stream"], args["count"],
                                      args["timeout_s"])
            case "counts":
                return self.counts()
            case "close":
                await self.close()
                return None
        raise ValueError(f"unknown command {op!r}")


async def _main(pipe: multiprocessing.connection.Connection) -> None:
    restrict_ice_hosts(("127.0.0.1",))
    viewers = _Viewers()
    deadline = time.monotonic() + _LIFETIME_S
    try:
        while time.monotonic() < deadline:
            if not await asyncio.to_thread(pipe.poll, _PIPE_POLL_S):
                continue
            try:
                op, args = pipe.recv()
            except EOFError:  # the parent is gone
                return
            if op == "exit":
                return
            pipe.send(("ok", await viewers.handle(op, args)))
        log.warning("video viewer process lifetime over; exiting")
    finally:
        await viewers.close()
        if viewers.http is not None:
            await viewers.http.aclose()


def child_main(pipe: multiprocessing.connection.Connection) -> None:
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_child(pipe, lambda: _main(pipe))
