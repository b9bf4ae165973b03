"""The hub's WebSocket server: handshake checks, then a session per socket.

It runs on the `websockets` library's own server (same process and event loop as the HTTP
app, its own port), not through uvicorn's ASGI WebSocket: measured here, an idle
connection costs ~12 KiB there against 22-33 KiB under uvicorn, and a direct frame write
~9 us against 16-19 us for an ASGI send (BENCHMARKS.md). Everything is checked before the
upgrade: new sockets per address (a token bucket), path, Origin allowlist, token, role,
connection caps.
"""

from __future__ import annotations

import asyncio
import http
import ipaddress
import logging
import math
import re
import socket
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from checkout.ids import is_valid_id
from live.accounts.auth import AuthError, Principal
from live.hub.protocol import MAX_FRAME_BYTES, SUBPROTOCOLS, CloseCode, RateLimiter
from live.hub.feeds import brand_feed, creator_feed
from live.hub.handshake import HubServices, Route, WsLimits
from live.web.problems import PROBLEM_BASE
from live.hub.session import room_session

__all__ = ["HubServer", "WsLimits"]

log = logging.getLogger(__name__)

_MAX_BUCKETS = 10_000  # addresses remembered for the new-socket rate before idle ones go

_PATHS = {
    "stream": re.compile(r"^/ws/streams/([A-Za-z0-9_-]{1,64})$"),
    "brand": re.compile(r"^/ws/brands/([A-Za-z0-9_-]{1,64})/sales$"),
    "creator": re.compile(r"^/ws/creators/([A-Za-z0-9_-]{1,64})/earnings$"),
}


def _problem(status: int, kind: str, detail: str, *, retry_after_s: int | None = None) -> Response:
    body = orjson.dumps({"type": PROBLEM_BASE + kind, "title": kind.replace("-", " ").capitalize(),
                         "status": status, "detail": detail})
    headers = Headers([("Content-Type", "application/problem+json"),
                       ("Content-Length", str(len(body))), ("Connection", "close")])
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


