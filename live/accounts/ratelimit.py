"""Fixed-window rate limits in Valkey, shared by every node: sign-in mails per address and
per client, verify calls per challenge (the numbers: live/settings.py, docs/limits.md)."""

from __future__ import annotations

import hashlib
import math

import redis.asyncio as redis

from checkout.errors import Refused
from live.accounts.keys import rate_key

__all__ = ["RateLimited", "RateLimits"]


class RateLimited(Refused):
    """429 with Retry-After: the seconds left in the window."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(429, "too-many-requests", detail, retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}


class RateLimits:
    """One counter per (scope, subject) and window: INCR, and the window's expiry set by the
    first hit (EXPIRE NX), in one transaction. Subjects are hashed (no emails in key names)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    async def hit(self, scope: str, subject: str, *, limit: int, window_s: int,
                  what: str) -> None:
        """Count one hit; raise `RateLimited` if it is past `limit` in this window."""
        key = rate_key(scope, hashlib.sha256(subject.encode("utf-8")).hexdigest())
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_s, nx=True)
            pipe.pttl(key)
            count, _, pttl = await pipe.execute()
        if int(count) > limit:
            retry = max(1, math.ceil(int(pttl) / 1000)) if int(pttl) > 0 else window_s
            raise RateLimited(f"at most {limit} {what} per {window_s} s; retry later", retry)
