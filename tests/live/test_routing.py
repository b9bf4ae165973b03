"""The indexed router (live/web/routing.py) picks the route starlette's own loop would: for
every route of the node's app, a path it takes (and that path with a slash more or less, in
another case, one segment longer or shorter), each method, and paths no route takes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conftest import TEST_SECRET
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute

from live.node.app import create_app
from live.settings import Settings
from live.web.routing import IndexedRouter

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-zA-Z_]+)?}")
_SAMPLE = {None: "s_0123456789ab", ":int": "12", ":float": "1.5", ":path": "a/b/c.txt",
           ":uuid": "123e4567-e89b-12d3-a456-426614174000"}


def _first(routes: list[BaseRoute], scope: dict[str, Any]) -> tuple[Any, Any]:
    """starlette's rule: the first full match, else the first partial one (405)."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route, Match.FULL
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial, Match.PARTIAL if partial is not None else None


def _paths(routes: list[BaseRoute]) -> set[str]:
    out = {"/", "", "/nowhere", "/api", "/api/v1", "/api/v1/", "/api/v1/x/y/z", "//api/v1",
           "/api//v1/streams", "/static/../etc"}
    for route in routes:
        if not isinstance(route, (Route, WebSocketRoute)):
            continue
        path = _PARAM.sub(lambda m: _SAMPLE.get(m.group(2), "x"), route.path)
        out |= {path, path + "/", path.rstrip("/"), path.upper(), path + "/more",
                path.rsplit("/", 1)[0], path.replace("/api/v1/", "/api/v2/")}
    return out


def test_indexed_router_picks_starlettes_route(tmp_path: Path) -> None:
    app = create_app(Settings(jwt_secret=TEST_SECRET, data_dir=tmp_path))
    router = app.router
    assert isinstance(router, IndexedRouter)
    routes = router.routes
    assert len(routes) > 50
    checked = 0
    for path in sorted(_paths(routes)):
        candidates = router.candidates(path)
        assert len(candidates) <= len(routes)
        for kind, methods in (("http", ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")),
                              ("websocket", ("GET",))):
            for method in methods:
                scope = {"type": kind, "path": path, "root_path": "", "method": method}
                assert _first(candidates, scope) == _first(routes, scope), (kind, method, path)
                checked += 1
    assert checked > 1000
    # the bid's path tries a handful of routes, not all of them
    assert len(router.candidates("/api/v1/streams/s_1/auctions/a_0123456789ab/bids")) < 20
