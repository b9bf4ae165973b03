"""HLS over HTTP: a stream's recording as served to players and caches, and its deletion.

- `GET /hls/{stream}/index.m3u8`: the live playlist while the show is recorded (a window of
  the last segments and the parts at the live edge, `max-age=1`), the whole show as a VOD
  (EXT-X-ENDLIST) after it ended (`max-age=600`); `GET /hls/{stream}/init-<run>.mp4`,
  `/seg-<n>.m4s` and `/part-<run>-<n>.m4s`: written once and never changed, so
  `immutable` for a year. A cache in front serves any audience from one fetch per file
  (docs/recording.md). ETag and Last-Modified on everything; 304 on a match.
- Blocking playlist reload (RFC 8216bis 6.2.5.2): `index.m3u8?_HLS_msn=M[&_HLS_part=N]` is
  held, on the event loop (no thread, no disk polling: the recorder wakes it), until the
  playlist holds segment M (part N of it) or later, or the show ended; after three target
  durations, 503. Such a URL names a playlist at least that new, so its answer is cached
  for as long as a request may be held (`max-age` of three target durations). Directives
  that are not integers, a part without a segment, or asking past the live edge by more
  than the spec's limits (two segments, three parts): 400.
- The preload-hinted part (EXT-X-PRELOAD-HINT) is held the same way until its file is
  complete, then served whole; a part that is not the next one and does not exist: 404. A
  part is never served before its file is complete (files are renamed into place whole).
- `DELETE /api/v1/streams/{stream}/recording`: the show's creator, a brand with a product in
  its lineup, or an operator deletes an ended show's recording from this node.

Names are checked against what the recorder writes before any path is built, and the
stream id against the id alphabet, so no request reaches outside a recording's folder.
"""

from __future__ import annotations

import asyncio
import re
from email.utils import formatdate
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from checkout.ids import is_valid_id
from live.accounts.auth import Role
from live.streams.lifecycle import StreamState
from live.video.http import VideoServices
from live.video.playlist import PART_NAME
from live.video.recorder import PLAYLIST, Recorder
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
_INTEGER = re.compile(r"[0-9]{1,9}")
_HOLD_TARGETS = 3  # a blocked request is answered within 3 target durations (6.2.5.2)
_MAX_SEGMENTS_AHEAD = 2  # _HLS_msn past the last segment by more: 400 (6.2.5.2)
_MAX_PARTS_AHEAD = 3  # the Advance Part Limit
_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "mp4": "video/mp4",
          "m4s": "video/iso.segment"}


def hls_url(stream_id: str) -> str:
    return f"{HLS_PATH}{stream_id}/{PLAYLIST}"


def _recordings(request: Request) -> Recordings | None:
    return cast(VideoServices, services_of(request)).video.recordings


def _recorder(request: Request, stream_id: str) -> Recorder | None:
    session = cast(VideoServices, services_of(request)).video.sessions.get(stream_id)
    return session.recorder if session is not None else None


def _directives(request: Request) -> tuple[int, int | None] | None:
    """`_HLS_msn` and `_HLS_part` (RFC 8216bis 6.2.5.2), or None if the request has none."""
    msn, part = request.query_params.get("_HLS_msn"), request.query_params.get("_HLS_part")
    if msn is None and part is None:
        return None
    for name, value in (("_HLS_msn", msn), ("_HLS_part", part)):
        if value is not None and not _INTEGER.fullmatch(value):
            raise Problem(400, "bad-directive", f"{name} must be a non-negative integer")
    if msn is None:
        raise Problem(400, "bad-directive", "_HLS_part needs _HLS_msn")
    return int(msn), None if part is None else int(part)


async def _hold_playlist(recorder: Recorder | None, msn: int, part: int | None) -> bool:
    """Hold a blocking reload until the playlist has what it asks for; False: the hold
    timed out. A stream not recorded on this node (ended, or another node's) is not held."""
    if recorder is None:
        return False
    progress = recorder.writer.progress
    if not progress.ended and not progress.has(msn, part):
        open_seq = progress.last_seq + 1
        ahead = (part - progress.parts + 1 if msn == open_seq else part + 1) \
            if part is not None else 0
        if msn > progress.last_seq + _MAX_SEGMENTS_AHEAD or ahead > _MAX_PARTS_AHEAD:
            raise Problem(400, "bad-directive", "that segment or part is too far past the "
                          "live edge", last_segment=progress.last_seq, parts=progress.parts)
        hold = _HOLD_TARGETS * recorder.config.segment_s
        if not await recorder.wait_for(msn, part, hold):
            raise Problem(503, "not-yet", "the playlist did not reach that segment or part "
                          "in time; reload it", headers={"Cache-Control": "no-store"})
    return True


async def _hold_part(recorder: Recorder | None, name: str) -> None:
    """A request for the hinted next part waits for its file to be complete."""
    match = PART_NAME.fullmatch(name)
    if recorder is None or match is None:
        return
    run, number = int(match.group(1)), int(match.group(2))
    progress = recorder.writer.progress
    if run == progress.run and number == progress.next_part:
        await recorder.wait_until(lambda now: now.run != run or now.next_part > number,
                                  _HOLD_TARGETS * recorder.config.segment_s)


async def serve_hls(request: Request) -> Response:
    stream_id, name = request.path_params["stream"], request.path_params["name"]
    recordings = _recordings(request)
    found: RecordedFile | None = None
    recorder: Recorder | None = None
    blocked = False
    if recordings is not None and is_valid_id(stream_id):
        recorder = _recorder(request, stream_id)
        if name == PLAYLIST:
            directives = _directives(request)
            if directives is not None:
                blocked = await _hold_playlist(recorder, *directives)
        elif name.startswith("part-"):
            await _hold_part(recorder, name)
        found = await asyncio.to_thread(recordings.read, stream_id, name)
    if found is None:
        raise Problem(404, "not-found", "no such recording or file")
    if name == PLAYLIST:
        ended = found.data.rstrip().endswith(b"#EXT-X-ENDLIST")
        cache = _ENDED if ended else _LIVE
        if blocked and not ended and recorder is not None:
            cache = f"public, max-age={round(_HOLD_TARGETS * recorder.config.segment_s)}"
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
