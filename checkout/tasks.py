"""Running background passes forever, and stopping background tasks for sure.

On Python 3.11 a cancel that lands just as an `asyncio.wait_for` completes is swallowed
(fixed in 3.12), and redis-py wraps socket writes in `wait_for`: a loop cancelled once can
keep running. So we cancel until the task is really done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["stop_task", "repeat"]


async def repeat(pass_: Callable[[], Awaitable[object]], interval_s: float,
                 log: logging.Logger, failed: str) -> None:
    """Run `pass_` every `interval_s` until cancelled; a pass that fails is logged
    (`failed`, with its traceback) and the next one tries again."""
    while True:
        try:
            await pass_()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(failed)
        await asyncio.sleep(interval_s)


async def stop_task(task: asyncio.Task[object] | None, *, poll_s: float = 0.1) -> None:
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=poll_s)
    if not task.cancelled() and task.exception() is not None:
        pass  # a loop that died on its own already logged why
