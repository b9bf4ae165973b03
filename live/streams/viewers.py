"""A stream's viewer count as the hub keeps it in Valkey: each node writes its share (the
viewers its sockets serve) with an expiry, and a reader sums the shares still valid. The hub
writes and reads it for the room; the discovery pages read the same number."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["viewer_share", "sum_viewers"]


def viewer_share(count: int, expires_ms: int) -> str:
    """One node's share of a stream's viewers (a field of `stream_viewers_key`)."""
    return f"{count}:{expires_ms}"


def sum_viewers(raw: Mapping[bytes, bytes], now_ms: int) -> int:
    """Counts of nodes whose heartbeat has not expired: a dead node drops out in one beat."""
    total = 0
    for value in raw.values():
        count, _, expires = value.decode().partition(":")
        if int(expires or 0) > now_ms:
            total += int(count)
    return total
