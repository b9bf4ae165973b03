"""The HTTP server: uvicorn configured from the settings, plus the read limits it lacks.

uvicorn bounds the idle time between two requests (`timeout_keep_alive`) and the number of
connections (`limit_concurrency`, a 503 past it), but not the time a client takes to send a
request: a connection that sends half its headers and stops, or a body that never
completes, is held forever, and httptools takes headers of any size. `ReadLimitProtocol`
adds, per connection:

- a header deadline, from the connection's opening (or, kept alive, its next request's first
  byte) to the end of the headers: 408 problem, then close. Dripping bytes does not extend it.
- a body deadline, from the end of the headers to the end of the body: the connection is
  closed (the handler reading it sees the client gone).
- a cap on the request line and headers: 431 problem, then close.

A request that arrives in one read (nearly all of them) arms no timer at all. This is the
one module that touches uvicorn's HttpToolsProtocol internals (its parser callbacks, `cycle`,
`server_state`); `check_uvicorn()` verifies at start that they are still there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from live.web.problems import Problem, problem_body
from live.settings import Settings

__all__ = ["HttpLimits", "ReadLimitProtocol", "check_uvicorn", "server_config"]

log = logging.getLogger(__name__)

_Phase = Literal["headers", "body", "idle"]

# What ReadLimitProtocol overrides or reads; a uvicorn that renamed them would silently
# leave requests unbounded, so the start refuses instead.
_HOOKS: Final = ("connection_made", "connection_lost", "data_received", "on_message_begin",
                 "on_headers_complete", "on_message_complete", "handle_websocket_upgrade")
_STATE: Final = ("cycle", "transport", "loop", "server_state")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_header_bytes: int


class ReadLimitProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body deadlines and a header size cap."""

    def __init__(self, *args: Any, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._phase: _Phase = "idle"
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._requests = 0  # requests begun on this connection

    # -- asyncio protocol --------------------------------------------------------------

    # uvicorn's own signature, which narrows asyncio.Protocol's BaseTransport (and ignores
    # the override error the same way).
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers")  # a new connection owes us a request, even before its first byte

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = (self._phase, self._requests)
        super().data_received(data)
        if self.transport.is_closing() or self._phase == "idle":
            return
        # A read that began between requests or inside this request's headers, and ended
        # inside them, is all header bytes (a pipelined request is counted from its next read).
        if self._phase == "headers" and before in (("idle", self._requests - 1),
                                                   ("headers", self._requests)):
            self._header_bytes += len(data)
            if self._header_bytes > self._limits.max_header_bytes:
                self._refuse(431, "headers-too-large",
                             f"request line and headers exceed {self._limits.max_header_bytes} bytes")
                return
        if self._deadline is None:
            self._arm(self._phase)

    # -- httptools parser callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._header_bytes = "headers", 0
        self._requests += 1

    def on_headers_complete(self) -> None:
        self._disarm()
        self._phase = "body"
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._phase = "idle"
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        self._phase = "idle"  # the connection belongs to the WebSocket protocol now
        super().handle_websocket_upgrade()

    # -- deadlines ---------------------------------------------------------------------

    def _arm(self, phase: _Phase) -> None:
        if phase == "headers":
            self._deadline = self.loop.call_later(self._limits.header_timeout_s, self._late_headers)
        else:
            self._deadline = self.loop.call_later(self._limits.body_timeout_s, self._late_body)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late_headers(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._refuse(408, "request-timeout", "the request headers did not arrive within "
                         f"{self._limits.header_timeout_s:g} s")

    def _late_body(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("request body from %s not complete within %g s; closing",
                      self.client, self._limits.body_timeout_s)
            self._phase = "idle"
            self.transport.close()

    def _refuse(self, status: int, kind: str, detail: str) -> None:
        """Answer with a problem and close; with an earlier response still going out, close."""
        self._disarm()
        self._phase = "idle"
        if self.cycle is None or self.cycle.response_complete:
            body = orjson.dumps(problem_body(Problem(status, kind, detail)))
            head = [STATUS_LINE[status]]
            head += [b"%s: %s\r\n" % pair for pair in self.server_state.default_headers]
            head += [b"content-type: application/problem+json\r\n",
                     b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n"]
            self.transport.write(b"".join(head) + body)
        self.transport.close()


def check_uvicorn() -> None:
    """Refuse to start on a uvicorn whose HttpToolsProtocol no longer has what we hook."""
    missing = [name for name in _HOOKS if not callable(getattr(HttpToolsProtocol, name, None))]
    init = HttpToolsProtocol.__init__.__code__.co_names
    missing += [name for name in _STATE if name not in init]
    if missing:
        raise RuntimeError(f"uvicorn {uvicorn.__version__}: HttpToolsProtocol lacks "
                           f"{', '.join(missing)}; livecart's request deadlines need them")


def server_config(app: Any, settings: Settings, *, host: str, port: int,
                  **options: Any) -> uvicorn.Config:
    """The uvicorn config every livecart HTTP server runs with; `options` go to uvicorn
    (log_level, access_log, lifespan)."""
    check_uvicorn()
    limits = HttpLimits(settings.http_header_timeout_s, settings.http_body_timeout_s,
                        settings.http_max_header_bytes)
    # uvicorn types `http` as a protocol class and the keep-alive as int, but only calls the
    # former and hands the latter to loop.call_later: a factory and a float work as they are.
    return uvicorn.Config(
        app, host=host, port=port, loop="uvloop",
        http=functools.partial(ReadLimitProtocol, limits=limits),  # type: ignore[arg-type]
        timeout_keep_alive=settings.http_keep_alive_s,  # type: ignore[arg-type]
        # uvicorn counts the asking connection itself: +1 lets exactly the cap through.
        limit_concurrency=settings.http_max_connections + 1,
        # Behind HAProxy (deploy/haproxy.cfg): the client's address from X-Forwarded-For,
        # only when the connection comes from one of these.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.forwarded_allow_ips) or None,
        server_header=False, **options)
