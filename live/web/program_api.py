"""HTTP endpoints of the affiliate programs: a brand's terms and who sells for it.

Who may: a brand's admins (or its token, or an operator) change its program and decide
applications; its members read them; creators read programs, apply and read their own
applications; no brand reads another's applications. docs/affiliates.md has the rules.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints
from starlette.responses import Response

from checkout.ids import BrandId, CreatorId, ProductId
from checkout.programs import AppAction, AppState, ApplicationIn, ProductTermsIn, ProgramIn
from live.accounts.auth import Role
from live.web.api import Api, Call, Param, json_response
from live.web.catalog_api import PAGE, page_params
from live.web.problems import Problem
from live.web.team_admin import is_brand_admin

__all__ = ["register"]

STATE = Param("state", "query", Annotated[str, StringConstraints(
    pattern=r"^(pending|approved|rejected|removed)$")], default="pending")

_BRAND_READERS = (Role.BRAND, Role.CREATOR, Role.OPERATOR)
_BRAND_SIDE = (Role.BRAND, Role.OPERATOR)


async def _brand(call: Call[Any]) -> BrandId:
    """The path's brand, which must exist; a brand principal only for itself."""
    brand = BrandId(call.param("brand"))
    principal = call.need_principal()
    if principal.role is Role.BRAND and not principal.can_act_for_brand(brand):
        raise Problem(403, "forbidden", "a brand sees only its own program")
    if await call.services.catalog.brand(brand) is None:
        raise Problem(404, "not-found", f"no brand {brand}")
    return brand


async def _admin_of(call: Call[Any]) -> BrandId:
    """The path's brand, if the caller is one of its admins: a brand token (the brand's
    own key), a session of a team member who joined as admin, or an operator."""
    brand = await _brand(call)
    principal = call.need_principal()
    if principal.role is Role.BRAND and not await is_brand_admin(call):
        raise Problem(403, "forbidden", "only the brand's admins change its program")
    return brand


async def _program(call: Call[Any], brand: BrandId) -> dict[str, Any]:
    program = await call.services.programs.get(brand)
    if program is None:
        raise Problem(404, "no-program", f"brand {brand} runs no affiliate program")
    return program


async def _own_product(call: Call[Any], brand: BrandId) -> dict[str, Any]:
    product_id = ProductId(call.param("product"))
    product = await call.services.catalog.product(product_id)
    if product is None or product["brand_id"] != brand:
        raise Problem(404, "not-found", f"brand {brand} has no product {product_id}")
    return product


def register(api: Api) -> None:
    _register_programs(api)
    _register_applications(api)


def _register_programs(api: Api) -> None:
    @api.endpoint("GET", "/programs", summary="Brands' affiliate programs, newest first, with "
                  "the calling creator's application", tag="affiliate", roles=(
                      Role.CREATOR, Role.OPERATOR), params=PAGE)
    async def browse_programs(call: Call[Any]) -> Response:
        cursor, limit = page_params(call)
        items, next_cursor = await call.services.programs.browse(cursor=cursor, limit=limit)
        principal = call.need_principal()
        for item in items:
            brand = await call.services.catalog.brand(item["brand_id"])
            item["brand_name"] = brand["name"] if brand else item["brand_id"]
            item["currency"] = brand["currency"] if brand else None
            mine = (await call.services.programs.application(item["brand_id"],
                                                             CreatorId(principal.subject))
                    if principal.role is Role.CREATOR else None)
            item["my_state"] = mine["state"] if mine else AppState.NONE.value
        return json_response({"items": items, "next_cursor": next_cursor})

    @api.endpoint("GET", "/brands/{brand}/program", summary="A brand's affiliate program",
                  tag="affiliate", roles=_BRAND_READERS)
    async def get_program(call: Call[Any]) -> Response:
        brand = await _brand(call)
        program = await call.services.programs.get(brand)
        # No program is an answer, not an error: the program page starts one from here.
        return json_response({**(program or {"brand_id": brand, "default_commission_bps": None,
                                             "mode": None, "created_ms": None,
                                             "updated_ms": None, "rates": {}}),
                              "running": program is not None})

    @api.endpoint("PUT", "/brands/{brand}/program",
                  summary="Start or change the program: default commission (100-8000 bps) "
                          "and who may sell (open or by approval)", tag="affiliate",
                  body=ProgramIn, roles=_BRAND_SIDE)
    async def put_program(call: Call[ProgramIn]) -> Response:
        brand = await _admin_of(call)
        return json_response({**await call.services.programs.save(brand, call.body),
                              "running": True})

    @api.endpoint("GET", "/brands/{brand}/program/products",
                  summary="The brand's active products with their commission and deal floor",
                  tag="affiliate", roles=_BRAND_READERS, params=PAGE)
    async def program_products(call: Call[Any]) -> Response:
        brand = await _brand(call)
        program = await _program(call, brand)
        cursor, limit = page_params(call)
        products, next_cursor = await call.services.catalog.showcase(brand, cursor=cursor,
                                                                     limit=limit)
        items = [{"product_id": p["id"], "title": p["title"], "image_url": p["image_url"],
                  "price_minor": p["price_minor"], "currency": p["currency"],
                  "commission_bps": p["commission_bps"],
                  "own_commission_bps": program["rates"].get(p["id"]),
                  "deal_floor_minor": p.get("deal_floor_minor")} for p in products]
        return json_response({"items": items, "next_cursor": next_cursor})

    @api.endpoint("PUT", "/brands/{brand}/program/products/{product}",
                  summary="A product's own commission (null: the default) and the lowest "
                          "deal price a creator may set (null: no deals)", tag="affiliate",
                  body=ProductTermsIn, roles=_BRAND_SIDE)
    async def put_product_terms(call: Call[ProductTermsIn]) -> Response:
        brand = await _admin_of(call)
        await _program(call, brand)
        product = await _own_product(call, brand)
        floor = call.body.deal_floor_minor
        if floor is not None and floor >= product["price_minor"]:
            raise Problem(422, "floor-not-below-price",
                          f"a deal floor must be below the price ({product['price_minor']}); "
                          "send null to allow no deals")
        await call.services.programs.set_terms(brand, product["id"], call.body)
        fresh = await call.services.catalog.product(product["id"]) or {}
        return json_response({"product_id": product["id"],
                              "commission_bps": fresh.get("commission_bps"),
                              "own_commission_bps": call.body.commission_bps,
                              "deal_floor_minor": fresh.get("deal_floor_minor")})


