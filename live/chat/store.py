"""A show's chat in Valkey: posting and moderating through one script each
(chat_post.lua, chat_moderate.lua, every rule in one step), and the reads the hub and the
moderation pages need. The design and the key layout: docs/chat.md."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
import redis.asyncio as redis

from checkout.errors import Refused
from checkout.ids import CreatorId, StreamId
from checkout.store.keys import (channel_chat_keys, chat_keys, key_part, stream_events_key,
                                 stream_key, stream_seq_key)
from checkout.store.replies import entries, text, text_hash
from checkout.store.scripts import SCRIPTS, call_script
from live.streams.store import EVENTS_MAXLEN, codes_of, events_channel

__all__ = ["BLOCKED_WORDS_CACHE_S", "ChatStore", "ChatAuthor", "ChatLimits", "ChatRefusal", "Posted", "chat_channel",
           "DEFAULT_SETTINGS", "STAFF_BADGES", "AUDIT_MAX", "CLAIMS_MAX"]

STAFF_BADGES: Final = frozenset({"host", "moderator", "brand"})
BLOCKED_WORDS_CACHE_S: Final = 5.0  # a change of a channel's blocked words applies within this
AUDIT_MAX: Final = 10_000  # moderation actions kept per show (approximate)
CLAIMS_MAX: Final = 10_000  # comment-to-buy claims kept per show for the host (approximate)
PURGE_SLICE: Final = 2_000  # log entries a ban's purge reads per script call
DEFAULT_SETTINGS: Final[dict[str, Any]] = {"slow_s": 0, "followers_only": False,
                                           "keyword": "SOLD", "claim_mode": "cart"}


def chat_channel(stream_id: str) -> str:
    """The shard pub/sub channel of a show's posted (and held) messages, beside its events'
    in the stream's slot."""
    return f"lc:{{s:{key_part(stream_id)}}}:chatlive"


@dataclass(frozen=True, slots=True)
class ChatLimits:
    min_gap_ms: int = 1000
    staff_min_gap_ms: int = 250
    duplicate_window_s: int = 30
    log_max: int = 100_000
    backlog: int = 50
    held_max: int = 1000


@dataclass(frozen=True, slots=True)
class ChatAuthor:
    """Who is chatting: `user` is `<role>:<subject>`; `badges` the staff ones (host,
    moderator, brand: none for a viewer); `buyer` the buyer id whose purchases in the show
    earn the `buyer` badge ('' for none)."""

    user: str
    name: str
    badges: tuple[str, ...] = ()
    buyer: str = ""

    @property
    def staff(self) -> bool:
        return bool(self.badges)


@dataclass(frozen=True, slots=True)
class Posted:
    message: dict[str, Any]
    held: bool


class ChatRefusal(Refused):
    """A message the chat's rules refuse; `until_ms` when waiting would help."""

    def __init__(self, kind: str, detail: str, until_ms: int | None = None) -> None:
        super().__init__(409, kind, detail)
        self.until_ms = until_ms


def _now_ms() -> int:
    return int(time.time() * 1000)


def _settings(raw: dict[str, str]) -> dict[str, Any]:
    return {"slow_s": int(raw.get("slow_s", 0)), "followers_only": raw.get("followers_only") == "1",
            "keyword": raw.get("keyword", DEFAULT_SETTINGS["keyword"]),
            "claim_mode": raw.get("claim_mode", DEFAULT_SETTINGS["claim_mode"])}


