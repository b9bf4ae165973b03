"""The few server-rendered pages this node has before the overlay pages land: the index
and a product page that affiliate links land on (it keeps the attribution token)."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from checkout.ids import ProductId, is_valid_id
from checkout.money import format_money
from live.web.deps import services_of
from live.web.problems import Problem

__all__ = ["page_routes"]

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
          "img{max-width:100%}code{background:#eee;padding:.1rem .3rem}")


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html lang=en><meta charset=utf-8>"
                        f"<meta name=viewport content='width=device-width,initial-scale=1'>"
                        f"<title>{escape(title)}</title><style>{_STYLE}</style><body>{body}</body></html>",
                        headers={"Content-Security-Policy": "default-src 'self'; img-src * data:; "
                                 "style-src 'unsafe-inline'"})


async def index(request: Request) -> Response:
    return _page("livecart", "<h1>livecart</h1><ul>"
                 "<li><a href=/api/v1/openapi.json>API (OpenAPI 3.1)</a></li>"
                 "<li><a href=/healthz>health</a> · <a href=/readyz>ready</a> · "
                 "<a href=/metrics>metrics</a></li></ul>")


async def product_page(request: Request) -> Response:
    services = services_of(request)
    product_id = ProductId(request.path_params["product"])
    product = await services.catalog.product(product_id) if is_valid_id(product_id) else None
    if product is None or product["status"] != "active":
        raise Problem(404, "not-found", "no such product")
    stock = await services.catalog.stock(product_id)
    left = sum(s.available for s in stock)
    image = (f"<img alt='' src='{escape(product['image_url'], quote=True)}'>"
             if product["image_url"] else "")
    return _page(product["title"], f"<h1>{escape(product['title'])}</h1>{image}"
                 f"<p>{escape(product['description'])}</p>"
                 f"<p><strong>{format_money(product['price_minor'], product['currency'])}</strong>"
                 f" · {left} left</p>"
                 f"<p>Buy with <code>POST /api/v1/buy</code> and "
                 f"<code>{{\"product_id\": \"{escape(product_id)}\"}}</code>.</p>")


async def favicon(request: Request) -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=301)


def page_routes() -> list[Route]:
    return [Route("/", index, methods=["GET"]),
            Route("/favicon.ico", favicon, methods=["GET"]),
            Route("/p/{product}", product_page, methods=["GET"])]
