"""A signed-in buyer's own pages: the wallet (`/me/wallet`), the orders (`/me/orders`) and
an order's receipt (`/me/orders/{order}`). Their scripts call the API with the page's
session; signed out, each page sends the browser to sign in and come back to it."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from checkout.ids import product_of_order
from live.web.card_form import CARD_FORM_PAGES, card_form_origins
from live.web.deps import services_of
from live.web.problems import Problem
from live.web.session_auth import session_of
from overlay.pages import content_security_policy, render

__all__ = ["account_page_routes"]


async def _page(request: Request, name: str, target: str = "") -> Response:
    if await session_of(request) is None:
        return RedirectResponse(f"/signin?next={quote(request.url.path, safe='')}", 303,
                                headers={"Cache-Control": "no-store"})
    origins = card_form_origins(services_of(request).settings) if name in CARD_FORM_PAGES else ()
    return HTMLResponse(render(name, target, ""), headers={
        "Content-Security-Policy": content_security_policy("", origins),
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


async def wallet_page(request: Request) -> Response:
    return await _page(request, "wallet")


async def orders_page(request: Request) -> Response:
    return await _page(request, "orders")


async def receipt_page(request: Request) -> Response:
    order = request.path_params["order"]
    if product_of_order(order) is None:
        raise Problem(404, "not-found", "no such order")
    return await _page(request, "receipt", order)


def account_page_routes() -> list[Route]:
    return [Route("/me/wallet", wallet_page, methods=["GET"]),
            Route("/me/orders", orders_page, methods=["GET"]),
            Route("/me/orders/{order}", receipt_page, methods=["GET"])]
