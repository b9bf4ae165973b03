"""A lean HTTP/1.1 keep-alive client for load generation: one request in flight per connection.

Why not httpx: on 2 shared cores the load generator competes with the server for CPU, so the
client must cost as little as possible per request. This one pre-encodes the request bytes,
parses the reply with httptools (the parser uvicorn uses) and does nothing else: about
10-20 us of client CPU per request, several times less than httpx.

Contract:
- `HttpConnection.request(raw)` sends pre-encoded bytes and returns the `Reply` or raises
  `ConnectionFailed` (refused, reset, closed mid-reply, malformed reply) or
  `RequestTimeout`. After either error the connection is closed; `reopen()` or a new
  connection is needed. Whether the server acted on the request is unknown: retry only
  requests that are idempotent (a buy with the same Idempotency-Key is).
- `run_requests` sends a list of requests over `concurrency` connections and returns the
  replies in order (for setup and read-back, not for measurement).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import orjson

__all__ = ["ConnectionFailed", "HttpConnection", "Reply", "RequestTimeout", "encode_request",
           "run_requests", "ApiCalls", "loopback_host_port"]


class ConnectionFailed(Exception):
    """The connection could not be made, or broke before the whole reply arrived."""


class RequestTimeout(Exception):
    """No complete reply within the timeout (the connection is closed)."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    keep_alive: bool


def encode_request(method: str, path: str, host: str, headers: Mapping[str, str] | None = None,
                   body: bytes | None = None) -> bytes:
    """The request's bytes, once: the load loop then only writes them."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body is not None else head


class _Protocol(asyncio.Protocol):
    """Feeds bytes to httptools and resolves one waiter per reply."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Reply] | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A connection's transport (loop.create_connection); typeshed types every protocol's
        # connection_made with the base class.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionFailed(f"malformed reply: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionFailed(f"connection lost: {exc or 'closed by peer'}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._body = []

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Reply(self._parser.get_status_code(), b"".join(self._body),
                                    self._parser.should_keep_alive()))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class HttpConnection:
    """One keep-alive connection to host:port; `request` reconnects lazily if closed.
    A subclass may name its own `protocol_class` (e.g. one that also reads a header)."""

    protocol_class: type[_Protocol] = _Protocol

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 5.0) -> None:
        self.host = host
        self.port = port
        self._connect_timeout_s = connect_timeout_s
        self._protocol: _Protocol | None = None
        self.connects = 0

    @property
    def is_open(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    async def open(self) -> None:
        if self.is_open:
            return
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, protocol = await loop.create_connection(self.protocol_class, self.host,
                                                           self.port)
        except (OSError, TimeoutError) as exc:
            raise ConnectionFailed(f"connect to {self.host}:{self.port}: {exc!r}") from None
        self._protocol = protocol
        self.connects += 1

    async def request(self, raw: bytes, timeout_s: float) -> Reply:
        if not self.is_open:
            await self.open()
        protocol = self._protocol
        assert protocol is not None and protocol.transport is not None
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        protocol.waiter = waiter
        protocol.transport.write(raw)
        try:
            reply = await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            self.close()  # a late reply would be read as the next request's
            raise RequestTimeout(f"no reply within {timeout_s} s") from None
        except ConnectionFailed:
            self.close()
            raise
        if not reply.keep_alive:
            self.close()
        return reply

    @property
    def protocol(self) -> _Protocol | None:
        """The open connection's protocol (None when closed)."""
        return self._protocol

    def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


async def run_requests(host: str, port: int, requests: Sequence[bytes], *, concurrency: int = 32,
                       timeout_s: float = 30.0, attempts: int = 3) -> list[Reply]:
    """Send every request and return the replies in order.

    Connection failures, timeouts and 5xx replies are retried (the last reply is kept).

    Only for idempotent requests (setup, reads): a failed attempt may have been applied.
    """
    replies: list[Reply | None] = [None] * len(requests)
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        conn = HttpConnection(host, port)
        try:
            while next_index < len(requests):
                i = next_index
                next_index += 1
                for attempt in range(attempts):
                    try:
                        reply = await conn.request(requests[i], timeout_s)
                    except (ConnectionFailed, RequestTimeout):
                        if attempt == attempts - 1:
                            raise
                    else:
                        replies[i] = reply
                        if reply.status < 500:
                            break
                    await asyncio.sleep(0.05 * 2**attempt)
        finally:
            conn.close()

    async with asyncio.TaskGroup() as group:  # one failure cancels the rest
        for _ in range(max(1, min(concurrency, len(requests)))):
            group.create_task(worker())
    done = [r for r in replies if r is not None]
    assert len(done) == len(requests)
    return done


def loopback_host_port(url: str) -> tuple[str, int]:
    """Host and port of a node's http:// URL, which must be on loopback (load stays here)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"need an http:// URL, not {url!r}")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("load only on loopback: the URL must be 127.0.0.1")
    return parts.hostname, parts.port or 80


class ApiCalls:
    """The node's JSON API for a scenario's setup and checks: requests encoded once, sent
    one by one; a reply other than those expected stops the run."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def req(self, method: str, path: str, token: str | None, body: Any = None,
            headers: Mapping[str, str] | None = None) -> bytes:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        raw = None
        if body is not None:
            h["Content-Type"] = "application/json"
            raw = orjson.dumps(body)
        return encode_request(method, path, f"{self.host}:{self.port}", h, raw)

    async def one(self, raw: bytes, *ok: int) -> Any:
        """One call; its JSON body, or RuntimeError when its status is not in `ok`."""
        reply = (await run_requests(self.host, self.port, [raw], concurrency=1))[0]
        if reply.status not in ok:
            raise RuntimeError(f"call failed: {reply.status} {reply.body[:500]!r}")
        return orjson.loads(reply.body) if reply.body else None
