"""WHIP (RFC 9725) and WHEP endpoints: an SDP offer in, 201 with the answer and a Location.

Bodies are `application/sdp`, so these are plain routes beside the JSON API; errors are the
same problem+json. A session's Location URL holds an unguessable id: it is the capability
to DELETE that session (RFC 9725 section 4.2). Trickle ICE is not offered: the answer
carries every candidate, and PATCH answers 405, which WHIP clients take as "no trickle".
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Protocol, TypeVar, cast

from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from starlette.requests import Request
from starlette.responses import Response

from checkout.ids import StreamId, is_valid_id
from live.web.api import Api, Call, json_response, read_body
from live.web.deps import WebServices, services_of
from live.accounts.auth import Role
from live.web.problems import Problem
from live.video.peers import ClientCapReached, PeerCapReached
from live.video.sdp import MAX_SDP_BYTES, OfferSummary, Role as SdpRole, SdpError, check_offer
from live.video.service import VideoService

__all__ = ["register", "VideoServices"]

log = logging.getLogger(__name__)

_SDP = "application/sdp"
T = TypeVar("T")


class VideoServices(WebServices, Protocol):
    """What these endpoints need of the node: the web layer's services and the video."""

    @property
    def video(self) -> VideoService: ...


def _video(call: Call[Any]) -> VideoService:
    # The node's Services, checked against VideoServices where the node assembles the app.
    return cast(VideoServices, call.services).video


def _no_trickle() -> Problem:
    return Problem(405, "trickle-not-supported",
                   "this server does not take trickled candidates; the answer has them all",
                   headers={"Allow": "DELETE"})


async def _stream(request: Request) -> dict[str, Any]:
    stream_id = StreamId(request.path_params["stream"])
    stream = await services_of(request).streams.get(stream_id) if is_valid_id(stream_id) else None
    if stream is None:
        raise Problem(404, "not-found", "no such stream")
    return stream


async def _hosted(call: Call[Any]) -> dict[str, Any]:
    stream = await _stream(call.request)
    if not call.need_principal().can_act_for_creator(stream["creator_id"]):
        raise Problem(403, "forbidden", "only the stream's host can do that")
    return stream


async def _watched(call: Call[Any]) -> dict[str, Any]:
    """The stream, if the caller hosts it or moderates its creator's streams."""
    stream = await _stream(call.request)
    if not call.need_principal().can_moderate(stream["creator_id"]):
        raise Problem(403, "forbidden", "only the stream's host and its moderators read this")
    return stream


async def _offer(request: Request, role: SdpRole) -> tuple[str, OfferSummary]:
    raw = await read_body(request, _SDP, MAX_SDP_BYTES)
    try:
        return check_offer(raw, role)
    except SdpError as exc:
        raise Problem(400, "bad-sdp", str(exc)) from None


async def _negotiate(coro: Awaitable[T]) -> T:
    """Map what negotiation can raise to problems: the peer cap, lifecycle, an offer that
    passed our checks but that aiortc still refuses."""
    try:
        return await coro
    except PeerCapReached as exc:
        raise Problem(503, "at-capacity", str(exc), headers={"Retry-After": "5"}) from None
    except ClientCapReached as exc:
        raise Problem(429, "too-many-sessions", str(exc), headers={"Retry-After": "5"}) from None
    except (ValueError, LookupError, AttributeError, InternalError, InvalidAccessError,
            InvalidStateError, OperationError) as exc:
        # aiortc's refusals of well-formed but unusable SDP (no common codec, bad attributes)
        log.info("offer refused by the WebRTC stack: %s: %s", type(exc).__name__, exc)
        raise Problem(400, "bad-sdp", f"the offer cannot be negotiated: {exc}") from None


def _client(call: Call[Any]) -> str:
    return call.request.client.host if call.request.client else "unknown"


def _created(request: Request, session_id: str, answer: str) -> Response:
    location = f"{request.url.path.rstrip('/')}/{session_id}"
    return Response(answer, status_code=201, media_type=_SDP, headers={"Location": location})


def register(api: Api) -> None:
    host = (Role.CREATOR, Role.OPERATOR)
    session_path = "/streams/{stream}/%s/{session}"

    @api.endpoint("POST", "/streams/{stream}/whip", tag="video", roles=host, status=201,
                  raw_body=_SDP, response_media=_SDP,
                  summary="WHIP: publish the stream's camera (SDP offer in, answer out)")
    async def whip_publish(call: Call[Any]) -> Response:
        stream = await _hosted(call)
        offer, summary = await _offer(call.request, SdpRole.PUBLISHER)
        peer, answer = await _negotiate(
            _video(call).publish(stream, offer, summary, _client(call)))
        return _created(call.request, peer.session_id, answer)

    @api.endpoint("DELETE", session_path % "whip", tag="video", roles=host,
                  summary="WHIP: stop publishing (ends the stream)")
    async def whip_stop(call: Call[Any]) -> Response:
        stream = await _hosted(call)
        if not await _video(call).stop_publishing(stream["id"], call.param("session")):
            raise Problem(404, "not-found", "no such publishing session")
        return Response(status_code=200)

    @api.endpoint("POST", "/streams/{stream}/whep", tag="video", status=201,
                  raw_body=_SDP, response_media=_SDP,
                  summary="WHEP: watch the stream (SDP offer in, answer out)")
    async def whep_play(call: Call[Any]) -> Response:
        stream = await _stream(call.request)
        offer, summary = await _offer(call.request, SdpRole.VIEWER)
        peer, answer = await _negotiate(
            _video(call).play(stream["id"], offer, summary, _client(call)))
        return _created(call.request, peer.session_id, answer)

    @api.endpoint("DELETE", session_path % "whep", tag="video",
                  summary="WHEP: stop watching (the session URL is the capability)")
    async def whep_stop(call: Call[Any]) -> Response:
        if not await _video(call).stop_playing(call.param("stream"), call.param("session")):
            raise Problem(404, "not-found", "no such playback session")
        return Response(status_code=200)

    for kind in ("whip", "whep"):
        async def no_trickle(call: Call[Any]) -> Response:
            raise _no_trickle()

        no_trickle.__name__ = f"{kind}_trickle"
        api.endpoint("PATCH", session_path % kind, tag="video", status=405,
                     summary="Trickle ICE: not offered (405); the answer has every candidate"
                     )(no_trickle)

    @api.endpoint("GET", "/streams/{stream}/video",
                  summary="The stream's video on this node: ingest, viewers, encoders, frames",
                  tag="video", roles=(*host, Role.MODERATOR))
    async def stream_video(call: Call[Any]) -> Response:
        stream = await _watched(call)
        session = _video(call).sessions.get(stream["id"])
        if session is None:
            return json_response({"stream_id": stream["id"], "ingest": stream.get("ingest", "none"),
                                  "publisher": False, "viewers": 0, "encoders": 0})
        return json_response(session.stats())
