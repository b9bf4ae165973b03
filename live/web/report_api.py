"""Affiliate links, the click redirect, and the money reports (brand payouts, creator earnings)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from checkout.ids import (ID_PATTERN, BrandId, CreatorId, LinkCode, ProductId,
                          StreamId, is_valid_id)
from checkout.reconcile import reconcile
from checkout.reports import brand_report, creator_earnings, stream_stats as read_stream_stats
from checkout.models import StrictModel
from live.web.api import Api, Call, json_response
from live.web.deps import services_of
from live.accounts.auth import Role
from live.web.problems import Problem
from live.web.stream_api import can_promote

__all__ = ["register", "redirect_routes"]


class LinkIn(StrictModel):
    product_id: Annotated[ProductId, StringConstraints(pattern=ID_PATTERN)]


def register(api: Api) -> None:
    @api.endpoint("GET", "/ops/reconcile",
                  summary="Every order against the gateway, stock and totals against the orders",
                  tag="operations", roles=(Role.OPERATOR,))
    async def reconciliation(call: Call[Any]) -> Response:
        report = await reconcile(call.services.client, call.services.gateway,
                                 call.services.settings.partitions)
        return json_response(report.public())

    @api.endpoint("POST", "/links", summary="Make an affiliate link for a product", tag="affiliate",
                  body=LinkIn, roles=(Role.CREATOR,), status=201)
    async def create_link(call: Call[LinkIn]) -> Response:
        creator = CreatorId(call.need_principal().subject)
        product = await can_promote(call, creator, call.body.product_id)
        link = await call.services.links.create(creator, product["id"])
        link["url"] = f"{call.services.settings.base_url}/l/{link['code']}"
        return json_response(link, 201)

    @api.endpoint("GET", "/me/links", summary="The creator's affiliate links", tag="affiliate",
                  roles=(Role.CREATOR,))
    async def my_links(call: Call[Any]) -> Response:
        links = await call.services.links.for_creator(CreatorId(call.need_principal().subject))
        base = call.services.settings.base_url
        return json_response({"items": [{**l, "url": f"{base}/l/{l['code']}"} for l in links]})

    @api.endpoint("GET", "/brands/{brand}/report", summary="Sales, commission and payout totals",
                  tag="reports", roles=(Role.BRAND, Role.OPERATOR))
    async def get_brand_report(call: Call[Any]) -> Response:
        brand_id = await _readable_brand(call)
        return json_response(await brand_report(call.services.client, brand_id))

    @api.endpoint("GET", "/creators/{creator}/earnings", summary="Commission earned, with its ledger",
                  tag="reports", roles=(Role.CREATOR, Role.OPERATOR))
    async def get_earnings(call: Call[Any]) -> Response:
        creator = CreatorId(call.param("creator"))
        if not call.need_principal().can_act_for_creator(creator):
            raise Problem(403, "forbidden", "a creator can read only their own earnings")
        if not is_valid_id(creator):
            raise Problem(404, "not-found", "no such creator")
        return json_response(await creator_earnings(call.services.client, creator))

    @api.endpoint("GET", "/streams/{stream}/stats", summary="A stream's sales and 'just bought' ticker",
                  tag="reports")
    async def stream_stats(call: Call[Any]) -> Response:
        stream_id = StreamId(call.param("stream"))
        if not is_valid_id(stream_id):
            raise Problem(404, "not-found", "no such stream")
        return json_response(await read_stream_stats(call.services.client, stream_id))


async def _readable_brand(call: Call[Any]) -> BrandId:
    """The brand in the path, if it exists and the caller may read its money."""
    brand_id = BrandId(call.param("brand"))
    if not call.need_principal().can_act_for_brand(brand_id):
        raise Problem(403, "forbidden", "a brand can read only its own sales")
    if not is_valid_id(brand_id) or await call.services.catalog.brand(brand_id) is None:
        raise Problem(404, "not-found", "no such brand")
    return brand_id


async def follow_link(request: Request) -> Response:
    """A click: sign the attribution (last click wins) and send the buyer to the product."""
    services = services_of(request)
    code = LinkCode(request.path_params["code"])
    link = await services.links.get(code) if is_valid_id(code) else None
    if link is None:
        raise Problem(404, "not-found", "no such link")
    token = services.signer.sign(link["creator_id"], link["product_id"], code)
    response = RedirectResponse(f"/p/{link['product_id']}?attr={token}", status_code=302)
    response.set_cookie("lc_attr", token, max_age=services.signer.window_s, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


def redirect_routes() -> list[Route]:
    return [Route("/l/{code}", follow_link, methods=["GET"])]
