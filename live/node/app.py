"""Assemble one livecart node: the HTTP API, health, metrics, and the background tasks."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checkout.store.unavailable import UNAVAILABLE
from live.web import (api_keys_api, auth_api, buy_api, card_form, catalog_api, follow_api,
                      fulfil_api, invite_api, passkey_api, program_api, report_api, show_api,
                      stream_api, stripe_api, studio_api, wallet_api, webhook_api)
from live.web import auction_api, chat_api, funnel_api, image_api
from live.web.api import Api, json_response
from live.node.fast_path import FastPathApp, unhandled_error
from live.node.metrics import MetricsMiddleware, metrics_endpoint
from live.web.account_pages import account_page_routes
from live.web.pages import page_routes
from live.web.docs_page import docs_routes
from live.web.overlay_pages import overlay_routes
from live.web.problems import Problem, install_problem_handlers
from live.web.routing import IndexedRouter
from live.web.sandbox_api import sandbox_routes
from live.node.hub_process import HubProcess
from live.node.services import Services
from live.settings import Payments, Settings
from live.video import hls_http, http as video_http, replay_api
from live.video.http import VideoServices

__all__ = ["create_app", "build_api", "build_auth_api", "openapi_document", "API_VERSION", "UnhandledErrors"]

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
# Served by FastPathApp ahead of the middleware stack: the flash sale's route.
FAST_PATHS = frozenset({"/api/v1/buy"})


def build_api(payments: Payments = "sandbox") -> Api:
    """The API of a node; one that pays through Stripe has Stripe's endpoints too."""
    api = Api("livecart", API_VERSION)
    for module in (buy_api, wallet_api, card_form, catalog_api, report_api, stream_api, show_api,
                   follow_api, video_http, hls_http, invite_api, fulfil_api, api_keys_api, program_api,
                   studio_api, webhook_api, image_api, chat_api, auction_api, replay_api):  # buy first
        module.register(api)
    funnel_api.register(api)
    if payments == "stripe":
        stripe_api.register(api)
    return api


def build_auth_api() -> Api:
    """The pages' sign-in and session endpoints, under /auth (live/web/auth_api.py), and
    their passkeys (live/web/passkey_api.py) and invitation links (live/web/invite_api.py)."""
    api = Api("livecart", API_VERSION, prefix=auth_api.AUTH_PREFIX)
    auth_api.register(api)
    passkey_api.register(api)
    invite_api.register_auth(api)
    return api


def openapi_document(settings: Settings) -> dict[str, Any]:
    """One document for /api/v1 and /auth."""
    document = build_api(settings.payments).openapi(settings)
    auth = build_auth_api().openapi(settings)
    document["paths"].update(auth["paths"])
    document["components"]["schemas"].update(auth["components"]["schemas"])
    return document


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    if services.draining:  # stopping: the balancer's check takes this node out
        return Problem(503, "draining", "this node is shutting down").as_response()
    try:
        await services.client.ping()
    except Exception as exc:  # not ready is an answer, not a crash
        return Problem(503, "not-ready", f"Valkey unreachable: {type(exc).__name__}").as_response()
    hub: HubProcess | None = request.app.state.hub_process
    if hub is not None and not hub.up:
        return Problem(503, "not-ready", "the hub process is down; it is being started "
                       "again").as_response({"Retry-After": "1"})
    return json_response({"status": "ready"})


def create_app(settings: Settings, *, services: Services | None = None,
               hub_process: HubProcess | None = None) -> Starlette:
    """An ASGI app. Without `services` it starts (and on shutdown closes) its own.
    With `hub_process` (the hub in its own process), /readyz also says whether it is up."""
    api, auth = build_api(settings.payments), build_auth_api()
    openapi = openapi_document(settings)

    async def openapi_endpoint(request: Request) -> Response:
        return json_response(openapi)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        node = services if services is not None else await Services.start(settings)
        # What the handlers read (services_of): mypy proves here that Services has it all.
        served: VideoServices = node  # a WebServices, plus the video
        app.state.services = served
        try:
            yield
        finally:
            if services is None:
                await node.close()

    api_routes = api.routes(settings)
    routes = [
        Route("/api/v1/openapi.json", openapi_endpoint, methods=["GET"]),  # before /api/v1/{x}
        *api_routes,  # the buy first: routes are tried in order (in its bucket)
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *auth.routes(settings),
        *auth_api.auth_page_routes(),
        *account_page_routes(),
        *invite_api.invite_page_routes(),
        *report_api.redirect_routes(),
        *page_routes(),
        *docs_routes(),
        *image_api.media_routes(),
        *hls_http.hls_routes(),
        *overlay_routes(),
        *sandbox_routes(),
        *(stripe_api.webhook_routes() if settings.payments == "stripe" else ()),
    ]
    # The buy is also served without the middleware and the router (live/node/fast_path.py):
    # the same endpoint, handlers, metrics and 500 as through them.
    app = FastPathApp(routes=routes, lifespan=lifespan,
                      middleware=[Middleware(MetricsMiddleware), Middleware(UnhandledErrors)],
                      fast=[r for r in api_routes if r.path in FAST_PATHS])
    app.router = IndexedRouter(routes, lifespan=lifespan)  # the same routes, tried fewer
    app.state.hub_process = hub_process
    install_problem_handlers(app)
    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, _on_valkey_unavailable)
    return app


async def _on_valkey_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("Valkey unavailable on %s %s: %s", request.method, request.url.path,
                type(exc).__name__)
    return Problem(503, "unavailable", "storage is busy or restarting; retry with the same "
                   "Idempotency-Key").as_response({"Retry-After": "1"})


class UnhandledErrors:
    """Answers an unhandled error with a 500 problem and logs it here, once.

    Not `add_exception_handler(Exception, ...)`: starlette runs that handler and then
    re-raises so that the server logs the error too, and uvicorn does ("Exception in ASGI
    application"): every error was logged twice. This middleware does not re-raise, except
    when the response had already started: then only the server can cut the connection,
    and its record is the one. A client gone mid-request is not an error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            log.debug("client gone during %s %s", scope["method"], scope["path"])
        except Exception:
            if started:
                raise
            await unhandled_error(scope)(scope, receive, send)
