"""A brand's API keys: long-lived credentials for its own systems (an ERP syncing stock, a
warehouse marking orders shipped), scoped, shown once, hashed at rest, revocable.

A key reads `lck_<id>_<secret>`: the id names the record, the secret (32 random bytes) is
kept only as its SHA-256, compared in constant time (a secret of that entropy needs no slow
hash: nothing can be guessed from the digest). A key acts as its brand, within its scopes
only (`tag:read` or `tag:write` of the API's endpoints, checked in live/web/api.py), and
never manages keys or teams. Its last use is recorded at most once a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson
import redis.asyncio as redis

from checkout.store.replies import members, text, text_hash
from live.accounts.auth import AuthError, Principal, Role
from live.accounts.keys import api_key_key, brand_api_keys_key
from live.accounts.scripts import call_account_script

__all__ = ["ApiKey", "ApiKeyStore", "KEY_PREFIX", "BRAND_KEY_SCOPES", "is_api_key"]

KEY_PREFIX: Final = "lck_"
_KEY_RE: Final = re.compile(r"lck_([A-Za-z0-9]{16})_([A-Za-z0-9_-]{43})")
# What a brand's key may be given: its catalog, its orders, its reports.
BRAND_KEY_SCOPES: Final = frozenset({"catalog:read", "catalog:write", "orders:read",
                                     "orders:write", "reports:read"})
_TOUCH_EVERY_MS: Final = 60_000


def is_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    brand: str
    name: str
    scopes: frozenset[str]
    created_ms: int
    created_by: str  # the account that made it, or the token's subject
    last_used_ms: int  # 0: never

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "scopes": sorted(self.scopes),
                "created_ms": self.created_ms, "created_by": self.created_by,
                "last_used_ms": self.last_used_ms or None,
                "prefix": f"{KEY_PREFIX}{self.id}_"}


class ApiKeyStore:
    def __init__(self, client: redis.Redis, *, max_per_brand: int) -> None:
        self._client = client
        self.max_per_brand = max_per_brand

    async def create(self, brand: str, name: str, scopes: frozenset[str], created_by: str, *,
                     now_ms: int | None = None) -> tuple[str, ApiKey]:
        """A new key and its secret form (shown once, kept nowhere). ValueError: a scope a
        brand's key cannot have; OverflowError: the brand has `max_per_brand` already."""
        if not scopes or not scopes <= BRAND_KEY_SCOPES:
            raise ValueError(f"scopes are some of {', '.join(sorted(BRAND_KEY_SCOPES))}")
        now = _now(now_ms)
        key = ApiKey(secrets.token_hex(8), brand, name, scopes, now, created_by, 0)
        secret = secrets.token_urlsafe(32)
        # The record first: a crash before the index leaves a key nobody was shown.
        await self._client.hset(api_key_key(key.id), mapping={
            "brand": brand, "name": name, "scopes": orjson.dumps(sorted(scopes)).decode(),
            "hash": _digest(secret), "created_ms": now, "created_by": created_by})
        reply = text(await call_account_script(self._client, "bounded_add", [
            brand_api_keys_key(brand)], [self.max_per_brand, key.id, now, ""]))
        if reply == "full":
            await self._client.delete(api_key_key(key.id))
            raise OverflowError(f"a brand has at most {self.max_per_brand} API keys")
        return f"{KEY_PREFIX}{key.id}_{secret}", key

    async def list(self, brand: str) -> list[ApiKey]:
        ids = members(await self._client.zrange(brand_api_keys_key(brand), 0, -1))
        keys = [await self._get(i) for i in ids]
        return [k for k in keys if k is not None and k.brand == brand]

    async def revoke(self, brand: str, key_id: str) -> bool:
        """Delete a key of this brand's (its next use is refused); False if it has none such."""
        key = await self._get(key_id)
        if key is None or key.brand != brand:
            return False
        await self._client.delete(api_key_key(key_id))  # refused from here on
        await self._client.zrem(brand_api_keys_key(brand), key_id)
        return True

    async def verify(self, token: str, *, now_ms: int | None = None) -> Principal:
        """The brand a key acts as, within its scopes; AuthError if it is no live key."""
        match = _KEY_RE.fullmatch(token)
        if match is None:
            raise AuthError("malformed_api_key")
        key_id, secret = match.groups()
        fields = text_hash(await self._client.hgetall(api_key_key(key_id)))
        if not fields or not hmac.compare_digest(fields["hash"], _digest(secret)):
            raise AuthError("unknown_api_key")
        now = _now(now_ms)
        if now - int(fields.get("last_used_ms", 0)) >= _TOUCH_EVERY_MS:
            await self._client.hset(api_key_key(key_id), "last_used_ms", now)
        return Principal(role=Role.BRAND, subject=fields["brand"], token_id=f"key:{key_id}",
                         expires_at=0, scopes=frozenset(orjson.loads(fields["scopes"])))

    async def _get(self, key_id: str) -> ApiKey | None:
        fields = text_hash(await self._client.hgetall(api_key_key(key_id)))
        if not fields:
            return None
        return ApiKey(key_id, fields["brand"], fields["name"],
                      frozenset(orjson.loads(fields["scopes"])), int(fields["created_ms"]),
                      fields["created_by"], int(fields.get("last_used_ms", 0)))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _now(now_ms: int | None) -> int:
    return int(time.time() * 1000) if now_ms is None else now_ms
