"""Page sessions: a random token in an HttpOnly cookie, the session in Valkey under the
token's SHA-256 (so the keyspace does not hold a usable token).

A session names its account, when it began and was last seen, its CSRF secret and the grant
it acts as. It ends after `idle_s` unused (its key's expiry, pushed on at most once a
`touch_every_ms` so reads stay reads) and `max_s` after sign-in in any case, and at
sign-out. A new sign-in always makes a new session (fixation-safe: the caller ends any
session the browser had before). Each account keeps the ids of its sessions, so signing out
everywhere (a lost phone, a shared computer) ends them all. The cookie and CSRF checks live in the web layer
(live/web/session_auth.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, replace
from typing import Final

import redis.asyncio as redis

from checkout.store.replies import members, text_hash
from live.accounts.accounts import Grant
from live.accounts.keys import account_sessions_key, session_key
from live.accounts.scripts import call_account_script

__all__ = ["SESSION_TOKEN_RE", "Session", "SessionStore", "token_hash"]

SESSION_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # the token's SHA-256: names the session in Valkey and logs, never the token
    account_id: str
    created_ms: int
    seen_ms: int
    csrf: str
    grant: Grant  # what the session acts as now
    ends_ms: int  # the absolute end (created + max)


class SessionStore:
    def __init__(self, client: redis.Redis, *, idle_s: int, max_s: int,
                 touch_every_ms: int = 60_000) -> None:
        self._client = client
        self.idle_ms = idle_s * 1000
        self.max_ms = max_s * 1000
        self._touch_every_ms = touch_every_ms

    async def create(self, account_id: str, grant: Grant, *,
                     now_ms: int | None = None) -> tuple[str, Session]:
        """A new session; returns the cookie's token (shown once, kept nowhere) with it."""
        now = _now(now_ms)
        token = secrets.token_urlsafe(32)
        session = Session(token_hash(token), account_id, now, now, secrets.token_urlsafe(32),
                          grant, now + self.max_ms)
        key = session_key(session.id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"account": account_id, "created_ms": now, "seen_ms": now,
                                    "csrf": session.csrf, "grant": str(grant)})
            pipe.pexpire(key, self._expiry_ms(session, now))
            await pipe.execute()
        index = account_sessions_key(account_id)  # another slot: its own step
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(index, "-inf", now)  # the ones that ended at their latest
            pipe.zadd(index, {session.id: session.ends_ms})
            pipe.pexpire(index, self.max_ms)
            await pipe.execute()
        return token, session

    async def get(self, token: str, *, now_ms: int | None = None) -> Session | None:
        """The live session of a cookie's token, or None (malformed, unknown, ended)."""
        if not SESSION_TOKEN_RE.fullmatch(token):
            return None
        now = _now(now_ms)
        key = session_key(token_hash(token))
        fields = text_hash(await self._client.hgetall(key))
        if not fields:
            return None
        session = Session(token_hash(token), fields["account"], int(fields["created_ms"]),
                          int(fields["seen_ms"]), fields["csrf"], Grant.parse(fields["grant"]),
                          int(fields["created_ms"]) + self.max_ms)
        if now >= session.ends_ms:
            await self._client.delete(key)
            return None
        if now - session.seen_ms >= self._touch_every_ms:
            if not await self._update(session, now, seen_ms=now):
                return None
            session = replace(session, seen_ms=now)
        return session

    async def act_as(self, session: Session, grant: Grant, *,
                     now_ms: int | None = None) -> Session | None:
        """The session acting as `grant` (the caller checked the account has it); None if
        the session ended meanwhile."""
        now = _now(now_ms)
        if not await self._update(session, now, grant=str(grant), seen_ms=now):
            return None
        return replace(session, grant=grant, seen_ms=now)

    async def end(self, session: Session) -> None:
        await self._client.delete(session_key(session.id))
        await self._client.zrem(account_sessions_key(session.account_id), session.id)

    async def end_all(self, account_id: str) -> int:
        """End every session of the account (this one too); how many were still live."""
        index = account_sessions_key(account_id)
        ids = members(await self._client.zrange(index, 0, -1))
        ended = 0
        for session_id in ids:  # one key per slot: one by one
            ended += await self._client.delete(session_key(session_id))
        if ids:
            await self._client.zrem(index, *ids)
        return ended

    async def _update(self, session: Session, now: int, **fields: str | int) -> bool:
        args: list[str | int] = [self._expiry_ms(session, now)]
        for name, value in fields.items():
            args += [name, value]
        return bool(await call_account_script(self._client, "touch",
                                              [session_key(session.id)], args))

    def _expiry_ms(self, session: Session, now: int) -> int:
        return max(1, min(self.idle_ms, session.ends_ms - now))


def _now(now_ms: int | None) -> int:
    return int(time.time() * 1000) if now_ms is None else now_ms
