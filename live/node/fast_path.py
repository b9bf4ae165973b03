"""The node's app with a short way in for its hottest route: POST /api/v1/buy.

Under a flash sale 19 of 20 answers are sold-out refusals, each bound by the server's one
thread, and ~18 % of its CPU went to starlette and the metrics middleware around a handler
that does the real work itself (BENCHMARKS.md, "2026-12-01 evening (branch fastbuy)"):
`Starlette.__call__`, the server-error, metrics, unhandled-error and exception middlewares
(each with a `send` wrapper), the router and the route's own exception wrapper. A request
whose path and method name a *fast route* skips all of that and is served here by the same
endpoint function (`Api.routes`: auth, parameters, the body's limits and validation, the handler),
with the same answers around it, taken from the same places:

- a `Refused` (problem+json), an HTTPException, a Valkey outage: the app's own exception
  handlers (`Starlette.exception_handlers`, looked up by the exception's class as starlette
  does);
- anything else: `unhandled_error`, the one 500 answer and log line of the slow path;
- the client gone mid-request: nothing sent, logged at debug, as on the slow path;
- the request counted and timed by `Metrics.observe` under the route's template.

Everything else (another method on that path, any other path, before the lifespan made the
services, a `root_path`) goes through starlette unchanged.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from live.web.problems import Problem

__all__ = ["FastPathApp", "unhandled_error"]

log = logging.getLogger(__name__)


def unhandled_error(scope: Scope) -> Response:
    """The 500 problem for an error no handler took, logged here once (with its trace)."""
    log.exception("unhandled error on %s %s", scope["method"], scope["path"])
    return Problem(500, "internal-error", "something went wrong on our side").as_response()


class FastPathApp(Starlette):
    """starlette's app, except that the `fast` routes (exact paths, no path parameters) are
    served without the middleware stack and the router (see the module docstring)."""

    def __init__(self, *args: Any, fast: Iterable[Route] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast: dict[str, Route] = {}
        for route in fast:
            if route.param_convertors:
                raise ValueError(f"{route.path}: a fast route has no path parameters")
            self._fast[route.path] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self._fast.get(scope["path"])
            services = getattr(self.state, "services", None)
            if (route is not None and route.methods is not None
                    and scope["method"] in route.methods and services is not None
                    and not scope.get("root_path")):
                await self._serve(route, services.metrics, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _serve(self, route: Route, metrics: Any, scope: Scope, receive: Receive,
                     send: Send) -> None:
        # What starlette's app and router put in the scope, for whatever reads it.
        scope["app"] = self
        scope["router"] = self.router
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        start = time.perf_counter()
        status = 500  # what the metrics say when no answer went out (the client left)
        try:
            request = Request(scope, receive)
            try:
                response = await route.endpoint(request)
            except ClientDisconnect:
                log.debug("client gone during %s %s", scope["method"], scope["path"])
                return
            except Exception as exc:
                response = await self._handled(request, exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            metrics.observe(scope["method"], route.path, status, time.perf_counter() - start)

    async def _handled(self, request: Request, exc: Exception) -> Response:
        """The app's exception handler's answer (as starlette picks it: the first class of
        the exception's MRO that has one), or the unhandled-error 500."""
        for cls in type(exc).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                response = handler(request, exc)
                if inspect.isawaitable(response):
                    response = await response
                assert isinstance(response, Response)
                return response
        return unhandled_error(request.scope)
