"""Affiliate links and the signed attribution token that carries a click to the buy.

No third-party cookies: `/l/{code}` redirects to the product with a short-lived signed token
in the URL (and a first-party cookie on our own origin). The newest click overwrites the
older token, so the last click wins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
import redis.asyncio as redis

from checkout.ids import CreatorId, LinkCode, ProductId, new_link_code
from checkout.store.keys import creator_links_key, link_key
from checkout.store.replies import members

__all__ = ["Attribution", "AttributionSigner", "LinkStore"]

_AUDIENCE = "livecart-attribution"
_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Attribution:
    creator: CreatorId
    product: ProductId
    code: LinkCode
    clicked_at: int


class AttributionSigner:
    """Signs clicks with the server secret under an audience of their own."""

    def __init__(self, secret: bytes, window_s: int) -> None:
        self._secret = secret
        self.window_s = window_s

    def sign(self, creator: CreatorId, product: ProductId, code: LinkCode,
             now: int | None = None) -> str:
        now = int(time.time()) if now is None else now
        claims = {"aud": _AUDIENCE, "cr": creator, "pr": product, "lc": code, "iat": now,
                  "exp": now + self.window_s}
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Attribution | None:
        """None for anything expired, forged or malformed: attribution is best effort."""
        if len(token) > 1024:
            return None
        try:
            claims = jwt.decode(token, self._secret, algorithms=[_ALGORITHM], audience=_AUDIENCE,
                                options={"require": ["exp", "iat", "aud"]})
            return Attribution(CreatorId(str(claims["cr"])), ProductId(str(claims["pr"])),
                               LinkCode(str(claims["lc"])), int(claims["iat"]))
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return None


class LinkStore:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    async def create(self, creator: CreatorId, product: ProductId) -> dict[str, Any]:
        for _ in range(5):
            code = new_link_code()
            record: dict[str, Any] = {"code": code, "creator_id": creator, "product_id": product,
                      "created_ms": int(time.time() * 1000)}
            if await self._client.set(link_key(code), orjson.dumps(record), nx=True):
                await self._client.zadd(creator_links_key(creator), {code: record["created_ms"]})
                return record
        raise RuntimeError("could not find a free link code")

    async def get(self, code: LinkCode) -> dict[str, Any] | None:
        raw = await self._client.get(link_key(code))
        return orjson.loads(raw) if raw else None

    async def for_creator(self, creator: CreatorId, *, cursor: int = 0,
                          limit: int = 500) -> list[dict[str, Any]]:
        """The creator's links, newest first: `limit` of them from offset `cursor`."""
        codes = members(await self._client.zrevrange(creator_links_key(creator), cursor,
                                                     cursor + limit - 1))
        if not codes:
            return []
        async with self._client.pipeline(transaction=False) as pipe:  # not MGET: on a
            for code in codes:  # cluster the links live in many slots
                pipe.get(link_key(code))
            raws = await pipe.execute()
        return [orjson.loads(r) for r in raws if r]