def _message(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    return {"id": entry_id.decode(), **orjson.loads(fields[b"m"])}


class ChatStore:
    def __init__(self, client: redis.Redis, limits: ChatLimits) -> None:
        self._client = client
        self.limits = limits
        self._blocked: dict[str, tuple[float, list[str]]] = {}

    async def post(self, stream_id: StreamId, author: ChatAuthor, text: str, dedupe: str, *,
                   follows: bool, held: bool, at_ms: int | None = None) -> Posted:
        """Post (or hold for review) one normalised message; ChatRefusal when a rule says no.
        `at_ms`: when the node received it (its rate is judged by that, not by when a busy
        loop got to it)."""
        k = chat_keys(stream_id)
        reply = orjson.loads(await call_script(
            self._client, SCRIPTS["chat_post"],
            [stream_key(stream_id), k.log, k.cfg, k.bans, k.last, k.held, k.buyers],
            [author.user, author.name, orjson.dumps(list(author.badges)), text, dedupe,
             at_ms or _now_ms(), self.limits.min_gap_ms, self.limits.duplicate_window_s * 1000,
             self.limits.log_max, chat_channel(stream_id), "1" if follows else "0",
             "1" if held else "0", self.limits.held_max, author.buyer,
             self.limits.staff_min_gap_ms]))
        if reply["r"] == "refused":
            raise ChatRefusal(reply["code"], reply["detail"], reply.get("until_ms"))
        return Posted(reply["message"], reply["r"] == "held")

    async def moderate(self, stream_id: StreamId, op: str, arg: dict[str, Any],
                       who: str) -> dict[str, Any]:
        """One moderation action, its event and its audit entry (chat_moderate.lua)."""
        k = chat_keys(stream_id)
        reply: dict[str, Any] = orjson.loads(await call_script(
            self._client, SCRIPTS["chat_moderate"],
            [stream_key(stream_id), stream_seq_key(stream_id), stream_events_key(stream_id),
             k.log, k.cfg, k.bans, k.held, k.audit],
            [op, orjson.dumps(arg), _now_ms(), EVENTS_MAXLEN, events_channel(stream_id),
             chat_channel(stream_id), who, AUDIT_MAX, self.limits.log_max]))
        match reply["r"]:
            case "ok":
                return reply
            case "refused":
                raise Refused(reply["status"], reply["kind"], reply["detail"])
        raise Refused(404, "not-found", f"no stream {stream_id}")

    async def ban(self, stream_id: StreamId, creator: CreatorId, user: str,
                  until_ms: int, scope: Literal["show", "channel"], who: str) -> None:
        """Ban (`until_ms` 0) or time out a user. A channel ban is kept in the creator's
        slot, where every later show's room reads it, and copied into this show's, where
        chat_post.lua checks it in the same step as the message."""
        if scope == "channel":
            await self._client.hset(channel_chat_keys(creator)[0], user, str(until_ms))
        await self.moderate(stream_id, "ban", {"user": user, "until_ms": until_ms,
                                               "scope": scope}, who)
        await self._purge(stream_id, user)

    async def _purge(self, stream_id: StreamId, user: str) -> int:
        """Take a banned user's messages out of the show's log (chat_purge.lua), a slice
        per call; screens already dropped them with the `chat.banned` event."""
        log, cursor, deleted = chat_keys(stream_id).log, "-", 0
        while cursor:
            raw_cursor, n = await call_script(self._client, SCRIPTS["chat_purge"], [log],
                                              [user, cursor, PURGE_SLICE])
            cursor, deleted = text(raw_cursor), deleted + int(n)
        return deleted

    async def unban(self, stream_id: StreamId, creator: CreatorId, user: str,
                    scope: Literal["show", "channel"], who: str) -> None:
        if scope == "channel":
            await self._client.hdel(channel_chat_keys(creator)[0], user)
        await self.moderate(stream_id, "unban", {"user": user, "scope": scope}, who)

    async def channel_ban(self, creator: CreatorId, user: str) -> int | None:
        """The user's ban in the creator's channel: until (ms, 0 for good), None if none
        or over."""
        raw = await self._client.hget(channel_chat_keys(creator)[0], user)
        if raw is None:
            return None
        until = int(raw)
        return until if until == 0 or until > _now_ms() else None

    async def bans(self, stream_id: StreamId, creator: CreatorId) -> dict[str, list[dict[str, Any]]]:
        now = _now_ms()
        show = text_hash(await self._client.hgetall(chat_keys(stream_id).bans))
        channel = text_hash(await self._client.hgetall(channel_chat_keys(creator)[0]))

        def listed(raw: dict[str, str]) -> list[dict[str, Any]]:
            return [{"user": u, "until_ms": int(t) or None} for u, t in sorted(raw.items())
                    if int(t) == 0 or int(t) > now]
        return {"show": listed(show), "channel": listed(channel)}

    async def settings(self, stream_id: StreamId) -> dict[str, Any]:
        return _settings(text_hash(await self._client.hgetall(chat_keys(stream_id).cfg)))

    async def claim_terms(self, stream_id: StreamId) -> tuple[dict[str, Any], dict[str, int]]:
        """What a comment is read against: the chat settings (keyword, claim mode) and
        the show's product codes; one round trip, which the room then keeps."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(chat_keys(stream_id).cfg)
            pipe.hmget(stream_key(stream_id), ["codes", "lineup"])
            cfg, (codes, lineup) = await pipe.execute()
        return _settings(text_hash(cfg)), codes_of(codes, orjson.loads(lineup or b"[]"))

    async def claim_attempt(self, stream_id: StreamId,
                            claim: str) -> tuple[int, dict[str, Any] | None]:
        """A claim's current attempt and what its last recorded attempt logged."""
        n, recorded = await self._client.hmget(chat_keys(stream_id).claim_tries,
                                               [claim, f"{claim}#r"])
        return int(n or 0), orjson.loads(recorded) if recorded else None

    async def claim_step(self, stream_id: StreamId, op: Literal["record", "again", "note"],
                         claim: str, n: int, entry: dict[str, Any] | None = None, *,
                         over: bool = False) -> bool:
        """Record a claim's outcome, or move it on to its next attempt (chat_claim.lua);
        False when attempt `n` is no longer the current one."""
        k = chat_keys(stream_id)
        return bool(await call_script(
            self._client, SCRIPTS["chat_claim"], [k.claim_tries, k.claims],
            [op, claim, n, "1" if over else "0", orjson.dumps({**(entry or {}), "n": n}),
             CLAIMS_MAX]))

    async def claims(self, stream_id: StreamId, limit: int) -> list[dict[str, Any]]:
        """The show's claims and their outcomes, newest first (the host console's list)."""
        out = []
        for _, fields in entries(await self._client.xrevrange(chat_keys(stream_id).claims,
                                                             count=limit)):
            entry = orjson.loads(fields[b"c"])
            entry.pop("n", None)
            out.append(entry)
        return out

    async def room_chat(self, stream_id: StreamId) -> dict[str, Any]:
        """What a joining socket's snapshot carries: the last messages since the last
        clear (oldest first), the announcement and the settings."""
        k = chat_keys(stream_id)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.cfg)
            pipe.xrevrange(k.log, count=self.limits.backlog)
            cfg_raw, recent = await pipe.execute()
        cfg = text_hash(cfg_raw)
        cleared = int(cfg.get("cleared_ms", 0))
        messages = [m for m in (_message(i, f) for i, f in reversed(entries(recent)))
                    if m["at_ms"] > cleared]
        return {"messages": messages, "announcement": cfg.get("announcement"),
                "settings": _settings(cfg)}

    async def history(self, stream_id: StreamId, limit: int,
                      before: str | None = None) -> list[dict[str, Any]]:
        """The show's messages, newest first, older than `before` (a message id)."""
        top = f"({before}" if before else "+"
        return [_message(i, f) for i, f in entries(await self._client.xrevrange(
            chat_keys(stream_id).log, max=top, count=limit))]

    async def held(self, stream_id: StreamId) -> list[dict[str, Any]]:
        raw = await self._client.hgetall(chat_keys(stream_id).held)
        return sorted((orjson.loads(v) for v in raw.values()), key=lambda m: m["at_ms"])

    async def audit(self, stream_id: StreamId, limit: int) -> list[dict[str, Any]]:
        out = []
        for _, fields in entries(await self._client.xrevrange(chat_keys(stream_id).audit,
                                                             count=limit)):
            f = {k.decode(): v.decode() for k, v in fields.items()}
            out.append({"at_ms": int(f["at_ms"]), "by": f["by"], "action": f["action"],
                        "target": f["target"], "detail": f["detail"]})
        return out

    async def blocked_words(self, creator: CreatorId) -> list[str]:
        return sorted(text(m) for m in await self._client.smembers(channel_chat_keys(creator)[1]))

    async def cached_blocked_words(self, creator: CreatorId, now: float) -> list[str]:
        """The channel's blocked words as every message checks them: read at most once per
        `BLOCKED_WORDS_CACHE_S` per creator on this node."""
        cached = self._blocked.get(creator)
        if cached is None or now - cached[0] >= BLOCKED_WORDS_CACHE_S:
            if len(self._blocked) > 10_000:
                self._blocked.clear()
            cached = self._blocked[creator] = (now, await self.blocked_words(creator))
        return cached[1]

    async def set_blocked_words(self, creator: CreatorId, words: list[str]) -> None:
        key = channel_chat_keys(creator)[1]
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if words:
                pipe.sadd(key, *words)
            await pipe.execute()
