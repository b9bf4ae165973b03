"""Accounts: one per person, found by email, carrying the grants that say what it may act as.

An account's id is `u_<32 hex>`; as a buyer its id is its subject (`Principal.subject`), so
the wallet, cart and orders of the buyer routes belong to it. Its grants are `role:subject`
strings (buyer:<own id> always; brand:<brand id>, creator:<creator id>,
moderator:<creator id>, operator:<name> when granted): a session acts as one of them at a
time. Keys: live/accounts/keys.py; the design: docs/accounts.md.
"""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as redis

from checkout.store.replies import text, text_hash
from live.accounts.auth import Role
from live.accounts.emails import email_hash
from live.accounts.keys import account_grants_key, account_key, email_index_key

__all__ = ["ACCOUNT_ID_RE", "Account", "AccountStore", "Grant", "new_account_id"]

ACCOUNT_ID_RE: Final = re.compile(r"u_[0-9a-f]{32}")
_SUBJECT_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # what a token's subject may be
MAX_DISPLAY_NAME: Final = 80
# Unicode categories a name never holds: controls, invisible formatting (bidi overrides
# that flip how a name reads), line and paragraph separators.
_NOT_IN_NAMES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})


def new_account_id() -> str:
    return "u_" + secrets.token_hex(16)


@dataclass(frozen=True, slots=True, order=True)
class Grant:
    """What an account may act as: a role and whose (a brand, a creator, itself)."""

    role: Role
    subject: str

    @classmethod
    def parse(cls, value: str) -> "Grant":
        """`role:subject`, or ValueError. The subject may itself hold `:` (operator names)."""
        role, sep, subject = value.partition(":")
        if not sep or not _SUBJECT_RE.fullmatch(subject):
            raise ValueError("a grant is role:subject")
        return cls(Role(role), subject)

    def __str__(self) -> str:
        return f"{self.role.value}:{self.subject}"


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    email: str
    created_ms: int
    display_name: str
    grants: tuple[Grant, ...]  # sorted; the buyer grant of the account itself among them

    @property
    def buyer_grant(self) -> Grant:
        return Grant(Role.BUYER, self.id)

    def public(self) -> dict[str, Any]:
        """What the account's own pages see of it (its own email included)."""
        return {"id": self.id, "email": self.email, "display_name": self.display_name,
                "created_ms": self.created_ms, "grants": [str(g) for g in self.grants]}


class AccountStore:
    """Accounts in Valkey. Sign-up and sign-in are one call (`sign_in`): the first verified
    sign-in of an email makes its account."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    async def sign_in(self, email: str, *, now_ms: int | None = None) -> tuple[Account, bool]:
        """The account of a (normalised, verified) email, made if there is none; and whether
        this call made it. Two sign-ups of one email race on SET NX of the email's index
        key, so they make one account; the record is then written idempotently, which also
        repairs an index left without its record by a crash between the two writes."""
        created_ms = int(time.time() * 1000) if now_ms is None else now_ms
        candidate = new_account_id()
        index = email_index_key(email_hash(email))
        made = bool(await self._client.set(index, candidate, nx=True))
        existing = None if made else await self._client.get(index)
        if not made and existing is None:  # index keys are never deleted
            raise RuntimeError("the email index key vanished during a sign-in")
        account_id = candidate if existing is None else text(existing)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(account_key(account_id), "email", email)
            pipe.hsetnx(account_key(account_id), "created_ms", created_ms)
            pipe.hsetnx(account_key(account_id), "display_name", "")
            pipe.sadd(account_grants_key(account_id), str(Grant(Role.BUYER, account_id)))
            await pipe.execute()
        account = await self.get(account_id)
        if account is None or account.email != email:  # only a hand-edited keyspace gets here
            raise RuntimeError(f"account {account_id} does not match its email index")
        return account, made

    async def get(self, account_id: str) -> Account | None:
        if not ACCOUNT_ID_RE.fullmatch(account_id):
            return None
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(account_key(account_id))
            pipe.smembers(account_grants_key(account_id))
            record, grants = await pipe.execute()
        if not record:
            return None
        fields = text_hash(record)
        parsed = sorted(Grant.parse(text(g)) for g in grants)
        return Account(account_id, fields["email"], int(fields["created_ms"]),
                       fields.get("display_name", ""), tuple(parsed))

    async def find(self, email: str) -> Account | None:
        """The account of a normalised email, if it has one (never makes one)."""
        account_id = await self._client.get(email_index_key(email_hash(email)))
        return await self.get(text(account_id)) if account_id else None

    async def has_grant(self, account_id: str, grant: Grant) -> bool:
        return bool(await self._client.sismember(account_grants_key(account_id), str(grant)))

    async def grant(self, account_id: str, grant: Grant) -> bool:
        """Add a grant (invitations do); True if it is new."""
        return bool(await self._client.sadd(account_grants_key(account_id), str(grant)))

    async def revoke(self, account_id: str, grant: Grant) -> bool:
        """Remove a grant; an account's own buyer grant stays. True if it was there."""
        if grant == Grant(Role.BUYER, account_id):
            raise ValueError("an account's own buyer grant cannot be revoked")
        return bool(await self._client.srem(account_grants_key(account_id), str(grant)))

    async def set_display_name(self, account_id: str, name: str) -> str:
        """Set the name others see (shops, teams); "" for none. Returns it as kept: NFC,
        trimmed; refused (ValueError) when too long or holding control characters."""
        name = unicodedata.normalize("NFC", name).strip()
        if len(name) > MAX_DISPLAY_NAME:
            raise ValueError(f"a display name is at most {MAX_DISPLAY_NAME} characters")
        if any(unicodedata.category(c) in _NOT_IN_NAMES for c in name):
            raise ValueError("a display name has no control or invisible formatting characters")
        await self._client.hset(account_key(account_id), "display_name", name)
        return name
