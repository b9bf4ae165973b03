"""A buyer's follows and reminders (docs/api.md, "Follows and reminders"):

- `PUT/DELETE /api/v1/me/follows/{creator}`, `GET /api/v1/me/follows`: follow a creator
  (one who has scheduled a show), up to `follows_per_account`.
- `PUT/DELETE /api/v1/me/reminders/{stream}`, `GET /api/v1/me/reminders`: RSVP to a
  scheduled show (409 `not-scheduled` for any other), up to `reminders_per_account`.
- `GET /api/v1/me/for-you`: the live shows of the creators followed and of the shows
  RSVP'd, newest first (the storefront's "For you" row).
Each is the caller's own (a bearer buyer token, or the page session with its CSRF token on
changes): no route reads another account's. When a show goes live, live/streams/alerts.py
mails them.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from checkout.ids import CreatorId, StreamId
from live.accounts.auth import Role
from live.streams.lifecycle import StreamState
from live.web.api import Api, Call, json_response
from live.web.problems import Problem

__all__ = ["register"]

FOR_YOU_MAX = 24  # shows in the "For you" row


def _now_ms() -> int:
    return int(time.time() * 1000)


def _me(call: Call[Any]) -> str:
    return call.need_principal().subject


async def _known_creator(call: Call[Any]) -> CreatorId:
    creator = CreatorId(call.param("creator"))
    if not await call.services.streams.shows.is_creator(creator):
        raise Problem(404, "not-found", "no such creator")
    return creator


def register(api: Api) -> None:
    buyer = (Role.BUYER,)

    @api.endpoint("PUT", "/me/follows/{creator}", tag="discovery", roles=buyer,
                  summary="Follow a creator (idempotent): a mail when their shows go live")
    async def follow(call: Call[Any]) -> Response:
        creator = await _known_creator(call)
        follows = call.services.follows
        await follows.follow(_me(call), creator, _now_ms())
        return json_response({"creator_id": creator, "following": True,
                              "followers": await follows.followers(creator)})

    @api.endpoint("DELETE", "/me/follows/{creator}", tag="discovery", roles=buyer, status=204,
                  summary="Unfollow a creator (idempotent)")
    async def unfollow(call: Call[Any]) -> Response:
        await call.services.follows.unfollow(_me(call), CreatorId(call.param("creator")))
        return Response(status_code=204)

    @api.endpoint("GET", "/me/follows", tag="discovery", roles=buyer,
                  summary="The creators the caller follows, newest first")
    async def list_follows(call: Call[Any]) -> Response:
        rows = await call.services.follows.follows(_me(call))
        return json_response({"items": [{"creator_id": c, "since_ms": t} for c, t in rows]})

    @api.endpoint("PUT", "/me/reminders/{stream}", tag="discovery", roles=buyer,
                  summary="RSVP to a scheduled show (idempotent): a mail when it goes live")
    async def remind(call: Call[Any]) -> Response:
        stream = await call.services.streams.get(StreamId(call.param("stream")))
        if stream is None:
            raise Problem(404, "not-found", "no such show")
        if stream["state"] != StreamState.SCHEDULED:
            raise Problem(409, "not-scheduled",
                          f"this show is {stream['state']}: only a scheduled show takes RSVPs")
        await call.services.follows.remind(_me(call), stream["id"], stream["scheduled_ms"],
                                           _now_ms())
        return json_response({"stream_id": stream["id"], "reminded": True})

    @api.endpoint("DELETE", "/me/reminders/{stream}", tag="discovery", roles=buyer, status=204,
                  summary="Drop an RSVP (idempotent; any show)")
    async def unremind(call: Call[Any]) -> Response:
        await call.services.follows.unremind(_me(call), StreamId(call.param("stream")))
        return Response(status_code=204)

    @api.endpoint("GET", "/me/reminders", tag="discovery", roles=buyer,
                  summary="The shows the caller RSVP'd to, soonest first")
    async def list_reminders(call: Call[Any]) -> Response:
        streams = await call.services.follows.reminders(_me(call))
        return json_response({"items": [{"stream_id": s} for s in streams]})

    @api.endpoint("GET", "/me/for-you", tag="discovery", roles=buyer,
                  summary="Live shows of the creators followed and the shows RSVP'd")
    async def for_you(call: Call[Any]) -> Response:
        me = _me(call)
        creators = [CreatorId(c) for c, _ in await call.services.follows.follows(me)]
        streams = [StreamId(s) for s in await call.services.follows.reminders(me)]
        now = _now_ms()
        items = await call.services.streams.shows.live_for(creators, streams,
                                                           limit=FOR_YOU_MAX, now_ms=now)
        return json_response({"items": items, "next_cursor": None, "server_time_ms": now})
