"""A brand's shows and each show's product funnel (checkout/funnel.py): views, clicks, cart
adds, orders, units and GMV per product, with click-through and conversion."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from checkout.funnel import brand_shows, featured, show_funnel
from checkout.ids import BrandId, StreamId, is_valid_id
from live.accounts.auth import Role
from live.web.api import Api, Call, json_response
from live.web.catalog_api import PAGE, page_params
from live.web.problems import Problem

__all__ = ["register"]

_SHOW_FIELDS = ("id", "title", "state", "creator_id", "scheduled_ms", "started_ms", "ended_ms")


def _show(stream: dict[str, Any]) -> dict[str, Any]:
    return {name: stream.get(name) for name in _SHOW_FIELDS}


async def _brand_of(call: Call[Any]) -> BrandId:
    """The brand in the path, if it exists and the caller acts for it (its team, an
    operator, its API keys); another brand is refused before anything is read."""
    brand_id = BrandId(call.param("brand"))
    if not call.need_principal().can_act_for_brand(brand_id):
        raise Problem(403, "forbidden", "a brand can read only its own shows")
    if not is_valid_id(brand_id) or await call.services.catalog.brand(brand_id) is None:
        raise Problem(404, "not-found", "no such brand")
    return brand_id


def register(api: Api) -> None:
    readers = (Role.BRAND, Role.OPERATOR)

    @api.endpoint("GET", "/brands/{brand}/shows",
                  summary="The shows that featured the brand's products, latest first",
                  tag="reports", roles=readers, params=PAGE)
    async def brand_shows_list(call: Call[Any]) -> Response:
        brand_id = await _brand_of(call)
        cursor, limit = page_params(call)
        ids, next_cursor = await brand_shows(call.services.client, brand_id, cursor, limit)
        found = [await call.services.streams.get(i) for i in ids]
        return json_response({"items": [_show(s) for s in found if s is not None],
                              "next_cursor": next_cursor})

    @api.endpoint("GET", "/brands/{brand}/shows/{stream}/products",
                  summary="A show's funnel for each of the brand's products in it: views, "
                          "clicks, cart adds, orders, units, GMV and their rates",
                  tag="reports", roles=readers)
    async def brand_show_funnel(call: Call[Any]) -> Response:
        brand_id = await _brand_of(call)
        stream_id = StreamId(call.param("stream"))
        stream = await call.services.streams.get(stream_id) if is_valid_id(stream_id) else None
        if stream is None or not await featured(call.services.client, brand_id, stream_id):
            raise Problem(404, "not-found", "no such show of this brand's products")
        rows = await show_funnel(call.services.client, brand_id, stream_id, stream["lineup"])
        return json_response({"show": _show(stream), "items": rows})
