"""Serving the overlay's pages (overlay/pages.py renders them) and their static files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from checkout.ids import is_valid_id
from live.web.card_form import CARD_FORM_PAGES, card_form_origins
from live.web.deps import services_of
from live.web.problems import Problem
from overlay.pages import PAGES, PATHS, content_security_policy, render, static_dir

__all__ = ["overlay_routes", "page_response"]


def _ws_base(request: Request) -> str:
    """Where the page opens its sockets: the configured public hub URL (one balancer port
    in front of many nodes), else this host on the hub's own port."""
    services = services_of(request)
    if services.settings.public_ws_url:
        return services.settings.public_ws_url.rstrip("/")
    port = services.hub_port or services.settings.hub_port
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.hostname}:{port}"


def page_response(request: Request, name: str, target: str, *, title: str | None = None,
                  parts: Mapping[str, str] | None = None) -> Response:
    """Page `name` with the headers every page has (CSP, no referrer, not cached)."""
    ws = _ws_base(request)
    origins = card_form_origins(services_of(request).settings) if name in CARD_FORM_PAGES else ()
    return HTMLResponse(render(name, target, ws, title=title, parts=parts), headers={
        "Content-Security-Policy": content_security_policy(ws, origins),
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


def _page_endpoint(name: str) -> Callable[[Request], Awaitable[Response]]:
    param, _ = PAGES[name]

    async def endpoint(request: Request) -> Response:
        target = request.path_params[param] if param else ""
        if param and not is_valid_id(target):
            raise Problem(404, "not-found", f"no such {param}")
        return page_response(request, name, target)

    endpoint.__name__ = f"{name}_page"
    return endpoint


def overlay_routes() -> list[Route | Mount]:
    pages: list[Route | Mount] = [Route(path, _page_endpoint(name), methods=["GET"])
                                  for name, path in PATHS.items()]
    return [*pages, Mount("/static", app=StaticFiles(directory=static_dir()), name="static")]
