"""Valkey replies as the plain types we stored: str, int, and bytes where bytes are sent on.

redis-py types every string in a reply `bytes | str` (one client class serves both values of
`decode_responses`) and some replies as a union over a command's options: a sorted-set range
with or without scores, stream entries with or without the nil ones XCLAIM returns for
deleted entries. Our clients never set `decode_responses` (live/node/services.py `connect`),
so every string arrives as bytes; these functions decode it once (UTF-8) or narrow the
union to the shape the command has as we call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from redis.typing import StreamRangeResponse, XReadGroupResponse, ZSetRangeResponse

__all__ = ["Entry", "text", "text_hash", "int_hash", "members", "entries", "text_entries",
           "stream_reads"]

Entry = tuple[bytes, dict[bytes, bytes]]


def text(value: bytes | str) -> str:
    """One string of a reply, decoded."""
    return value.decode() if isinstance(value, bytes) else value


def text_hash(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash (HGETALL, a stream entry's fields) with names and values decoded."""
    return {text(k): text(v) for k, v in fields.items()}


def int_hash(fields: Mapping[bytes | str, bytes | str]) -> dict[str, int]:
    """A hash of counters: names decoded, values as int."""
    return {text(k): int(v) for k, v in fields.items()}


def members(reply: ZSetRangeResponse) -> list[str]:
    """The members of a sorted-set range (ZRANGE, ZREVRANGE, ZRANGEBYSCORE) without scores."""
    # Without WITHSCORES the reply is a flat list of members; redis-py types it for both.
    return [text(m) for m in cast("list[bytes | str]", reply)]


def entries(reply: StreamRangeResponse | None) -> list[Entry]:
    """XRANGE / XREVRANGE entries as (id, fields) in bytes, for callers that pass them on."""
    # XRANGE replies a list (empty for a missing key) of entries that all exist, so none has
    # a nil id or fields; redis-py's type is shared with XCLAIM, whose entries may be nil.
    return cast("list[Entry]", reply or [])


def text_entries(reply: StreamRangeResponse | None) -> list[tuple[str, dict[str, str]]]:
    """XRANGE / XREVRANGE entries as (id, fields), decoded."""
    return [(eid.decode(), {k.decode(): v.decode() for k, v in fields.items()})
            for eid, fields in entries(reply)]


def stream_reads(reply: XReadGroupResponse | None) -> list[list[Any]]:
    """An XREADGROUP reply as [stream, entries] pairs (nothing when the block timed out)."""
    # redis-py's default `legacy_responses` keeps the RESP2 shape, a list of pairs, on RESP3
    # too; its type also covers the map that RESP3 without it gives.
    return cast("list[list[Any]]", reply or [])
