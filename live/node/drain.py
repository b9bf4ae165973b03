"""Drain on SIGTERM: a node asked to stop leaves its balancer first, then sends its viewers
to another node, and only then stops serving HTTP.

The first SIGTERM (systemd's stop, `kill`): /readyz answers 503 `draining`, so HAProxy's
check takes the node out; the hub closes its listening socket (a connect is refused, HAProxy
redispatches it); after `drain_delay_s` every hub socket is closed 4011 (node going away:
the client reconnects through the balancer to another node and resumes from its last seq),
within `drain_timeout_s`; then uvicorn's own graceful shutdown of HTTP. A second SIGTERM
stops at once. SIGINT (Ctrl-C) stops at once, as before: it is a person at a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from types import FrameType

import uvicorn

from live.node.hub_process import HubProcess
from live.node.services import Services

__all__ = ["DrainingServer", "drain"]

log = logging.getLogger(__name__)


async def drain(services: Services, hub_process: HubProcess | None = None) -> None:
    """Take the node out of its balancer and move its sockets elsewhere (bounded). With the
    hub in its own process, that process is stopped after the delay: it closes every socket
    4011 on its way out (live/node/hub_process.py)."""
    settings = services.settings
    services.draining = True
    log.info("draining: /readyz says 503; hub sockets closed 4011 in %g s",
             settings.drain_delay_s)
    hub = services.hub_server
    if hub is not None:
        hub.stop_accepting()
    await asyncio.sleep(settings.drain_delay_s)
    if hub is not None:
        await hub.close(timeout_s=settings.drain_timeout_s)
    if hub_process is not None:
        await hub_process.stop()


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose first SIGTERM runs `drain` before the HTTP shutdown, and is
    not re-raised after it (uvicorn re-raises the signals it handled: a SIGTERM then killed
    the process before the services were closed)."""

    def __init__(self, config: uvicorn.Config,
                 drain: Callable[[], Coroutine[object, object, None]]) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_asked = False
        self._draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self._drain_asked and not self.should_exit:
            self._drain_asked = True  # on_tick starts it: no task from a signal handler
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_asked and self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        if self._draining is not None and self._draining.done():
            if not self._draining.cancelled() and self._draining.exception() is not None:
                log.error("drain failed", exc_info=self._draining.exception())
            self.should_exit = True
        return await super().on_tick(counter)
