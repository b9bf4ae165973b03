"""HTTP endpoints for a creator's live streams: schedule, go live, end, lineup, pins, deals,
and the show's cover (an uploaded image, through image_api's path)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from checkout.ids import CreatorId, ProductId, StreamId, is_valid_id
from checkout.store.keys import creator_streams_key
from checkout.store.replies import members
from live.web.api import Api, Call, json_response
from live.web.catalog_api import PAGE, page_params
from live.web.image_api import IMAGE_PATH, receive_image
from live.accounts.auth import Role
from live.web.problems import Problem
from live.web.stream_lookup import hosted_stream, stream_of
from live.streams.lifecycle import StreamAction, StreamState
from live.streams.store import DealIn, LineupCheck, LineupIn, PinIn, StreamIn

__all__ = ["register", "can_promote", "streams_of"]


async def can_promote(call: Call[Any], creator: CreatorId,
                      product_id: ProductId) -> dict[str, Any]:
    """A creator may sell an active product whose commission is open, or that invited them;
    a brand with an affiliate program decides by it (open, or the creator approved; a
    product's own invitation still counts)."""
    product = await call.services.catalog.product(product_id) if is_valid_id(product_id) else None
    if product is None or product["status"] != "active":
        raise Problem(404, "not-found", f"no product {product_id}")
    may = await call.services.programs.may_sell(product["brand_id"], creator)
    if may or (product["commission_mode"] != "invited" and may is None):
        return product
    if await call.services.catalog.is_invited(product_id, creator):
        return product
    if may is False:
        raise Problem(403, "not-approved", f"{product['brand_id']}'s affiliate program has not "
                      f"approved {creator}: apply to it from the studio's Programs")
    raise Problem(403, "not-invited", f"{product_id} is open to invited creators only")


def _lineup_check(call: Call[Any], creator: CreatorId) -> LineupCheck:
    async def check(product_id: ProductId) -> dict[str, Any]:
        return await can_promote(call, creator, product_id)
    return check


async def streams_of(call: Call[Any], creator: CreatorId, cursor: int,
                     limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the creator's streams, newest first (every state), and the next cursor."""
    ids = members(await call.services.client.zrevrange(creator_streams_key(creator), cursor,
                                                       cursor + limit - 1))
    found = [await call.services.streams.get(StreamId(i)) for i in ids]
    return [s for s in found if s is not None], cursor + limit if len(ids) == limit else None


def register(api: Api) -> None:
    host = (Role.CREATOR, Role.OPERATOR)

    @api.endpoint("GET", "/creators/{creator}/streams",
                  summary="A creator's streams, newest first, for its host console and moderators",
                  tag="streams", roles=(*host, Role.MODERATOR), params=PAGE)
    async def creator_streams(call: Call[Any]) -> Response:
        creator = CreatorId(call.param("creator"))
        if not call.need_principal().can_moderate(creator):
            raise Problem(403, "forbidden", "only the creator and its moderators list its streams")
        cursor, limit = page_params(call)
        items, next_cursor = await streams_of(call, creator, cursor, limit)
        return json_response({"items": items, "next_cursor": next_cursor})

    @api.endpoint("POST", "/streams", summary="Schedule a stream with a product lineup",
                  tag="streams", body=StreamIn, roles=(Role.CREATOR,), status=201)
    async def create_stream(call: Call[StreamIn]) -> Response:
        creator = CreatorId(call.need_principal().subject)
        stream = await call.services.streams.create(creator, call.body, _lineup_check(call, creator))
        return json_response(stream, 201)

    @api.endpoint("GET", "/streams/{stream}", summary="A stream's public state", tag="streams")
    async def get_stream(call: Call[Any]) -> Response:
        stream = await stream_of(call)
        if call.services.settings.recording_enabled and stream["state"] in (
                StreamState.LIVE, StreamState.ENDED):
            # Served by the node that records it (live/video/hls_http.py); 404 until the
            # first segment is written.
            stream = {**stream, "hls_url": f"/hls/{stream['id']}/index.m3u8"}
        if stream["recorded"] and stream["state"] == StreamState.ENDED:
            stream = {**stream, "replay_url": f"/r/{stream['id']}"}  # live/video/replay_api.py
        return json_response(stream)

    for action, path in ((StreamAction.GO_LIVE, "live"), (StreamAction.END, "end"),
                         (StreamAction.CANCEL, "cancel")):
        _register_action(api, action, path, host)

    @api.endpoint("PUT", "/streams/{stream}/lineup", summary="Replace the product lineup",
                  tag="streams", body=LineupIn, roles=host)
    async def set_lineup(call: Call[LineupIn]) -> Response:
        stream = await hosted_stream(call)
        check = _lineup_check(call, stream["creator_id"])
        return json_response(await call.services.streams.set_lineup(
            stream["id"], call.body.lineup, check))

    @api.endpoint("POST", "/streams/{stream}/pins", summary="Pin a lineup product (at most 3)",
                  tag="streams", body=PinIn, roles=host)
    async def pin(call: Call[PinIn]) -> Response:
        stream = await hosted_stream(call)
        return json_response(await call.services.streams.pin(stream["id"], call.body.product_id))

    @api.endpoint("DELETE", "/streams/{stream}/pins/{product}", summary="Unpin a product",
                  tag="streams", roles=host)
    async def unpin(call: Call[Any]) -> Response:
        stream = await hosted_stream(call)
        product_id = ProductId(call.param("product"))
        if not is_valid_id(product_id):
            raise Problem(404, "not-found", "no such product")
        return json_response(await call.services.streams.unpin(stream["id"], product_id))

    @api.endpoint("POST", "/streams/{stream}/deals",
                  summary="Start a flash deal: price, quantity cap, per-buyer limit, countdown",
                  tag="streams", body=DealIn, roles=host, status=201)
    async def start_deal(call: Call[DealIn]) -> Response:
        stream = await hosted_stream(call)
        product = await call.services.catalog.product(call.body.product_id)
        if product is None:
            raise Problem(404, "not-found", "no such product")
        deal = await call.services.streams.start_deal(stream["id"], call.body,
                                                      product)
        return json_response(deal, 201)

    @api.endpoint("DELETE", "/streams/{stream}/deals/{product}", summary="End a flash deal early",
                  tag="streams", roles=host, status=204)
    async def end_deal(call: Call[Any]) -> Response:
        stream = await hosted_stream(call)
        await call.services.streams.end_deal(stream["id"], ProductId(call.param("product")))
        return Response(status_code=204)

    _register_cover(api, host)


def _register_cover(api: Api, roles: tuple[Role, ...]) -> None:
    @api.endpoint("POST", "/streams/{stream}/cover",
                  summary="Upload the show's cover (JPEG, PNG or WebP bytes as the body) while "
                          "it is scheduled or live", tag="streams", roles=roles,
                  raw_body="image/*", status=201)
    async def upload_cover(call: Call[Any]) -> Response:
        stream = await hosted_stream(call)
        if stream["state"] in (StreamState.ENDED, StreamState.CANCELLED):
            # stream.lua decides; asked first, an over show costs no upload and no file.
            raise Problem(409, "stream-over", "the stream is over")
        image = await receive_image(call)
        return json_response(await call.services.streams.set_cover(
            stream["id"], IMAGE_PATH + image.name), 201)

    @api.endpoint("DELETE", "/streams/{stream}/cover",
                  summary="Remove the show's cover: listings show its first pinned or lineup "
                          "product's picture", tag="streams", roles=roles)
    async def remove_cover(call: Call[Any]) -> Response:
        stream = await hosted_stream(call)
        return json_response(await call.services.streams.set_cover(stream["id"], None))


def _register_action(api: Api, action: StreamAction, path: str, roles: tuple[Role, ...]) -> None:
    async def handler(call: Call[Any]) -> Response:
        stream = await hosted_stream(call)
        return json_response(await call.services.streams.act(stream["id"], action))

    handler.__name__ = f"stream_{path}"
    api.endpoint("POST", f"/streams/{{stream}}/{path}", summary=f"Stream: {action.replace('_', ' ')}",
                 tag="streams", roles=roles)(handler)
