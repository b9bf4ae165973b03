"""An account's passkeys (WebAuthn credentials) in Valkey: what verifying a signature needs
(the public key, the signature counter) and what the account's page shows (a name, when
added, when last used).

A passkey lives under its account's hash tag, keyed by the SHA-256 of its raw credential
id; an index maps the credential to its account for a sign-in that names no account
(discoverable credentials). One credential belongs to one account. Adding keeps the
account under its cap and using one checks the counter, each in one script
(live/accounts/lua/passkey_add.lua, passkey_use.lua). The ceremonies that create and use
passkeys are in live/accounts/passkey_auth.py.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from checkout.errors import Refused
from checkout.store.replies import members, text, text_hash
from live.accounts.keys import passkey_key, passkey_owner_key, passkeys_key
from live.accounts.scripts import call_account_script

__all__ = ["Passkey", "PasskeyRefused", "PasskeyStore", "b64url", "credential_hash"]


class PasskeyRefused(Refused):
    """A passkey step the rules turn down (limits, a response that does not verify)."""


def b64url(raw: bytes) -> str:
    """Base64url without padding, as WebAuthn's JSON forms write bytes."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def credential_hash(credential_id: str) -> str:
    """The key name of a credential: SHA-256 (hex) of its base64url id, a fixed length
    however long the authenticator made the id (up to 1023 bytes)."""
    return hashlib.sha256(credential_id.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class Passkey:
    id: str  # the credential id, base64url (what the browser names it by)
    account_id: str
    public_key: bytes  # COSE_Key, as the authenticator made it
    sign_count: int
    transports: tuple[str, ...]  # hints for the browser: internal, hybrid, usb, ...
    created_ms: int
    last_used_ms: int  # 0: never used since it was added
    name: str
    backed_up: bool  # synced (a multi-device passkey) rather than bound to one device

    def public(self) -> dict[str, Any]:
        """What the account's own page lists (never the key)."""
        return {"id": self.id, "name": self.name, "created_ms": self.created_ms,
                "last_used_ms": self.last_used_ms or None, "transports": list(self.transports),
                "backed_up": self.backed_up}


class PasskeyStore:
    def __init__(self, client: redis.Redis, *, max_per_account: int) -> None:
        self._client = client
        self.max_per_account = max_per_account

    async def add(self, passkey: Passkey) -> None:
        """Store a new passkey: 409 `passkey-exists` if its credential is registered already
        (to this account or another), 409 `passkeys-full` at the account's cap."""
        cred = credential_hash(passkey.id)
        owner = passkey_owner_key(cred)
        if not await self._client.set(owner, passkey.account_id, nx=True):
            raise PasskeyRefused(409, "passkey-exists", "this passkey is registered already")
        fields: list[str | int] = []
        for name, value in _fields(passkey).items():
            fields += [name, value]
        outcome = text(await call_account_script(
            self._client, "passkey_add",
            [passkeys_key(passkey.account_id), passkey_key(passkey.account_id, cred)],
            [self.max_per_account, cred, passkey.created_ms, *fields]))
        if outcome == "ok":
            return
        await self._client.delete(owner)  # ours: SET NX above made it
        if outcome == "full":
            raise PasskeyRefused(409, "passkeys-full", f"an account has at most "
                                 f"{self.max_per_account} passkeys; remove one first")
        raise PasskeyRefused(409, "passkey-exists", "this passkey is registered already")

    async def list(self, account_id: str) -> list[Passkey]:
        """The account's passkeys, oldest first."""
        hashes = members(await self._client.zrange(passkeys_key(account_id), 0, -1))
        if not hashes:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for cred in hashes:
                pipe.hgetall(passkey_key(account_id, cred))
            records = await pipe.execute()
        return [_passkey(account_id, text_hash(r)) for r in records if r]

    async def count(self, account_id: str) -> int:
        return int(await self._client.zcard(passkeys_key(account_id)))

    async def get(self, account_id: str, credential_id: str) -> Passkey | None:
        record = await self._client.hgetall(passkey_key(account_id, credential_hash(credential_id)))
        return _passkey(account_id, text_hash(record)) if record else None

    async def owner(self, credential_id: str) -> str | None:
        """The account a credential is registered to, if any."""
        account = await self._client.get(passkey_owner_key(credential_hash(credential_id)))
        return text(account) if account else None

    async def remove(self, account_id: str, credential_id: str) -> bool:
        """Remove one of the account's passkeys; False if the account has no such passkey
        (another account's is not this account's to remove, and stays)."""
        cred = credential_hash(credential_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(passkey_key(account_id, cred))
            pipe.zrem(passkeys_key(account_id), cred)
            deleted, _ = await pipe.execute()
        if not deleted:
            return False
        owner = passkey_owner_key(cred)
        # The index names this account (SET NX keeps any other from taking it meanwhile).
        indexed = await self._client.get(owner)
        if indexed is not None and text(indexed) == account_id:
            await self._client.delete(owner)
        return True

    async def record_use(self, passkey: Passkey, sign_count: int, now_ms: int) -> None:
        """Record a verified assertion: its sign count must go up when counters are in use
        (403 `passkey-replayed` otherwise), checked and stored in one step."""
        reply = await call_account_script(
            self._client, "passkey_use",
            [passkey_key(passkey.account_id, credential_hash(passkey.id))], [sign_count, now_ms])
        outcome = text(reply[0])
        if outcome == "regressed":
            raise PasskeyRefused(403, "passkey-replayed",
                                 "this passkey's signature counter did not go up: a replayed "
                                 "answer or a copied authenticator; it was refused")
        if outcome == "gone":
            raise PasskeyRefused(400, "passkey-rejected", "the passkey could not be verified")


def _fields(passkey: Passkey) -> dict[str, str | int]:
    return {"id": passkey.id, "public_key": b64url(passkey.public_key),
            "sign_count": passkey.sign_count, "transports": ",".join(passkey.transports),
            "created_ms": passkey.created_ms, "last_used_ms": passkey.last_used_ms,
            "name": passkey.name, "backed_up": int(passkey.backed_up)}


def _passkey(account_id: str, fields: dict[str, str]) -> Passkey:
    key = fields["public_key"]
    return Passkey(
        id=fields["id"], account_id=account_id,
        public_key=base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)),
        sign_count=int(fields["sign_count"]),
        transports=tuple(t for t in fields["transports"].split(",") if t),
        created_ms=int(fields["created_ms"]), last_used_ms=int(fields["last_used_ms"]),
        name=fields["name"], backed_up=fields["backed_up"] == "1")
