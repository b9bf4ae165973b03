"""HTTP endpoints for discovery, all public: shows live now and coming up, the creators who
host them, and a creator's own shows (the storefront home and creator pages read these)."""

from __future__ import annotations

import time
from typing import Any, Literal

from starlette.responses import Response

from checkout.ids import CreatorId, is_valid_id
from live.streams.shows import Listing, ShowPage
from live.web.api import Api, Call, Param, json_response
from live.web.catalog_api import PAGE, page_params
from live.web.problems import Problem

__all__ = ["register"]

STATE = Param("state", "query", Literal["live", "upcoming"], default="live")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _page(page: ShowPage, now_ms: int) -> Response:
    """A page of items; `server_time_ms` lets a page count down on the server's clock."""
    return json_response({"items": page.items, "next_cursor": page.next_cursor,
                          "server_time_ms": now_ms})


def _creator(call: Call[Any]) -> CreatorId:
    creator = CreatorId(call.param("creator"))
    if not is_valid_id(creator):
        raise Problem(404, "not-found", "no such creator")
    return creator


async def _shows(call: Call[Any], creator: CreatorId | None) -> Response:
    cursor, limit = page_params(call)
    listing: Listing = call.param(STATE.name)
    now = _now_ms()
    page = await call.services.streams.shows.page(listing, creator=creator, cursor=cursor,
                                                  limit=limit, now_ms=now)
    return _page(page, now)


def register(api: Api) -> None:
    @api.endpoint("GET", "/shows", tag="discovery", params=(STATE, *PAGE),
                  summary="Shows live now (newest first, with viewer counts) or coming up "
                          "(soonest first)")
    async def list_shows(call: Call[Any]) -> Response:
        return await _shows(call, None)

    @api.endpoint("GET", "/creators", tag="discovery", params=PAGE,
                  summary="Creators with shows, most recently active first")
    async def list_creators(call: Call[Any]) -> Response:
        cursor, limit = page_params(call)
        now = _now_ms()
        return _page(await call.services.streams.shows.creators(
            cursor=cursor, limit=limit, now_ms=now), now)

    @api.endpoint("GET", "/creators/{creator}", tag="discovery",
                  summary="A creator's public profile: how many shows are live, coming up, done; "
                          "how many followers")
    async def get_creator(call: Call[Any]) -> Response:
        creator = _creator(call)
        counts = await call.services.streams.shows.counts(creator, _now_ms())
        followers = await call.services.follows.followers(creator)
        return json_response({"id": creator, "shows": counts, "followers": followers})

    @api.endpoint("GET", "/creators/{creator}/shows", tag="discovery", params=(STATE, *PAGE),
                  summary="A creator's shows live now or coming up")
    async def creator_shows(call: Call[Any]) -> Response:
        return await _shows(call, _creator(call))
