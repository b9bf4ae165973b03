"""The hub in its own process, so that HTTP requests (buys, pins) never queue behind fan-out.

One event loop did both: writing a tick to 10,000 sockets held the loop that answers
buys, and a buy's p99 went to seconds (BENCHMARKS.md "A faster buy"). `livecart serve`
therefore starts the hub (`HubServer`, its rooms, ticks, pub/sub) in a child process
with its own loop, Valkey clients and `Services`; the HTTP API keeps the parent's. They
share nothing in memory: the hub gets every event through Valkey pub/sub and the stream
log, as a hub on another node does. The parent's own `Hub` stays, idle unless the video
taps a room (live/video/service.py: its data channels hear a room in-process).

The parent watches the child: while it is down /readyz answers 503, and it is started
again after `hub_restart_s` on the same port (sockets reconnect and resume from their
last seq). The child stops when asked (a GOING_AWAY to each socket first), on SIGTERM,
and when the parent is gone (the end of the pipe between them closes); it ignores SIGINT,
which a terminal sends to both, so that the parent orders the stop.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from multiprocessing.process import BaseProcess
from typing import Final

from prometheus_client import Counter

from checkout.tasks import stop_task
from live.node.services import Services, freeze_heap
from live.settings import Settings

__all__ = ["HubProcess", "open_hub", "run_hub"]

log = logging.getLogger(__name__)

_STOP_GRACE_S: Final = 10.0  # the child's close, once told to stop or orphaned
_START_TIMEOUT_S: Final = 60.0  # spawn, imports, Services.start, the port open
_STOP_TIMEOUT_S: Final = 15.0  # the hub's GOING_AWAY round (5 s) and its close; then SIGTERM
_KILL_AFTER_S: Final = 5.0  # SIGTERM not obeyed by then: SIGKILL


class HubProcess:
    """Starts the hub's process, restarts it when it dies, stops it."""

    def __init__(self, settings: Settings, *, port: int, origins: tuple[str, ...],
                 restarts: Counter | None = None) -> None:
        self.settings = settings
        self.port = port  # the requested port until the first start, then the bound one
        self.origins = origins
        self.restarts = 0
        self._restarts_metric = restarts
        self._context = multiprocessing.get_context("spawn")
        self._proc: BaseProcess | None = None
        self._pipe: multiprocessing.connection.Connection | None = None
        self._up = False
        self._watch: asyncio.Task[None] | None = None

    @classmethod
    def for_node(cls, services: Services) -> "HubProcess":
        """The hub of this node: the node's settings, with its Valkey (embedded or not)."""
        s = services.settings
        url = services.valkey.url if services.valkey is not None else s.redis_url
        restarts = Counter("livecart_hub_restarts", "Hub processes started again after dying",
                           registry=services.metrics.registry)
        return cls(s.with_(redis_url=url), port=s.hub_port, origins=s.origins(),
                   restarts=restarts)

    @property
    def up(self) -> bool:
        """A hub process is running and has said its port is open."""
        return self._up and self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> int:
        """Start the hub and watch it; returns its bound port. Raises RuntimeError if it
        does not come up."""
        await self._spawn()
        self._watch = asyncio.create_task(self._watch_loop(), name="hub-process-watch")
        return self.port

    async def _spawn(self) -> None:
        parent_end, child_end = self._context.Pipe()
        proc = self._context.Process(target=run_hub, name="livecart-hub", daemon=True,
                                     args=(self.settings, self.port, self.origins, child_end))
        proc.start()
        child_end.close()  # the child's copy is its own: its exit is this end's EOF
        self._proc, self._pipe = proc, parent_end
        try:
            if not await _readable(parent_end.fileno(), _START_TIMEOUT_S):
                raise RuntimeError(f"the hub process did not open its port within "
                                   f"{_START_TIMEOUT_S:g} s")
            try:
                kind, port = parent_end.recv()
            except EOFError:
                await _readable(proc.sentinel, _KILL_AFTER_S)
                raise RuntimeError(f"the hub process exited (code {proc.exitcode}) before its "
                                   f"port was open; its log says why") from None
        except BaseException:
            await self._reap()
            raise
        assert kind == "ready", kind
        self.port, self._up = port, True
        log.info("hub process pid %d on port %d", proc.pid, port)

    async def _watch_loop(self) -> None:
        """Notice a dead hub at once (its sentinel), mark the node not ready, start it again."""
        while True:
            proc = self._proc
            if proc is not None:
                await _readable(proc.sentinel, None)
                proc.join()  # gone already: this reaps it, and sets its exit code
                log.error("the hub process (pid %s) exited with code %s; starting it again "
                          "in %g s", proc.pid, proc.exitcode, self.settings.hub_restart_s)
                await self._reap()
            await asyncio.sleep(self.settings.hub_restart_s)
            try:
                await self._spawn()
            except RuntimeError as exc:
                log.error("the hub process did not start again: %s", exc)
                continue
            self.restarts += 1
            if self._restarts_metric is not None:
                self._restarts_metric.inc()

    async def stop(self) -> None:
        """Stop watching, then stop the hub: asked first, then SIGTERM, then SIGKILL."""
        await stop_task(self._watch)
        self._watch = None
        await self._reap()

    async def _reap(self) -> None:
        proc, pipe = self._proc, self._pipe
        self._proc, self._pipe, self._up = None, None, False
        if proc is None or pipe is None:
            return
        try:
            if proc.is_alive():
                try:
                    pipe.send(("stop", None))
                except OSError:
                    pass  # it is exiting already
                if not await _readable(proc.sentinel, _STOP_TIMEOUT_S):
                    log.warning("the hub process (pid %s) did not stop in %g s; terminating",
                                proc.pid, _STOP_TIMEOUT_S)
                    proc.terminate()
                    if not await _readable(proc.sentinel, _KILL_AFTER_S):
                        proc.kill()
            proc.join()
            proc.close()
        finally:
            pipe.close()


