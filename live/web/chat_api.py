"""HTTP endpoints of a show's chat: its history (public) and its moderation, for the
stream's creator, the creator's moderators and operators (docs/chat.md). Each change is one
step of chat_moderate.lua: its event reaches every screen and its audit entry says who."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from starlette.responses import Response

from checkout.ids import CreatorId, is_valid_id
from checkout.models import StrictModel
from checkout.store.keys import creator_streams_key
from live.accounts.auth import Role
from live.chat.text import ChatRefused, normalise, normalise_blocked_words
from live.web.api import Api, Call, Param, json_response
from live.web.catalog_api import actor
from live.web.problems import Problem
from live.web.stream_lookup import stream_of

__all__ = ["register"]

_MODERATORS = (Role.CREATOR, Role.MODERATOR, Role.OPERATOR)
_USER = Annotated[str, StringConstraints(
    pattern=r"^(buyer|brand|creator|moderator|operator):[A-Za-z0-9_.:-]{1,64}$")]
_MESSAGE_ID = r"^[0-9]{1,15}-[0-9]{1,10}$"
MESSAGE = Param("message", "path", Annotated[str, StringConstraints(pattern=_MESSAGE_ID)])
HELD = Param("held", "path", Annotated[str, StringConstraints(pattern=r"^h[0-9]{1,10}$")])
USER = Param("user", "path", _USER)
Scope = Literal["show", "channel"]
SCOPE = Param("scope", "query", Scope, default="show")
BEFORE = Param("before", "query",
               Annotated[str, StringConstraints(pattern=r"^([0-9]{1,15}-[0-9]{1,10})?$")],
               default="")
HISTORY_LIMIT = Param("limit", "query", Annotated[int, Field(ge=1, le=200)], default=50)
AUDIT_LIMIT = Param("limit", "query", Annotated[int, Field(ge=1, le=500)], default=100)


class BanIn(StrictModel):
    user: _USER
    scope: Scope = "show"
    duration_s: Annotated[int, Field(ge=10, le=24 * 3600)] | None = None  # None: a ban


class SettingsIn(StrictModel):
    slow_s: Annotated[int, Field(ge=0, le=300)] | None = None
    followers_only: bool | None = None
    keyword: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{2,16}$")] | None = None
    claim_mode: Literal["cart", "buy"] | None = None


class AnnouncementIn(StrictModel):
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class BlockedWordsIn(StrictModel):
    words: Annotated[list[Annotated[str, StringConstraints(max_length=200)]],
                     Field(max_length=200)]


def _is_staff_of(user: str, creator: str) -> bool:
    """Staff of this show's chat: its creator, the creator's moderators, operators. Another
    channel's creator or moderators chat here as anyone does (live/hub/chatter.py)."""
    return user in (f"creator:{creator}", f"moderator:{creator}") or user.startswith("operator:")


async def _moderated(call: Call[Any]) -> dict[str, Any]:
    """The stream, if the caller may moderate its chat."""
    stream = await stream_of(call)
    if not call.need_principal().can_moderate(stream["creator_id"]):
        raise Problem(403, "forbidden", "only the stream's host and its moderators moderate its chat")
    return stream


def _clean(text: str) -> str:
    try:
        return normalise(text)
    except ChatRefused as exc:
        raise Problem(422, exc.code, exc.message) from None


