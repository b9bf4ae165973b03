"""The product page, which needs the product before it renders (an affiliate link lands
there: the product shows before any script runs, and an unknown one is a 404), and the
favicon. The other pages are served from their path alone (live/web/overlay_pages.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from checkout.ids import ProductId, is_valid_id
from live.web.deps import services_of
from live.web.overlay_pages import page_response
from live.web.problems import Problem
from overlay.product_page import product_parts

__all__ = ["page_routes"]


async def product_page(request: Request) -> Response:
    services = services_of(request)
    product_id = ProductId(request.path_params["product"])
    product = await services.catalog.product(product_id) if is_valid_id(product_id) else None
    if product is None or product["status"] != "active":
        raise Problem(404, "not-found", "no such product")
    stock = {s.variant: s.available for s in await services.catalog.stock(product_id)}
    brand = await services.catalog.brand(product["brand_id"])
    return page_response(request, "product", product_id, title=product["title"],
                         parts=product_parts(product, stock, brand["name"] if brand else ""))


async def favicon(request: Request) -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=301)


def page_routes() -> list[Route]:
    return [Route("/favicon.ico", favicon, methods=["GET"]),
            Route("/p/{product}", product_page, methods=["GET"])]
