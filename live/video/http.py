"""WHIP (RFC 9725) and WHEP endpoints: an SDP offer in, 201 with the answer and a Location.

Bodies are `application/sdp`, so these are plain routes beside the JSON API; errors are the
same problem+json. A session's Location URL holds an unguessable id: it is the capability
to DELETE that session (RFC 9725 section 4.2). Trickle ICE is not offered: the answer
carries every candidate, and PATCH answers 405, which WHIP clients take as "no trickle".
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from checkout.ids import is_valid_id
from live.api import Api, Call, json_response, verify_bearer
from live.auth import Role
from live.problems import Problem
from live.video.peers import PeerCapReached
from live.video.sdp import MAX_SDP_BYTES, Role as SdpRole, SdpError, check_offer
from live.video.service import VideoError, VideoService

__all__ = ["routes", "register"]

log = logging.getLogger(__name__)

_PREFIX = "/api/v1/streams/{stream}"
_SDP = "application/sdp"
_NO_TRICKLE = Problem(405, "trickle-not-supported",
                      "this server does not take trickled candidates; the answer has them all",
                      headers={"Allow": "DELETE"})


def _video(request: Request) -> VideoService:
    return request.app.state.services.video


async def _stream(request: Request) -> dict[str, Any]:
    stream_id = request.path_params["stream"]
    stream = await request.app.state.services.streams.get(stream_id) if is_valid_id(stream_id) else None
    if stream is None:
        raise Problem(404, "not-found", "no such stream")
    return stream


async def _host(request: Request) -> dict[str, Any]:
    principal = verify_bearer(request)
    if principal.role not in (Role.CREATOR, Role.OPERATOR):
        raise Problem(403, "forbidden", "publishing needs a creator or operator token")
    stream = await _stream(request)
    if not principal.can_act_for_creator(stream["creator_id"]):
        raise Problem(403, "forbidden", "only the stream's host can publish to it")
    return stream


async def _offer(request: Request, role: SdpRole) -> tuple[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != _SDP:
        raise Problem(415, "unsupported-media-type", "send the offer as application/sdp")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_SDP_BYTES:
            raise Problem(413, "payload-too-large", f"the SDP limit is {MAX_SDP_BYTES} bytes")
        chunks.append(chunk)
    try:
        return check_offer(b"".join(chunks), role)
    except SdpError as exc:
        raise Problem(400, "bad-sdp", str(exc)) from None


async def _negotiate(coro: Any) -> Any:
    """Map what negotiation can raise to problems: the peer cap, lifecycle, an offer that
    passed our checks but that aiortc still refuses."""
    try:
        return await coro
    except PeerCapReached as exc:
        raise Problem(503, "at-capacity", str(exc), headers={"Retry-After": "5"}) from None
    except VideoError as exc:
        raise Problem(exc.status, exc.kind, exc.detail) from None
    except (ValueError, LookupError, AttributeError, InternalError, InvalidAccessError,
            InvalidStateError, OperationError) as exc:
        # aiortc's refusals of well-formed but unusable SDP (no common codec, bad attributes)
        log.info("offer refused by the WebRTC stack: %s: %s", type(exc).__name__, exc)
        raise Problem(400, "bad-sdp", f"the offer cannot be negotiated: {exc}") from None


def _created(request: Request, session_id: str, answer: str) -> Response:
    location = f"{request.url.path.rstrip('/')}/{session_id}"
    return Response(answer, status_code=201, media_type=_SDP, headers={"Location": location})


async def whip_publish(request: Request) -> Response:
    stream = await _host(request)
    offer, summary = await _offer(request, SdpRole.PUBLISHER)
    peer, answer = await _negotiate(_video(request).publish(stream, offer, summary))
    return _created(request, peer.session_id, answer)


async def whip_session(request: Request) -> Response:
    if request.method == "PATCH":
        raise _NO_TRICKLE
    await _host(request)
    if not await _video(request).stop_publishing(request.path_params["stream"],
                                                 request.path_params["session"]):
        raise Problem(404, "not-found", "no such publishing session")
    return Response(status_code=200)


async def whep_play(request: Request) -> Response:
    await _stream(request)
    offer, summary = await _offer(request, SdpRole.VIEWER)
    peer, answer = await _negotiate(_video(request).play(request.path_params["stream"], offer, summary))
    return _created(request, peer.session_id, answer)


async def whep_session(request: Request) -> Response:
    if request.method == "PATCH":
        raise _NO_TRICKLE
    if not await _video(request).stop_playing(request.path_params["stream"],
                                              request.path_params["session"]):
        raise Problem(404, "not-found", "no such playback session")
    return Response(status_code=200)


def routes() -> list[Route]:
    return [
        Route(_PREFIX + "/whip", whip_publish, methods=["POST"]),
        Route(_PREFIX + "/whip/{session}", whip_session, methods=["DELETE", "PATCH"]),
        Route(_PREFIX + "/whep", whep_play, methods=["POST"]),
        Route(_PREFIX + "/whep/{session}", whep_session, methods=["DELETE", "PATCH"]),
    ]


def register(api: Api) -> None:
    @api.endpoint("GET", "/streams/{stream}/video",
                  summary="The stream's video on this node: ingest, viewers, encoders, frames",
                  tag="video", roles=(Role.CREATOR, Role.OPERATOR))
    async def stream_video(call: Call[Any]) -> Response:
        stream = await _stream(call.request)
        if not call.need_principal().can_act_for_creator(stream["creator_id"]):
            raise Problem(403, "forbidden", "only the stream's host can see its video stats")
        session = call.services.video.sessions.get(stream["id"])
        if session is None:
            return json_response({"stream_id": stream["id"], "ingest": stream.get("ingest", "none"),
                                  "publisher": False, "viewers": 0, "encoders": 0})
        return json_response(session.stats())
