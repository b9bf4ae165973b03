"""The stream a request's `{stream}` path parameter names: 404 when there is none, 403
when the caller must host it and does not. One place, for every router under /streams."""

from __future__ import annotations

from typing import Any

from checkout.ids import StreamId, is_valid_id
from live.web.api import Call
from live.web.problems import Problem

__all__ = ["stream_of", "hosted_stream"]


async def stream_of(call: Call[Any]) -> dict[str, Any]:
    stream_id = StreamId(call.param("stream"))
    stream = await call.services.streams.get(stream_id) if is_valid_id(stream_id) else None
    if stream is None:
        raise Problem(404, "not-found", "no such stream")
    return stream


async def hosted_stream(call: Call[Any]) -> dict[str, Any]:
    """The stream, if the caller hosts it (or is an operator)."""
    stream = await stream_of(call)
    if not call.need_principal().can_act_for_creator(stream["creator_id"]):
        raise Problem(403, "forbidden", "only the stream's host can do that")
    return stream
