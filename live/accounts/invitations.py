"""Invitations: how brands, creators, their teams and moderators get their grants.

An invitation is mailed to one address as a single-use link `/invite/<token>`. The token is
`<invitation id>.<43 random chars>`; Valkey keeps only the SHA-256 of the random part (like
sessions, the keyspace holds no usable token). It expires (`invite_ttl_s`), can be revoked
until it is accepted, and is accepted only by the account of the address it was sent to.

Accepting is a claim, then the grant: `invite_claim.lua` moves the invitation from pending
to claimed by one account in one step (a second accept, a revoke or the expiry loses the
race cleanly), then the caller writes the team entry and the grant (both idempotent) and
`finish` marks it accepted. A crash after the claim is finished by the same account
accepting again (the claim is its own); nobody else can take it meanwhile. Who may invite
whom: live/accounts/invite_rules.py. Keys: live/accounts/keys.py.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import redis.asyncio as redis

from checkout.errors import Refused
from checkout.store.replies import members, text, text_hash
from live.accounts.accounts import Grant
from live.accounts.auth import Role
from live.accounts.invite_rules import BrandRole
from live.accounts.keys import invitation_key, invitations_sent_key
from live.accounts.mail import Mail
from live.accounts.ratelimit import RateLimits
from live.accounts.scripts import call_account_script

__all__ = ["INVITATION_ID_RE", "TOKEN_PATTERN", "Invitation", "InvitationGone",
           "InvitationLimits", "InvitationStore", "RevokeOutcome", "invitation_mail",
           "describe_grant"]

INVITATION_ID_RE: Final = re.compile(r"inv_[0-9a-f]{24}")
TOKEN_PATTERN: Final = r"^inv_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}$"
_TOKEN_RE: Final = re.compile(TOKEN_PATTERN)

State = Literal["pending", "claimed", "accepted", "revoked"]
RevokeOutcome = Literal["revoked", "already-revoked", "accepted", "unknown"]


class InvitationGone(Refused):
    """410: the invitation was used, revoked or has expired."""

    def __init__(self, why: Literal["used", "revoked", "expired"]) -> None:
        detail = {"used": "this invitation has been accepted already",
                  "revoked": "this invitation was revoked by whoever sent it",
                  "expired": "this invitation has expired; ask for a new one"}[why]
        super().__init__(410, f"invitation-{why}", detail)


@dataclass(frozen=True, slots=True)
class Invitation:
    id: str
    email: str  # normalised
    grant: Grant
    brand_role: BrandRole | None  # for a brand grant: admin or member of its team
    scope: str  # the sender's list (live/accounts/invite_rules.py sender_scope)
    invited_by: str  # the sender's grant, e.g. operator:ops or brand:acme
    inviter_account: str  # the sender's account, "" for a bearer token
    created_ms: int
    expires_ms: int
    state: State
    account: str  # who claimed it, "" before
    accepted_ms: int

    def state_at(self, now_ms: int) -> str:
        """What lists show: pending, accepted (claimed counts), revoked or expired."""
        if self.state == "pending":
            return "expired" if now_ms >= self.expires_ms else "pending"
        return "accepted" if self.state == "claimed" else self.state

    def public(self, now_ms: int) -> dict[str, Any]:
        """What the sender sees in its list (never the token: it was shown once)."""
        return {"id": self.id, "email": self.email, "grant": str(self.grant),
                "brand_role": self.brand_role, "state": self.state_at(now_ms),
                "invited_by": self.invited_by, "created_ms": self.created_ms,
                "expires_ms": self.expires_ms, "accepted_by": self.account or None,
                "accepted_ms": self.accepted_ms or None}


@dataclass(frozen=True, slots=True)
class InvitationLimits:
    ttl_s: int = 7 * 24 * 3600
    keep_s: int = 30 * 24 * 3600
    window_s: int = 3600
    per_scope: int = 50
    per_email: int = 5


class InvitationStore:
    def __init__(self, client: redis.Redis, rates: RateLimits,
                 limits: InvitationLimits) -> None:
        self._client = client
        self._rates = rates
        self.limits = limits
        self.ttl_ms = limits.ttl_s * 1000
        self._keep_ms = limits.keep_s * 1000

    async def count_sending(self, scope: str, email: str) -> None:
        """Count one invitation against its sender's and its address's rates (mail is
        sent on each); `RateLimited` past either."""
        lim = self.limits
        await self._rates.hit("invite-scope", scope, limit=lim.per_scope, window_s=lim.window_s,
                              what="invitations from one sender")
        await self._rates.hit("invite-email", email, limit=lim.per_email, window_s=lim.window_s,
                              what="invitations to one address")

    async def create(self, email: str, grant: Grant, brand_role: BrandRole | None, *,
                     scope: str, invited_by: str, inviter_account: str = "",
                     now_ms: int | None = None) -> tuple[str, Invitation]:
        """A new pending invitation and its token (returned once, kept nowhere)."""
        now = _now(now_ms)
        invitation = Invitation("inv_" + secrets.token_hex(12), email, grant, brand_role, scope,
                                invited_by, inviter_account, now, now + self.ttl_ms, "pending",
                                "", 0)
        secret = secrets.token_urlsafe(32)
        key = invitation_key(invitation.id)
        sent = invitations_sent_key(scope)
        async with self._client.pipeline(transaction=True) as pipe:  # one slot: {iv:<id>}
            pipe.hset(key, mapping={
                "email": email, "grant": str(grant), "brand_role": brand_role or "",
                "scope": scope, "invited_by": invited_by, "inviter_account": inviter_account,
                "created_ms": now, "expires_ms": invitation.expires_ms, "state": "pending",
                "secret": _hash(secret), "account": "", "accepted_ms": 0})
            pipe.pexpireat(key, invitation.expires_ms + self._keep_ms)
            await pipe.execute()
        async with self._client.pipeline(transaction=True) as pipe:  # one slot: {is:<scope>}
            pipe.zadd(sent, {invitation.id: now})
            pipe.zremrangebyscore(sent, "-inf", f"({now - self.ttl_ms - self._keep_ms}")
            await pipe.execute()
        return f"{invitation.id}.{secret}", invitation

    async def get(self, invitation_id: str) -> Invitation | None:
        if not INVITATION_ID_RE.fullmatch(invitation_id):
            return None
        fields = text_hash(await self._client.hgetall(invitation_key(invitation_id)))
        return _parse(invitation_id, fields) if fields else None

    async def find(self, token: str) -> Invitation | None:
        """The invitation a token opens, whatever its state; None for a malformed token, an
        unknown invitation, or the wrong secret (the same answer: nothing to probe)."""
        if not _TOKEN_RE.fullmatch(token):
            return None
        invitation_id, _, secret = token.partition(".")
        fields = text_hash(await self._client.hgetall(invitation_key(invitation_id)))
        if not fields or not hmac.compare_digest(fields["secret"], _hash(secret)):
            return None
        return _parse(invitation_id, fields)

    async def claim(self, token: str, account_id: str, *, now_ms: int | None = None) -> bool:
        """Claim the token's invitation for `account_id`: True if it is this account's now
        (claimed by this call, or by an earlier one of the same account that did not
        finish); False for an unknown token; `InvitationGone` when it is over."""
        if not _TOKEN_RE.fullmatch(token):
            return False
        invitation_id, _, secret = token.partition(".")
        reply = await call_account_script(self._client, "invite_claim",
                                          [invitation_key(invitation_id)],
                                          [_hash(secret), account_id, _now(now_ms)])
        outcome = text(reply[0])
        if outcome in ("ok", "again"):
            return True
        if outcome == "unknown":
            return False
        raise InvitationGone(cast(Literal["used", "revoked", "expired"], outcome))

    async def finish(self, invitation_id: str, *, now_ms: int | None = None) -> None:
        """Mark a claimed invitation accepted (the caller's claim: nobody else writes it)."""
        await self._client.hset(invitation_key(invitation_id),
                                mapping={"state": "accepted", "accepted_ms": _now(now_ms)})

    async def revoke(self, invitation_id: str) -> RevokeOutcome:
        """Pending (expired too) -> revoked; an accepted one stays accepted."""
        if not INVITATION_ID_RE.fullmatch(invitation_id):
            return "unknown"
        reply = await call_account_script(self._client, "invite_revoke",
                                          [invitation_key(invitation_id)], [])
        return cast(RevokeOutcome, text(reply))

    async def delete(self, invitation: Invitation) -> None:
        """Forget an invitation whose mail could not be sent (its link went nowhere)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.delete(invitation_key(invitation.id))
            pipe.zrem(invitations_sent_key(invitation.scope), invitation.id)
            await pipe.execute()

    async def sent(self, scope: str, *, cursor: int, limit: int,
                   now_ms: int | None = None) -> tuple[list[Invitation], int | None]:
        """A sender's invitations, newest first, for `keep_s` after each one's expiry."""
        key = invitations_sent_key(scope)
        await self._client.zremrangebyscore(
            key, "-inf", f"({_now(now_ms) - self.ttl_ms - self._keep_ms}")
        ids = members(await self._client.zrevrange(key, cursor, cursor + limit - 1))
        found = [await self.get(i) for i in ids]
        gone = [i for i, inv in zip(ids, found) if inv is None]
        if gone:  # its record expired a moment before the index was trimmed
            await self._client.zrem(key, *gone)
        return ([inv for inv in found if inv is not None],
                cursor + limit if len(ids) == limit else None)


def describe_grant(grant: Grant, brand_role: BrandRole | None, name: str) -> str:
    """The invitation in words: "an admin of the brand Acme Outfitters" and so on."""
    match grant.role:
        case Role.BRAND:
            return f"{'an admin' if brand_role == 'admin' else 'a member'} of the brand {name}"
        case Role.CREATOR:
            return f"the creator {name}"
        case Role.MODERATOR:
            return f"a moderator of {name}'s streams"
        case Role.OPERATOR:
            return f"an operator of this livecart ({name})"
        case _:
            return str(grant)


def invitation_mail(invitation: Invitation, link: str, what: str) -> Mail:
    days = max(1, round((invitation.expires_ms - invitation.created_ms) / 86_400_000))
    return Mail(to=invitation.email, subject=f"You're invited to livecart as {what}",
                text=(f"You're invited to livecart as {what}.\n\n"
                      f"Open this link to accept:\n{link}\n\n"
                      f"Sign in with this address ({invitation.email}) to accept; the link "
                      f"works once, for {days} day{'s' if days != 1 else ''}.\n"
                      "If you did not expect this invitation, ignore this mail.\n"))


def _parse(invitation_id: str, fields: dict[str, str]) -> Invitation:
    role = fields["brand_role"]
    return Invitation(invitation_id, fields["email"], Grant.parse(fields["grant"]),
                      cast(BrandRole, role) if role else None, fields["scope"],
                      fields["invited_by"], fields["inviter_account"], int(fields["created_ms"]),
                      int(fields["expires_ms"]), cast(State, fields["state"]),
                      fields["account"], int(fields["accepted_ms"]))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _now(now_ms: int | None) -> int:
    return int(time.time() * 1000) if now_ms is None else now_ms
