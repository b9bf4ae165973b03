"""A starlette router that tries only the routes a path can match.

starlette's Router tries every route's regex in order, per request: under a bidding war
that loop was a quarter of the node's CPU (py-spy, BENCHMARKS.md "Live auctions"), the bid's
route being one of some hundred. This one indexes the routes by their leading literal path
segments and, for routes whose parameters never span a `/`, by their number of segments; a
request tries the routes of its bucket in the original order, which hold every route that
can match it, so the first full (or partial: 405) match is the one starlette would find.
A path no route of its bucket takes goes through starlette's own loop (404, the slash
redirect), unchanged.
"""

from __future__ import annotations

from typing import Any

from starlette._utils import get_route_path
from starlette.convertors import (FloatConvertor, IntegerConvertor, StringConvertor,
                                  UUIDConvertor)
from starlette.routing import BaseRoute, Match, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send

__all__ = ["IndexedRouter"]

_DEPTH = 4  # leading segments indexed
# Convertors whose regex never matches a `/`: a route of only these has a fixed segment count
_ONE_SEGMENT = (StringConvertor, IntegerConvertor, FloatConvertor, UUIDConvertor)
_Key = tuple[int | None, tuple[str, ...]]


def _shape(route: BaseRoute) -> tuple[tuple[str, ...], int | None] | None:
    """The route's leading literal segments (at most _DEPTH) and its segment count (None:
    any); None for a route matched otherwise than by its whole path (a mount, a host)."""
    if not isinstance(route, (Route, WebSocketRoute)) or not route.path.startswith("/"):
        return None
    segments = route.path.split("/")[1:]
    literal: list[str] = []
    for segment in segments[:_DEPTH]:
        if "{" in segment:
            break
        literal.append(segment)
    fixed = all(isinstance(c, _ONE_SEGMENT) for c in route.param_convertors.values())
    return tuple(literal), (len(segments) if fixed else None)


class IndexedRouter(Router):
    """starlette's Router, but a request tries only its bucket of routes (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._indexed = -1  # how many routes the index is of
        self._prefixes: set[tuple[str, ...]] = set()
        self._counts: set[int] = set()
        self._buckets: dict[_Key, list[BaseRoute]] = {}

    def _index(self) -> None:
        shapes = [(route, _shape(route)) for route in self.routes]
        self._prefixes = {()} | {lit[:i] for _, s in shapes if s is not None
                                 for lit in (s[0],) for i in range(len(lit) + 1)}
        self._counts = {s[1] for _, s in shapes if s is not None and s[1] is not None}
        self._buckets = {}
        for count in (*self._counts, None):
            for prefix in self._prefixes:
                self._buckets[(count, prefix)] = [
                    route for route, s in shapes
                    if s is None or (prefix[:len(s[0])] == s[0]
                                     and (s[1] is None or s[1] == count))]
        self._indexed = len(self.routes)

    def candidates(self, route_path: str) -> list[BaseRoute]:
        """The routes that can match this path, in order (all of them for an odd path)."""
        if self._indexed != len(self.routes):  # at the first request; again after add_route
            self._index()
        if not route_path.startswith("/"):
            return self.routes
        segments = route_path.split("/")
        count = len(segments) - 1
        head = tuple(segments[1:_DEPTH + 1])
        while head not in self._prefixes:
            head = head[:-1]
        return self._buckets[(count if count in self._counts else None, head)]

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await super().app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self
        partial = partial_scope = None
        for route in self.candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None and partial_scope is not None:
            scope["route"] = partial
            scope.update(partial_scope)
            await partial.handle(scope, receive, send)
            return
        await super().app(scope, receive, send)  # no match: starlette's 404 or redirect
