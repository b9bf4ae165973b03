"""The pages people use, served by the node: viewer, host console, OBS source, brand
dashboard, creator page. Plain ES modules and CSS from overlay/static (no build step);
each page learns its hub URL and ids from <meta> tags and its token from the URL fragment
(never sent to the server, so never in a log)."""

from __future__ import annotations

from html import escape
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from checkout.ids import is_valid_id
from live.problems import Problem

__all__ = ["page_routes", "PAGES"]

# page name -> (path parameter, title)
PAGES = {
    "viewer": ("stream", "Live"),
    "host": ("stream", "Host console"),
    "obs": ("stream", "Overlay"),
    "brand": ("brand", "Brand dashboard"),
    "creator": ("creator", "Creator"),
}
_PATHS = {"viewer": "/s/{stream}", "host": "/host/{stream}", "obs": "/obs/{stream}",
          "brand": "/brand/{brand}", "creator": "/creator/{creator}"}


# What every page's <head> holds, after its viewport: filled in before title, ws and target.
_HEAD = """<meta name="livecart-ws" content="{{ws}}">
  <meta name="livecart-target" content="{{target}}">
  <title>{{title}} · livecart</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/base.css">"""


def _template(name: str) -> str:
    return resources.files("overlay").joinpath(f"templates/{name}.html").read_text("utf-8")


def _ws_base(request: Request) -> str:
    services = request.app.state.services
    port = services.hub_port or services.settings.hub_port
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.hostname}:{port}"


def _page_endpoint(name: str):  # type: ignore[no-untyped-def]
    param, title = PAGES[name]

    async def endpoint(request: Request) -> Response:
        target = request.path_params[param]
        if not is_valid_id(target):
            raise Problem(404, "not-found", f"no such {param}")
        ws = _ws_base(request)
        body = (_template(name)
                .replace("{{head}}", _HEAD)
                .replace("{{title}}", escape(title))
                .replace("{{ws}}", escape(ws, quote=True))
                .replace("{{target}}", escape(target, quote=True)))
        csp = ("default-src 'self'; img-src * data:; style-src 'self'; "
               f"connect-src 'self' {ws}; media-src 'self' blob:; base-uri 'none'; "
               "frame-ancestors *")
        return HTMLResponse(body, headers={"Content-Security-Policy": csp,
                                           "Referrer-Policy": "no-referrer",
                                           "Cache-Control": "no-store"})

    endpoint.__name__ = f"{name}_page"
    return endpoint


def page_routes() -> list[Route | Mount]:
    static = StaticFiles(directory=str(resources.files("overlay").joinpath("static")))
    return [Route(path, _page_endpoint(name), methods=["GET"]) for name, path in _PATHS.items()] + [
        Mount("/static", app=static, name="static")]
