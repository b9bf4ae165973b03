"""HTTP endpoints for brands, products, stock, invites, showcases and storefronts."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from starlette.responses import Response

from checkout.catalog import (BrandIn, ProductIn, ProductPatch, StockChange, VariantIn,
                              VariantPatch)
from checkout.ids import ID_PATTERN, BrandId, CreatorId, ProductId, VariantId, is_valid_id
from checkout.models import StrictModel
from live.web.api import Api, Call, Capped, Param, json_response
from live.accounts.auth import Role
from live.web.problems import Problem
from live.web.session_auth import session_of

__all__ = ["register", "owned_product", "page_params", "actor", "MAX_CURSOR", "LIMIT", "PAGE"]

MAX_CURSOR = 10**9
CURSOR = Param("cursor", "query", Annotated[int, Field(ge=0, le=MAX_CURSOR)], default=0)
LIMIT = Param("limit", "query", Annotated[int, Field(ge=1), Capped("page_size_max")], default=20)
PAGE = (CURSOR, LIMIT)
STATUS = Param("status", "query", Literal["active", "archived", "all"], default="active")


class InviteIn(StrictModel):
    creator_id: Annotated[CreatorId, StringConstraints(pattern=ID_PATTERN)]


async def owned_product(call: Call[Any], product_id: ProductId) -> dict[str, Any]:
    """The product, if the caller is its brand (or an operator); 404/403 otherwise."""
    product = await public_product(call, product_id, include_archived=True)
    principal = call.need_principal()
    if not principal.can_act_for_brand(product["brand_id"]):
        raise Problem(403, "forbidden", "this product belongs to another brand")
    return product


async def public_product(call: Call[Any], product_id: ProductId, *,
                         include_archived: bool = False) -> dict[str, Any]:
    product = await call.services.catalog.product(product_id) if is_valid_id(product_id) else None
    if product is None or (product["status"] != "active" and not include_archived):
        raise Problem(404, "not-found", f"no product {product_id}")
    return product


def page_params(call: Call[Any]) -> tuple[int, int]:
    """(cursor, limit) of an endpoint declared with `params=PAGE` (checked by then)."""
    return call.param(CURSOR.name), call.param(LIMIT.name)


async def actor(call: Call[Any]) -> str:
    """Who a change is audited as: the principal, and for a page session the account's
    email too (a brand's team shares the `brand:<id>` grant; the audit says which one)."""
    principal = call.need_principal()
    who = f"{principal.role}:{principal.subject}"
    if not principal.token_id.startswith("session:"):
        return who
    session = await session_of(call.request)
    account = await call.services.accounts.get(session.account_id) if session else None
    return f"{who} ({account.email})" if account else who


async def _with_stock(call: Call[Any], product: dict[str, Any]) -> dict[str, Any]:
    levels = await call.services.catalog.stock(product["id"])
    return {**product, "stock": {s.variant: s.available for s in levels}}


def _check_brand(call: Call[Any], brand_id: BrandId) -> None:
    if not call.need_principal().can_act_for_brand(brand_id):
        raise Problem(403, "forbidden", "a brand token may act only for its own brand")


def register(api: Api) -> None:
    brand_roles = (Role.BRAND, Role.OPERATOR)

    @api.endpoint("POST", "/brands", summary="Create a brand", tag="catalog", body=BrandIn,
                  roles=(Role.OPERATOR,), status=201)
    async def create_brand(call: Call[BrandIn]) -> Response:
        return json_response(await call.services.catalog.create_brand(call.body), 201)

    @api.endpoint("GET", "/brands/{brand}", summary="A brand's public profile", tag="catalog")
    async def get_brand(call: Call[Any]) -> Response:
        brand = await call.services.catalog.brand(BrandId(call.param("brand")))
        if brand is None:
            raise Problem(404, "not-found", "no such brand")
        return json_response(brand)

    @api.endpoint("GET", "/brands/{brand}/showcase", summary="A brand's active products, paginated",
                  tag="catalog", params=PAGE)
    async def showcase(call: Call[Any]) -> Response:
        brand_id = BrandId(call.param("brand"))
        if not is_valid_id(brand_id) or await call.services.catalog.brand(brand_id) is None:
            raise Problem(404, "not-found", "no such brand")
        cursor, limit = page_params(call)
        items, next_cursor = await call.services.catalog.showcase(brand_id, cursor=cursor, limit=limit)
        return json_response({"items": items, "next_cursor": next_cursor})

    @api.endpoint("POST", "/brands/{brand}/products", summary="Create a product", tag="catalog",
                  body=ProductIn, roles=brand_roles, status=201)
    async def create_product(call: Call[ProductIn]) -> Response:
        brand_id = BrandId(call.param("brand"))
        _check_brand(call, brand_id)
        product = await call.services.catalog.create_product(brand_id, call.body,
                                                             who=await actor(call))
        if await call.services.programs.get(brand_id) is not None:  # the program's terms
            await call.services.programs.sync_product(brand_id, product["id"])
            product = await call.services.catalog.product(product["id"]) or product
        return json_response(product, 201)

    @api.endpoint("GET", "/brands/{brand}/products",
                  summary="The brand's own products (active, archived or all), newest first, "
                          "with stock per variant, paginated", tag="catalog", roles=brand_roles,
                  params=(*PAGE, STATUS))
    async def brand_products(call: Call[Any]) -> Response:
        brand_id = BrandId(call.param("brand"))
        _check_brand(call, brand_id)
        if await call.services.catalog.brand(brand_id) is None:
            raise Problem(404, "not-found", "no such brand")
        cursor, limit = page_params(call)
        items, next_cursor = await call.services.catalog.brand_products(
            brand_id, call.param(STATUS.name), cursor=cursor, limit=limit)
        items = list(await asyncio.gather(*(_with_stock(call, p) for p in items)))
        return json_response({"items": items, "next_cursor": next_cursor})

    @api.endpoint("GET", "/brands/{brand}/products/{product}",
                  summary="One of the brand's own products, archived or not, with its stock "
                          "levels per variant", tag="catalog", roles=brand_roles)
    async def brand_product(call: Call[Any]) -> Response:
        brand_id = BrandId(call.param("brand"))
        _check_brand(call, brand_id)
        product = await public_product(call, ProductId(call.param("product")),
                                       include_archived=True)
        if product["brand_id"] != brand_id:  # as unknown as a product that does not exist
            raise Problem(404, "not-found", f"no product {product['id']}")
        levels = await call.services.catalog.stock(product["id"])
        return json_response({**product, "stock": {s.variant: s.available for s in levels},
                              "stock_levels": [
                                  {"variant": s.variant, "available": s.available,
                                   "held": s.held, "sold": s.sold, "total": s.total}
                                  for s in levels]})

    @api.endpoint("GET", "/products/{product}", summary="A product with live stock", tag="catalog")
    async def get_product(call: Call[Any]) -> Response:
        product = await public_product(call, ProductId(call.param("product")))
        stock = await call.services.catalog.stock(product["id"])
        product["stock"] = {s.variant: s.available for s in stock}
        return json_response(product)

    @api.endpoint("PATCH", "/products/{product}", summary="Update a product", tag="catalog",
                  body=ProductPatch, roles=brand_roles)
    async def update_product(call: Call[ProductPatch]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        if (call.body.model_fields_set & {"commission_bps", "commission_mode", "deal_floor_minor"}
                and await call.services.programs.get(product["brand_id"]) is not None):
            raise Problem(409, "program-sets-terms", "the brand's affiliate program sets this "
                          f"product's commission and deal floor: PUT /brands/{product['brand_id']}"
                          f"/program/products/{product['id']}")
        return json_response(await call.services.catalog.update_product(product["id"], call.body))

    @api.endpoint("POST", "/products/{product}/archive", summary="Archive a product (no more sales)",
                  tag="catalog", roles=brand_roles)
    async def archive_product(call: Call[Any]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        return json_response(await call.services.catalog.set_status(product["id"], "archived"))

    @api.endpoint("POST", "/products/{product}/unarchive",
                  summary="Put an archived product back on sale", tag="catalog", roles=brand_roles)
    async def unarchive_product(call: Call[Any]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        return json_response(await call.services.catalog.set_status(product["id"], "active"))

    @api.endpoint("POST", "/products/{product}/variants",
                  summary="Add a variant (one value of each option, its SKU and stock)",
                  tag="catalog", body=VariantIn, roles=brand_roles, status=201)
    async def add_variant(call: Call[VariantIn]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        updated = await call.services.catalog.add_variant(product["id"], call.body,
                                                          who=await actor(call))
        return json_response(await _with_stock(call, updated), 201)

    @api.endpoint("PATCH", "/products/{product}/variants/{variant}",
                  summary="Rename a variant, change its SKU or its option values",
                  tag="catalog", body=VariantPatch, roles=brand_roles)
    async def update_variant(call: Call[VariantPatch]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        updated = await call.services.catalog.update_variant(
            product["id"], VariantId(call.param("variant")), call.body)
        return json_response(await _with_stock(call, updated))

    @api.endpoint("PUT", "/products/{product}/variants/{variant}/stock",
                  summary="Set or adjust a variant's stock (audited)", tag="catalog",
                  body=StockChange, roles=brand_roles)
    async def change_stock(call: Call[StockChange]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        variant = VariantId(call.param("variant"))
        result = await call.services.catalog.change_stock(
            product["id"], variant, call.body, who=await actor(call))
        holds = []
        if result["delta"] > 0:
            holds = await call.services.waitlist.serve(product["id"], variant)
        return json_response({"variant": variant, "available": result["avail"],
                              "delta": result["delta"], "waitlist_holds": len(holds)})

    @api.endpoint("GET", "/products/{product}/stock", summary="Stock per variant", tag="catalog",
                  roles=brand_roles)
    async def get_stock(call: Call[Any]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        levels = await call.services.catalog.stock(product["id"])
        return json_response({"items": [
            {"variant": s.variant, "available": s.available, "held": s.held, "sold": s.sold,
             "total": s.total} for s in levels]})

    @api.endpoint("GET", "/products/{product}/stock/audit", summary="Stock changes, newest first",
                  tag="catalog", roles=brand_roles, params=(LIMIT,))
    async def stock_audit(call: Call[Any]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        limit = call.param(LIMIT.name)
        return json_response({"items": await call.services.catalog.audit(product["id"], limit)})

    @api.endpoint("POST", "/products/{product}/invites", summary="Invite a creator to promote",
                  tag="catalog", body=InviteIn, roles=brand_roles, status=201)
    async def invite_creator(call: Call[InviteIn]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        await call.services.catalog.invite(product["id"], call.body.creator_id)
        return json_response({"product_id": product["id"], "creator_id": call.body.creator_id}, 201)

    @api.endpoint("GET", "/creators/{creator}/storefront",
                  summary="The products a creator promotes (their affiliate links), newest "
                          "link first, paginated", tag="catalog", params=PAGE)
    async def storefront(call: Call[Any]) -> Response:
        creator = CreatorId(call.param("creator"))
        if not is_valid_id(creator):
            raise Problem(404, "not-found", "no such creator")
        cursor, limit = page_params(call)
        links = await call.services.links.for_creator(creator, cursor=cursor, limit=limit)
        products = await asyncio.gather(*(call.services.catalog.product(link["product_id"])
                                          for link in links))
        base = call.services.settings.base_url
        items = [{"product": product, "code": link["code"], "link": f"{base}/l/{link['code']}"}
                 for link, product in zip(links, products)
                 if product and product["status"] == "active"]
        return json_response({"creator_id": creator, "items": items,
                              "next_cursor": cursor + limit if len(links) == limit else None})