def register(api: Api) -> None:
    @api.endpoint("GET", "/streams/{stream}/chat", summary="The show's chat, newest first",
                  tag="chat", params=(HISTORY_LIMIT, BEFORE))
    async def history(call: Call[Any]) -> Response:
        stream = await stream_of(call)
        items = await call.services.chat.history(stream["id"], call.param("limit"),
                                                 call.param("before") or None)
        return json_response({"items": items})

    @api.endpoint("DELETE", "/streams/{stream}/chat/messages/{message}", status=204, params=(MESSAGE,),
                  summary="Delete a message: gone from every screen and from the log",
                  tag="chat", roles=_MODERATORS)
    async def delete(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        await call.services.chat.moderate(stream["id"], "delete",
                                          {"id": call.param("message")}, await actor(call))
        return Response(status_code=204)

    @api.endpoint("POST", "/streams/{stream}/chat/bans", status=201, body=BanIn,
                  summary="Ban a user from the show's or the channel's chat, or time them out",
                  tag="chat", roles=_MODERATORS)
    async def ban(call: Call[BanIn]) -> Response:
        stream = await _moderated(call)
        body = call.body
        if _is_staff_of(body.user, stream["creator_id"]):
            raise Problem(422, "cannot-ban-staff",
                          "the host, its moderators and operators cannot be banned")
        until = 0 if body.duration_s is None else int(time.time() * 1000) + body.duration_s * 1000
        await call.services.chat.ban(stream["id"], CreatorId(stream["creator_id"]), body.user,
                                     until, body.scope, await actor(call))
        return json_response({"user": body.user, "scope": body.scope,
                              "until_ms": until or None}, 201)

    @api.endpoint("DELETE", "/streams/{stream}/chat/bans/{user}", status=204, params=(USER, SCOPE),
                  summary="Lift a ban or a time-out", tag="chat", roles=_MODERATORS)
    async def unban(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        await call.services.chat.unban(stream["id"], CreatorId(stream["creator_id"]),
                                       call.param("user"), call.param("scope"), await actor(call))
        return Response(status_code=204)

    @api.endpoint("GET", "/streams/{stream}/chat/bans", summary="The show's and the channel's bans",
                  tag="chat", roles=_MODERATORS)
    async def bans(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        return json_response(await call.services.chat.bans(stream["id"],
                                                           CreatorId(stream["creator_id"])))

    @api.endpoint("PATCH", "/streams/{stream}/chat/settings", body=SettingsIn,
                  summary="Slow mode, followers-only, the comment-to-buy keyword and mode",
                  tag="chat", roles=_MODERATORS)
    async def settings(call: Call[SettingsIn]) -> Response:
        stream = await _moderated(call)
        current = await call.services.chat.settings(stream["id"])
        current.update(call.body.model_dump(exclude_none=True))
        current["keyword"] = current["keyword"].upper()
        await call.services.chat.moderate(stream["id"], "settings", current, await actor(call))
        return json_response(current)

    @api.endpoint("POST", "/streams/{stream}/chat/clear", status=204,
                  summary="Clear the chat from every screen", tag="chat", roles=_MODERATORS)
    async def clear(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        await call.services.chat.moderate(stream["id"], "clear", {}, await actor(call))
        return Response(status_code=204)

    @api.endpoint("PUT", "/streams/{stream}/chat/announcement", body=AnnouncementIn,
                  summary="Pin an announcement over the chat", tag="chat", roles=_MODERATORS)
    async def announce(call: Call[AnnouncementIn]) -> Response:
        stream = await _moderated(call)
        text = _clean(call.body.text)
        await call.services.chat.moderate(stream["id"], "announce", {"text": text},
                                          await actor(call))
        return json_response({"text": text})

    @api.endpoint("DELETE", "/streams/{stream}/chat/announcement", status=204,
                  summary="Remove the announcement", tag="chat", roles=_MODERATORS)
    async def unannounce(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        await call.services.chat.moderate(stream["id"], "announce", {}, await actor(call))
        return Response(status_code=204)

    @api.endpoint("GET", "/streams/{stream}/chat/held", summary="Messages held for review",
                  tag="chat", roles=_MODERATORS)
    async def held(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        return json_response({"items": await call.services.chat.held(stream["id"])})

    @api.endpoint("POST", "/streams/{stream}/chat/held/{held}/approve", params=(HELD,),
                  summary="Post a held message", tag="chat", roles=_MODERATORS)
    async def approve(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        reply = await call.services.chat.moderate(
            stream["id"], "approve", {"id": call.param("held")}, await actor(call))
        return json_response(reply["message"])

    @api.endpoint("DELETE", "/streams/{stream}/chat/held/{held}", status=204, params=(HELD,),
                  summary="Reject a held message", tag="chat", roles=_MODERATORS)
    async def reject(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        await call.services.chat.moderate(stream["id"], "reject",
                                          {"id": call.param("held")}, await actor(call))
        return Response(status_code=204)

    @api.endpoint("GET", "/streams/{stream}/chat/audit", params=(AUDIT_LIMIT,),
                  summary="Who moderated what, newest first", tag="chat", roles=_MODERATORS)
    async def audit(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        return json_response({"items": await call.services.chat.audit(stream["id"],
                                                                      call.param("limit"))})

    @api.endpoint("GET", "/streams/{stream}/chat/claims", params=(AUDIT_LIMIT,),
                  summary="Comment-to-buy claims and their outcomes, newest first",
                  tag="chat", roles=_MODERATORS)
    async def claims(call: Call[Any]) -> Response:
        stream = await _moderated(call)
        return json_response({"items": await call.services.chat.claims(stream["id"],
                                                                       call.param("limit"))})

    @api.endpoint("GET", "/creators/{creator}/chat/blocked-words",
                  summary="The channel's blocked words", tag="chat", roles=_MODERATORS)
    async def blocked(call: Call[Any]) -> Response:
        creator = await _own_channel(call)
        return json_response({"words": await call.services.chat.blocked_words(creator)})

    @api.endpoint("PUT", "/creators/{creator}/chat/blocked-words", body=BlockedWordsIn,
                  summary="Set the channel's blocked words (matches are held for review)",
                  tag="chat", roles=_MODERATORS)
    async def set_blocked(call: Call[BlockedWordsIn]) -> Response:
        creator = await _own_channel(call)
        try:
            words = normalise_blocked_words(call.body.words)
        except ChatRefused as exc:
            raise Problem(422, exc.code, exc.message) from None
        await call.services.chat.set_blocked_words(creator, words)
        return json_response({"words": sorted(words)})


async def _own_channel(call: Call[Any]) -> CreatorId:
    """The creator's channel, if the caller may moderate it; a channel exists once the
    creator has a show."""
    creator = CreatorId(call.param("creator"))
    if not is_valid_id(creator):
        raise Problem(404, "not-found", "no such creator")
    if not call.need_principal().can_moderate(creator):
        raise Problem(403, "forbidden", "only the creator and its moderators keep its blocked words")
    if not await call.services.client.exists(creator_streams_key(creator)):
        raise Problem(404, "not-found", "no channel: the creator has no shows yet")
    return creator
