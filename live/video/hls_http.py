"""HLS over HTTP: a stream's recording as served to players and caches, and its deletion.

- `GET /hls/{stream}/index.m3u8`: the live playlist while the show is recorded (a window of
  the last segments, `max-age=1`), the whole show as a VOD (EXT-X-ENDLIST) after it ended
  (`max-age=600`); `GET /hls/{stream}/init-<run>.mp4` and `/seg-<n>.m4s`: written once and
  never changed, so `immutable` for a year. A cache in front serves any audience from one
  fetch per file (docs/recording.md). ETag and Last-Modified on everything; 304 on a match.
- `DELETE /api/v1/streams/{stream}/recording`: the show's creator, a brand with a product in
  its lineup, or an operator deletes an ended show's recording from this node.

Names are checked against what the recorder writes before any path is built, and the
stream id against the id alphabet, so no request reaches outside a recording's folder.
"""

from __future__ import annotations

import asyncio
from email.utils import formatdate
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from checkout.ids import is_valid_id
from live.accounts.auth import Role
from live.streams.lifecycle import StreamState
from live.video.http import VideoServices
from live.video.recorder import PLAYLIST
from live.video.recordings import RecordedFile, Recordings
from live.web.api import Api, Call
from live.web.caching import IMMUTABLE, etag_matches
from live.web.deps import services_of
from live.web.problems import Problem
from live.web.stream_lookup import stream_of

__all__ = ["hls_routes", "register", "HLS_PATH", "hls_url"]

HLS_PATH = "/hls/"
_LIVE = "public, max-age=1"
_ENDED = "public, max-age=600"
_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "mp4": "video/mp4",
          "m4s": "video/iso.segment"}


def hls_url(stream_id: str) -> str:
    return f"{HLS_PATH}{stream_id}/{PLAYLIST}"


def _recordings(request: Request) -> Recordings | None:
    return cast(VideoServices, services_of(request)).video.recordings


async def serve_hls(request: Request) -> Response:
    stream_id, name = request.path_params["stream"], request.path_params["name"]
    recordings = _recordings(request)
    found: RecordedFile | None = None
    if recordings is not None and is_valid_id(stream_id):
        found = await asyncio.to_thread(recordings.read, stream_id, name)
    if found is None:
        raise Problem(404, "not-found", "no such recording or file")
    if name == PLAYLIST:
        ended = found.data.rstrip().endswith(b"#EXT-X-ENDLIST")
        cache = _ENDED if ended else _LIVE
        etag = f'"{int(found.mtime * 1e6):x}-{len(found.data):x}"'
    else:
        cache = IMMUTABLE
        etag = f'"{name.split(".")[0]}-{len(found.data):x}"'
    headers = {"Cache-Control": cache, "ETag": etag,
               "Last-Modified": formatdate(found.mtime, usegmt=True),
               "Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"}
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=_TYPES[name.rsplit(".", 1)[1]], headers=headers)


def hls_routes() -> list[Route]:
    return [Route(HLS_PATH + "{stream}/{name}", serve_hls, methods=["GET"])]


async def _may_delete(call: Call[Any], stream: dict[str, Any]) -> bool:
    """The stream's creator (or an operator), or a brand with a product in its lineup."""
    principal = call.need_principal()
    if principal.can_act_for_creator(stream["creator_id"]):
        return True
    if principal.role is not Role.BRAND:
        return False
    for product_id in stream["lineup"]:
        product = await call.services.catalog.product(product_id)
        if product is not None and principal.can_act_for_brand(product["brand_id"]):
            return True
    return False


def register(api: Api) -> None:
    @api.endpoint("DELETE", "/streams/{stream}/recording", tag="video", status=204,
                  roles=(Role.CREATOR, Role.BRAND, Role.OPERATOR),
                  summary="Delete the show's recording (its creator, or a brand it features) "
                          "once the show is over")
    async def delete_recording(call: Call[Any]) -> Response:
        stream = await stream_of(call)
        if not await _may_delete(call, stream):
            raise Problem(403, "forbidden", "only the show's creator or a brand it features "
                          "deletes its recording")
        video = cast(VideoServices, call.services).video
        if stream["state"] in (StreamState.LIVE, StreamState.SCHEDULED) or \
                stream["id"] in video.sessions:
            raise Problem(409, "recording-in-progress",
                          "the show is not over; end it before deleting its recording")
        recordings = video.recordings
        if recordings is not None and stream["id"] in recordings.uploading:
            raise Problem(409, "recording-in-progress", "the recording is being moved to "
                          "storage; try again in a moment", headers={"Retry-After": "5"})
        if recordings is None or not await asyncio.to_thread(recordings.delete, stream["id"]):
            raise Problem(404, "not-found", "this show has no recording on this node")
        await call.services.streams.set_recorded(stream["id"], False)
        return Response(status_code=204)
