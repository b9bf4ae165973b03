"""The parent's side of load-generator client processes: one pipe each, a command out, one
answer back (`("ok", value)` or `("error", why)`), and a stop that always reaps."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
from typing import Any

__all__ = ["FleetError", "answer", "stop_children"]

Child = tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection]


class FleetError(RuntimeError):
    """A client process failed, died or did not answer in time."""


async def answer(pipe: multiprocessing.connection.Connection, timeout_s: float,
                 who: str = "a viewer process") -> Any:
    """The value a process answered with; FleetError if it failed, died or kept silent."""
    if not await asyncio.to_thread(pipe.poll, timeout_s):
        raise FleetError(f"{who} said nothing for {timeout_s:.0f} s")
    try:
        kind, value = pipe.recv()
    except EOFError:
        raise FleetError(f"{who} died") from None
    if kind == "error":
        raise FleetError(f"{who} failed: {value}")
    return value


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
