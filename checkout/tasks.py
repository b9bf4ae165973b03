"""Stopping background tasks for sure.

On Python 3.11 a cancel that lands just as an `asyncio.wait_for` completes is swallowed
(fixed in 3.12), and redis-py wraps socket writes in `wait_for`: a loop cancelled once can
keep running. So we cancel until the task is really done.
"""

from __future__ import annotations

import asyncio

__all__ = ["stop_task"]


async def stop_task(task: asyncio.Task[object] | None, *, poll_s: float = 0.1) -> None:
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=poll_s)
    if not task.cancelled() and task.exception() is not None:
        pass  # a loop that died on its own already logged why
