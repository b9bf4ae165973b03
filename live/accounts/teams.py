"""Teams: the accounts that took one grant by invitation (a brand's admins and members, a
creator's moderators), so that they can be listed and removed.

The grant itself lives in the account (live/accounts/accounts.py): it is what authorises.
The team entry is written before the grant and deleted after it, so a crash between the two
leaves at worst a listed member without the grant (removing it again finishes), never a grant
nobody can see or take back.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import redis.asyncio as redis

from checkout.store.replies import text
from live.accounts.accounts import Grant
from live.accounts.invite_rules import BrandRole
from live.accounts.keys import team_key

__all__ = ["Member", "TeamStore"]


@dataclass(frozen=True, slots=True)
class Member:
    account_id: str
    brand_role: BrandRole | None  # for a brand's team; None for other grants
    since_ms: int
    invitation: str  # the invitation it accepted


class TeamStore:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    async def add(self, grant: Grant, member: Member) -> None:
        """Add or update (a later invitation's brand role wins)."""
        record = {"brand_role": member.brand_role, "since_ms": member.since_ms,
                  "invitation": member.invitation}
        await self._client.hset(team_key(str(grant)), member.account_id, orjson.dumps(record))

    async def remove(self, grant: Grant, account_id: str) -> bool:
        return bool(await self._client.hdel(team_key(str(grant)), account_id))

    async def get(self, grant: Grant, account_id: str) -> Member | None:
        raw = await self._client.hget(team_key(str(grant)), account_id)
        return None if raw is None else _member(account_id, raw)

    async def members(self, grant: Grant) -> list[Member]:
        """Oldest first; a team holds at most `team_max_members` (checked on invitation)."""
        raw = await self._client.hgetall(team_key(str(grant)))
        return sorted((_member(text(k), v) for k, v in raw.items()),
                      key=lambda m: (m.since_ms, m.account_id))

    async def count(self, grant: Grant) -> int:
        return int(await self._client.hlen(team_key(str(grant))))


def _member(account_id: str, raw: bytes | str) -> Member:
    record = orjson.loads(raw)
    return Member(account_id, record["brand_role"], int(record["since_ms"]),
                  str(record["invitation"]))
