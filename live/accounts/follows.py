"""Follows (an account follows a creator) and reminders (an account RSVP'd to a show).

Each lives twice, in two slots: the account's own sorted set (`follows_key`,
`reminders_key`) is the authoritative record, with the per-account cap checked in the
same step (bounded_add.lua); the creator's followers set and the show's RSVP set, in their
own slots, are derived from it so a count or an alert reads one key. A step cannot span
both slots on a cluster, so the order is chosen for what a crash between the two writes
leaves behind:

- follow / RSVP: the account's record first, then the derived set. A crash between them
  leaves the follow recorded but missing from the creator's set (one follower short in
  the count and in the alert); repeating the PUT, which is idempotent, repairs it.
- unfollow / un-RSVP: the derived set first, then the account's record. A crash between
  leaves the account still listing it, and the same repeat repairs it.

So the derived set never holds someone the account's record does not, except for the
moment of a crash; and the alert checks every recipient against the account's record
(`still_wanted`) before mailing, so an interrupted unfollow never mails anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as redis

from checkout.errors import Refused
from checkout.store.replies import members, text
from live.accounts.keys import followers_key, follows_key, reminders_key, rsvps_key
from live.accounts.scripts import call_account_script

__all__ = ["FollowStore", "FollowLimits"]


@dataclass(frozen=True, slots=True)
class FollowLimits:
    follows_per_account: int
    reminders_per_account: int
    reminder_keep_ms: int  # an RSVP is dropped this long after its show's scheduled time


class FollowStore:
    def __init__(self, client: redis.Redis, limits: FollowLimits) -> None:
        self._client = client
        self._limits = limits

    async def follow(self, account: str, creator: str, now_ms: int) -> bool:
        """True if it is new; 409 `follows-full` past the cap. Idempotent."""
        reply = text(await call_account_script(self._client, "bounded_add", [follows_key(account)], [
            self._limits.follows_per_account, creator, now_ms, ""]))
        if reply == "full":
            raise Refused(409, "follows-full", f"an account follows at most "
                          f"{self._limits.follows_per_account} creators; unfollow one first")
        await self._client.sadd(followers_key(creator), account)
        return reply == "ok"

    async def unfollow(self, account: str, creator: str) -> None:
        await self._client.srem(followers_key(creator), account)
        await self._client.zrem(follows_key(account), creator)

    async def follows(self, account: str) -> list[tuple[str, int]]:
        """The creators the account follows, newest first, with when (at most the cap)."""
        rows = cast(list[tuple[bytes, float]], await self._client.zrevrange(
            follows_key(account), 0, -1, withscores=True))
        return [(text(c), int(t)) for c, t in rows]

    async def is_following(self, account: str, creator: str) -> bool:
        return await self._client.zscore(follows_key(account), creator) is not None

    async def followers(self, creator: str) -> int:
        return int(await self._client.scard(followers_key(creator)))

    async def remind(self, account: str, stream: str, scheduled_ms: int, now_ms: int) -> bool:
        """RSVP to a show (the caller checked it is scheduled). True if new; 409
        `reminders-full` past the cap. RSVPs of shows long past are dropped first."""
        reply = text(await call_account_script(self._client, "bounded_add", [reminders_key(account)], [
            self._limits.reminders_per_account, stream, scheduled_ms,
            now_ms - self._limits.reminder_keep_ms]))
        if reply == "full":
            raise Refused(409, "reminders-full", f"an account has at most "
                          f"{self._limits.reminders_per_account} reminders at once")
        await self._client.sadd(rsvps_key(stream), account)
        return reply == "ok"

    async def unremind(self, account: str, stream: str) -> None:
        await self._client.srem(rsvps_key(stream), account)
        await self._client.zrem(reminders_key(account), stream)

    async def reminders(self, account: str) -> list[str]:
        """The shows the account RSVP'd to, soonest first (at most the cap)."""
        return members(await self._client.zrange(reminders_key(account), 0, -1))

    async def audience(self, creator: str, stream: str, limit: int) -> list[str]:
        """Up to `limit` accounts to tell that `stream` is live: the creator's followers and
        the show's RSVPs, each once (read with SSCAN: bounded steps, never one huge reply)."""
        found: dict[str, None] = {}
        for key in (followers_key(creator), rsvps_key(stream)):
            async for member in self._client.sscan_iter(key, count=500):
                found[text(member)] = None
                if len(found) >= limit:
                    return list(found)
        return list(found)

    async def still_wanted(self, accounts: list[str], creator: str, stream: str) -> list[str]:
        """Those of `accounts` whose own record still follows `creator` or holds an RSVP
        for `stream` (the authoritative check before a mail)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.zscore(follows_key(account), creator)
                pipe.zscore(reminders_key(account), stream)
            replies = await pipe.execute()
        return [a for i, a in enumerate(accounts)
                if replies[2 * i] is not None or replies[2 * i + 1] is not None]