class HubServer:
    """Accepts sockets and hands each to the session for its path."""

    def __init__(self, services: HubServices, *, allowed_origins: tuple[str, ...],
                 limits: WsLimits) -> None:
        self.services = services
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)
        self.limits = limits
        self.per_ip: Counter[str] = Counter()
        self.per_token: Counter[str] = Counter()
        self._new_per_ip: dict[str, RateLimiter] = {}
        self._forget_at = _MAX_BUCKETS
        self._server: Server | None = None
        self._proxies = [ipaddress.ip_network(p) for p in limits.trusted_proxies]
        # What each socket's handshake checks decided, for its session; weak, so a socket
        # whose opening handshake fails after the checks leaves nothing behind.
        self._routes: weakref.WeakKeyDictionary[ServerConnection, Route] = (
            weakref.WeakKeyDictionary())

    async def start(self, host: str, port: int) -> int:
        self._server = await serve(
            self._handle, host, port, process_request=self._check, compression=None,
            select_subprotocol=self._select_subprotocol, max_size=MAX_FRAME_BYTES, max_queue=16,
            ping_interval=self.limits.ping_interval_s, ping_timeout=self.limits.ping_timeout_s,
            open_timeout=self.limits.open_timeout_s,
            write_limit=self.services.hub.limits.write_limit,
            server_header=None, logger=logging.getLogger("livecart.ws"))
        return self._server.sockets[0].getsockname()[1]

    def stop_accepting(self) -> None:
        """Close the listening socket, keep the open ones: a balancer's connect is refused
        and goes to another node (HAProxy's `option redispatch`)."""
        if self._server is not None:
            self._server.server.close()

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._server is not None:
            self.stop_accepting()  # first: a client told to go must not land here again
            # Tell every client to come back (to another node) rather than a bare 1001.
            closing = [asyncio.create_task(c.close(CloseCode.GOING_AWAY, "node going away"))
                       for c in list(self._server.connections)]
            if closing:
                await asyncio.wait(closing, timeout=timeout_s)
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None

    @staticmethod
    def _select_subprotocol(connection: ServerConnection,
                            offered: Sequence[Subprotocol]) -> Subprotocol | None:
        for name in offered:
            if name in SUBPROTOCOLS:
                return name
        return None

    def origin_allowed(self, origin: str | None) -> bool:
        """No Origin: not a browser, allowed. A browser's Origin must be on the allowlist
        (by default this node's own public URL)."""
        if origin is None:
            return True
        return origin.rstrip("/") in self.allowed_origins

    def client_address(self, connection: ServerConnection, request: Request) -> str:
        """The peer's address; behind a trusted proxy, the rightmost X-Forwarded-For hop that
        is not a trusted proxy itself (the ones left of it are the client's own word)."""
        peer = str(connection.remote_address[0]) if connection.remote_address else "?"
        if not self._trusted(peer):
            return peer
        hops = [hop.strip() for value in request.headers.get_all("X-Forwarded-For")
                for hop in value.split(",")]
        for hop in reversed(hops):
            if hop and not self._trusted(hop):
                return hop
        return peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    def new_socket_allowed(self, ip: str, now: float) -> bool:
        """Takes a token from the address's bucket. Each join can cost a snapshot read and
        its sending, so an address opening sockets in a loop is held to a rate, not only to
        a count of open ones."""
        bucket = self._new_per_ip.get(ip)
        if bucket is None:
            if len(self._new_per_ip) >= self._forget_at:  # forget refilled buckets only
                self._new_per_ip = {a: b for a, b in self._new_per_ip.items() if not b.idle(now)}
                self._forget_at = max(_MAX_BUCKETS, 2 * len(self._new_per_ip))
            bucket = self._new_per_ip[ip] = RateLimiter(self.limits.new_per_ip_s,
                                                        self.limits.new_burst_per_ip, now)
        return bucket.allow(now)

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        ip = self.client_address(connection, request)
        if not self.new_socket_allowed(ip, time.monotonic()):
            return _problem(429, "too-many-new-sockets",
                            f"at most {self.limits.new_per_ip_s:g} new sockets a second per "
                            f"address (bursts of {self.limits.new_burst_per_ip})",
                            retry_after_s=math.ceil(1 / self.limits.new_per_ip_s))
        url = urlsplit(request.path)
        route_kind = target = None
        for kind, pattern in _PATHS.items():
            match = pattern.match(url.path)
            if match:
                route_kind, target = kind, match.group(1)
        if route_kind is None or target is None:
            return _problem(404, "not-found", "no such socket path")
        if not self.origin_allowed(request.headers.get("Origin")):
            return _problem(403, "origin-not-allowed", "this Origin may not open sockets here")
        query = parse_qs(url.query)
        principal = None
        token = query["access_token"][0] if "access_token" in query else None
        if token is not None:
            try:
                principal = self.services.tokens.verify(token)
            except AuthError as exc:
                return _problem(401, "unauthorized", f"token rejected: {exc.reason}")
        since = None
        if "since" in query:
            raw = query["since"][0]
            if not raw.isdigit() or len(raw) > 18:
                return _problem(400, "bad-query", "since must be a sequence number")
            since = int(raw)
        client = query.get("client", ["viewer"])[0]
        if client not in ("viewer", "obs"):
            return _problem(400, "bad-query", "client must be viewer or obs")
        refusal = self._authorize(route_kind, target, principal)
        if refusal is not None:
            return refusal
        if self.per_ip[ip] >= self.limits.max_per_ip:
            return _problem(429, "too-many-connections", "connection cap for this address")
        if principal is not None and self.per_token[principal.token_id] >= self.limits.max_per_token:
            return _problem(429, "too-many-connections", "connection cap for this token")
        self._routes[connection] = Route(route_kind, target, principal, since, ip,
                                         obs=client == "obs")
        return None

    @staticmethod
    def _authorize(kind: str, target: str, principal: Principal | None) -> Response | None:
        if kind == "stream" or not is_valid_id(target):
            return None  # anyone may watch; host commands are checked per message
        if principal is None:
            return _problem(401, "unauthorized", "this feed needs a token")
        allowed = (principal.can_act_for_brand(target) if kind == "brand"
                   else principal.can_act_for_creator(target))
        if not allowed:
            return _problem(403, "forbidden", f"this {kind}'s feed is not yours")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        route = self._routes.pop(connection)
        if self.limits.sndbuf_bytes:
            sock = connection.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.sndbuf_bytes)
        self.per_ip[route.ip] += 1
        if route.principal is not None:
            self.per_token[route.principal.token_id] += 1
        try:
            if route.kind == "stream":
                await room_session(self, connection, route)
            elif route.kind == "brand":
                await brand_feed(self, connection, route)
            else:
                await creator_feed(self, connection, route)
        except Exception:
            log.exception("socket session failed")
            await connection.close(1011, "internal error")
        finally:
            self.per_ip[route.ip] -= 1
            if self.per_ip[route.ip] <= 0:
                del self.per_ip[route.ip]
            if route.principal is not None:
                self.per_token[route.principal.token_id] -= 1
                if self.per_token[route.principal.token_id] <= 0:
                    del self.per_token[route.principal.token_id]