async def _readable(fd: int, timeout_s: float | None) -> bool:
    """Wait for `fd` to be readable (a pipe with data or closed, a process sentinel)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        async with asyncio.timeout(timeout_s):
            await ready
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


async def open_hub(services: Services) -> tuple[int, HubProcess | None]:
    """The node's hub as `hub_mode` says: its bound port, and its process if it has one."""
    s = services.settings
    if s.hub_mode == "inline":
        return await services.start_hub_server(s.host, s.hub_port), None
    hub = HubProcess.for_node(services)
    port = await hub.start()
    services.hub_port = port  # the pages tell browsers this port (live/web/overlay_pages.py)
    return port, hub


# -- the child -------------------------------------------------------------------------

def run_hub(settings: Settings, port: int, origins: tuple[str, ...],
            pipe: multiprocessing.connection.Connection) -> None:
    """The hub process's main: serve sockets until the parent says stop or is gone."""
    import uvloop

    from live.accounts.auth import install_token_redaction

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent orders the stop
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s hub %(name)s: %(message)s")
    install_token_redaction([logging.getLogger(n) for n in ("", "livecart.ws")])
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_hub(settings, port, origins, pipe))


async def _serve_hub(settings: Settings, port: int, origins: tuple[str, ...],
                     pipe: multiprocessing.connection.Connection) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(pipe.fileno(), stop.set)  # "stop", or EOF: the parent is gone
    # Only the hub's loops: the aggregator, sweeper, dispatcher and video run in the parent.
    services = await Services.start(settings, background=False)
    try:
        services.hub.start()
        bound = await services.start_hub_server(settings.host, port, origins)
        freeze_heap()
        pipe.send(("ready", bound))
        await stop.wait()
        # However the close below goes (a Valkey gone with the parent, a socket that will
        # not close), the hub is gone in _STOP_GRACE_S: orphaned hub processes of killed
        # nodes were found alive, spinning, half an hour on.
        deadline = threading.Timer(_STOP_GRACE_S, os._exit, args=(1,))
        deadline.daemon = True  # a clean exit before it does not wait for it
        deadline.start()
    finally:
        loop.remove_reader(pipe.fileno())
        await services.close()