def _register_applications(api: Api) -> None:
    @api.endpoint("GET", "/brands/{brand}/program/applications",
                  summary="Applications to the brand's program in one state, newest first",
                  tag="affiliate", roles=_BRAND_SIDE, params=(STATE, *PAGE))
    async def list_applications(call: Call[Any]) -> Response:
        brand = await _brand(call)
        cursor, limit = page_params(call)
        items, next_cursor = await call.services.programs.applications(
            brand, AppState(call.param(STATE.name)), cursor=cursor, limit=limit)
        return json_response({"items": items, "next_cursor": next_cursor})

    @api.endpoint("POST", "/brands/{brand}/program/applications",
                  summary="Apply to a brand's program (approved at once in an open one)",
                  tag="affiliate", body=ApplicationIn, roles=(Role.CREATOR,), status=201)
    async def apply_to_program(call: Call[ApplicationIn]) -> Response:
        brand = await _brand(call)
        creator = CreatorId(call.need_principal().subject)
        return json_response(await call.services.programs.act(
            brand, creator, AppAction.APPLY, who=f"creator:{creator}",
            message=call.body.message), 201)

    for action in (AppAction.APPROVE, AppAction.REJECT, AppAction.REMOVE):
        _register_decision(api, action)

    @api.endpoint("GET", "/me/programs",
                  summary="The calling creator's applications, newest first, with their state",
                  tag="affiliate", roles=(Role.CREATOR,), params=PAGE)
    async def my_programs(call: Call[Any]) -> Response:
        cursor, limit = page_params(call)
        items, next_cursor = await call.services.programs.for_creator(
            CreatorId(call.need_principal().subject), cursor=cursor, limit=limit)
        for item in items:
            program = await call.services.programs.get(item["brand_id"])
            item["mode"] = program["mode"] if program else None
            item["may_sell"] = item["mode"] == "open" or (
                program is not None and item["state"] == AppState.APPROVED)
        return json_response({"items": items, "next_cursor": next_cursor})


def _register_decision(api: Api, action: AppAction) -> None:
    async def handler(call: Call[Any]) -> Response:
        brand = await _admin_of(call)
        creator = CreatorId(call.param("creator"))
        principal = call.need_principal()
        return json_response(await call.services.programs.act(
            brand, creator, action, who=f"{principal.role.value}:{principal.subject}"))

    handler.__name__ = f"application_{action.value}"
    api.endpoint("POST", f"/brands/{{brand}}/program/applications/{{creator}}/{action.value}",
                 summary=f"The brand's admins {action.value} a creator's application",
                 tag="affiliate", roles=_BRAND_SIDE)(handler)
