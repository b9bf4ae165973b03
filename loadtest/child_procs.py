"""Load-generator client processes: one pipe each, a command out, one answer back
(`("ok", value)` or `("error", why)`). The parent's side: waiting for an answer and a stop
that always reaps; the child's: `run_child`, its main on uvloop, telling the parent why it
failed."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import multiprocessing.connection
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["FleetError", "answer", "stop_children", "run_child"]

Child = tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection]


class FleetError(RuntimeError):
    """A client process failed, died or did not answer in time."""


async def answer(pipe: multiprocessing.connection.Connection, timeout_s: float,
                 who: str = "a viewer process") -> Any:
    """The value a process answered with; FleetError if it failed, died or kept silent."""
    if not await _readable(pipe, timeout_s):
        raise FleetError(f"{who} said nothing for {timeout_s:.0f} s")
    try:
        kind, value = pipe.recv()
    except EOFError:
        raise FleetError(f"{who} died") from None
    if kind == "error":
        raise FleetError(f"{who} failed: {value}")
    return value


async def _readable(pipe: multiprocessing.connection.Connection, timeout_s: float) -> bool:
    """Whether the pipe has something to read within `timeout_s`, waited for on the event
    loop, not in a thread: a wait can be as long as a run, and a thread per process blocked
    in poll() takes the default executor, which aiortc encodes a publisher's camera in (it
    starved the camera of the HLS load test with 6 client processes on 2 cores)."""
    if pipe.poll():
        return True
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)
    fd = pipe.fileno()
    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(ready, timeout_s)
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)
        # uvloop's add_reader leaves the fd non-blocking: recv() of an answer larger than
        # the pipe's buffer then fails half-way with EAGAIN (BlockingIOError) instead of
        # waiting for the rest the child is still writing.
        os.set_blocking(fd, True)
    return pipe.poll()


def run_child(pipe: multiprocessing.connection.Connection,
              main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """A client process's body: `main()` on uvloop; if it fails (or cannot be made), the
    parent hears why instead of waiting for nothing; the pipe closed either way."""
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            pipe.send(("error", repr(exc)))
        raise
    finally:
        pipe.close()


async def stop_children(children: list[Child], join_s: float) -> None:
    """Ask each process to exit, wait `join_s`, kill what is left, release everything."""
    for _, pipe in children:
        with contextlib.suppress(OSError):
            pipe.send(("exit", {}))
    for proc, pipe in children:
        await asyncio.to_thread(proc.join, join_s)
        if proc.is_alive():
            proc.kill()
            await asyncio.to_thread(proc.join, 5)
        pipe.close()
        proc.close()
