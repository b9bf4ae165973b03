"""One socket's chat: who it chats as, and its messages checked and posted (docs/chat.md).

The text rules are pure (live/chat/text.py); the rules that need the show's state (live,
bans, rates, slow mode, duplicates) are one script step (chat_post.lua). What needs other
slots (the account's name, whether it follows the creator, a channel ban, the brands in
the lineup) is read here once per socket, or every few seconds for what moderators change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from checkout.ids import CreatorId, ProductId, StreamId
from live.accounts.auth import Principal, Role
from live.chat.store import ChatAuthor, ChatRefusal, Posted
from live.chat.text import blocked_match, check_links, dedupe_key, normalise
from live.hub.handshake import HubServices

__all__ = ["Chatter", "chat_user"]

_FOLLOW_RECHECK_S = 5.0  # a socket's cached follow: a new follower chats within this
_BAN_RECHECK_S = 60.0  # a socket's cached channel ban, unless a ban or an unban in the show
# (its room's `bans_epoch`) says to read it again; this show's own bans are checked in the
# post's script, and a channel ban is copied into the show it is made in


def chat_user(principal: Principal) -> str:
    """The name a user chats as and is banned by: `<role>:<subject>` (docs/chat.md)."""
    return f"{principal.role.value}:{principal.subject}"


@dataclass(slots=True)
class _Cached:
    value: Any = None
    at: float = float("-inf")

    def fresh(self, now: float, ttl_s: float) -> bool:
        return now - self.at < ttl_s


@dataclass(slots=True)
class Chatter:
    services: HubServices
    stream_id: StreamId
    host: CreatorId
    principal: Principal | None
    purchase_mode: str = "instant"  # the stream's: how a comment's claim holds (claims.py)
    author: ChatAuthor | None = None
    _lineup: tuple[str, ...] = ()  # what a brand's badge was judged against
    _follows: _Cached = field(default_factory=_Cached)
    _channel_ban: _Cached = field(default_factory=_Cached)
    _bans_epoch: int = -1

    async def post(self, raw: str, lineup: list[str], received_ms: int,
                   bans_epoch: int = 0) -> Posted:
        """Check and post one message; live/chat/text.py's ChatRefused or ChatRefusal say why
        not. `bans_epoch`: the room's count of ban changes, so a cached channel ban is read
        again after one."""
        if self.principal is None:
            raise ChatRefusal("sign-in-to-chat", "sign in to chat")
        author = await self._current_author(lineup)
        text = normalise(raw)
        check_links(text, author.staff)
        now = time.monotonic()
        if not author.staff:
            await self._check_channel_ban(author, now, bans_epoch)
        words = await self.services.chat.cached_blocked_words(self.host, now)
        held = not author.staff and blocked_match(text, words) is not None
        return await self.services.chat.post(
            self.stream_id, author, text, dedupe_key(text),
            follows=author.staff or await self._following(author, now), held=held,
            at_ms=received_ms)

    async def _current_author(self, lineup: list[str]) -> ChatAuthor:
        """Who the socket chats as: found once, and for a brand again when the lineup
        changes (its badge is for brands whose products are in the show)."""
        if self.author is None or (self.author.user.startswith("brand:")
                                   and tuple(lineup) != self._lineup):
            self._lineup = tuple(lineup)
            self.author = await self._author(lineup)
        return self.author

    async def _author(self, lineup: list[str]) -> ChatAuthor:
        principal = self.principal
        assert principal is not None
        user = chat_user(principal)
        if principal.can_act_for_creator(self.host):
            return ChatAuthor(user, principal.subject if not principal.is_operator else "Operator",
                              ("host",))
        if principal.can_moderate(self.host):
            return ChatAuthor(user, "Moderator", ("moderator",))
        if principal.role is Role.BRAND:
            brand = await self.services.catalog.brand(principal.subject)  # type: ignore[arg-type]
            ours = await self._brand_in_lineup(principal.subject, lineup)
            name = str(brand.get("name", principal.subject)) if brand else principal.subject
            return ChatAuthor(user, name, ("brand",) if ours else ())
        if principal.role is Role.BUYER:
            account = await self.services.accounts.get(principal.subject)
            name = (account.display_name if account and account.display_name
                    else f"viewer {principal.subject[-4:]}")
            return ChatAuthor(user, name, (), buyer=principal.subject)
        # Another channel's creator chats under its own channel's name; another channel's
        # moderator as a viewer: neither is staff here, and no name may look like staff.
        name = (principal.subject if principal.role is Role.CREATOR
                else f"viewer {principal.subject[-4:]}")
        return ChatAuthor(user, name)

    async def _brand_in_lineup(self, brand: str, lineup: list[str]) -> bool:
        for product in lineup:
            record = await self.services.catalog.product(ProductId(product))
            if record is not None and record.get("brand_id") == brand:
                return True
        return False

    async def _following(self, author: ChatAuthor, now: float) -> bool:
        if not self._follows.fresh(now, _FOLLOW_RECHECK_S):
            account = author.buyer or author.user
            self._follows = _Cached(await self.services.follows.is_following(account, self.host),
                                    now)
        return bool(self._follows.value)

    async def _check_channel_ban(self, author: ChatAuthor, now: float, epoch: int) -> None:
        """Refuse a user the creator's channel bans (`banned`) or has timed out
        (`timed-out`, until when)."""
        if epoch != self._bans_epoch or not self._channel_ban.fresh(now, _BAN_RECHECK_S):
            self._bans_epoch = epoch
            self._channel_ban = _Cached(
                await self.services.chat.channel_ban(self.host, author.user), now)
        until: int | None = self._channel_ban.value
        if until is None:
            return
        if until == 0:
            raise ChatRefusal("banned", "you are banned from this creator's chat")
        if until > time.time() * 1000:
            raise ChatRefusal("timed-out", "you are timed out of this creator's chat", until)
