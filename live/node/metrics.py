"""Prometheus metrics: one registry per app (no globals), and the ASGI middleware that
times every request by its route template, never by raw path (bounded label sets)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LabelledCounter", "Metrics", "MetricsMiddleware", "metrics_endpoint"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LabelledCounter(Counter):
    """A Counter whose `labels(...)` finds a child it already made without prometheus's
    checks, conversion and lock: a flash sale counts every one of its buys. The look-up
    is in prometheus's own table, so `remove()` and `clear()` keep working; anything else
    (keyword labels, non-string values, a new child) takes the library's path."""

    def labels(self, *labelvalues: object, **labelkwargs: object) -> "LabelledCounter":
        if labelvalues and not labelkwargs and self._labelnames and not self._labelvalues:
            children: dict[Any, Any] = self._metrics
            child = children.get(labelvalues)
            if child is not None:
                return child
        return super().labels(*labelvalues, **labelkwargs)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter("livecart_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("livecart_http_request_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=_BUCKETS, registry=self.registry)
        self.buys = LabelledCounter("livecart_buys", "Buy attempts by outcome", ["outcome"],
                            registry=self.registry)
        # (method, route, status) -> its counter and histogram: `labels()` checks, converts
        # and locks on every call, twice a request. As bounded as the label sets themselves.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request answered: counted by its route template and status, and timed."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(method, route, str(status)),
                                               self.latency.labels(method, route))
        children[0].inc()
        children[1].observe(seconds)


class MetricsMiddleware:
    """Reads the app's Metrics at call time: they are made by the lifespan, after this."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = getattr(scope["app"].state, "services", None) if "app" in scope else None
        if scope["type"] != "http" or services is None:
            await self.app(scope, receive, send)
            return
        metrics: Metrics = services.metrics
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            metrics.observe(scope["method"], getattr(route, "path", "unmatched"), status,
                            time.perf_counter() - start)


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.services.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
