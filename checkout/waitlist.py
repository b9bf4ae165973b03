"""Waitlists on sold-out items: when stock comes back, the first in line gets a hold."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import redis.asyncio as redis

from checkout.buy import BuyRequest, BuyService, Rejected
from checkout.ids import BuyerId, ProductId, VariantId
from checkout.store.keys import buyer_events_key, key_part, product_keys

__all__ = ["Waitlist", "MAX_WAITLIST"]

log = logging.getLogger(__name__)

MAX_WAITLIST = 100_000  # per product variant
BUYER_EVENTS_MAXLEN = 1000


class Waitlist:
    def __init__(self, client: redis.Redis, buys: BuyService, *, hold_ms: int) -> None:
        self._client = client
        self._buys = buys
        self._hold_ms = hold_ms

    async def join(self, product: ProductId, variant: VariantId, buyer: BuyerId) -> int:
        """Queue the buyer once; returns their place (1 = next)."""
        key = product_keys(product).waitlist(variant)
        position = await self._client.lpos(key, buyer)  # without COUNT: an index or None
        if isinstance(position, int):
            return position + 1
        if await self._client.llen(key) >= MAX_WAITLIST:
            raise OverflowError("waitlist full")
        return int(await self._client.rpush(key, buyer))

    async def serve_quietly(self, product: ProductId, variant: VariantId) -> None:
        """The OrderBook hook: serving the line must never fail the move that freed stock."""
        try:
            if await self._client.llen(product_keys(product).waitlist(variant)):
                await self.serve(product, variant)
        except Exception:
            log.exception("waitlist %s/%s: serving failed; the next return retries", product, variant)

    async def serve(self, product: ProductId, variant: VariantId) -> list[dict[str, Any]]:
        """Hand returned stock to the queue, first come first served; returns the holds."""
        key = product_keys(product).waitlist(variant)
        holds: list[dict[str, Any]] = []
        while True:
            raw = await self._client.lpop(key)  # without a count: one element or None
            if not isinstance(raw, bytes):
                return holds
            buyer = BuyerId(raw.decode())
            request = BuyRequest(buyer=buyer, product=product, variant=variant, quantity=1,
                                 # '/' is outside the Idempotency-Key alphabet: no buyer
                                 # can pre-bind this key and break a restock.
                                 idempotency_key=f"waitlist/{int(time.time() * 1000)}/{len(holds)}",
                                 channel="waitlist")
            try:
                result = await self._buys.reserve(request, hold_ms=self._hold_ms)
            except Rejected as exc:
                if exc.code in ("sold_out", "insufficient_stock"):
                    await self._client.lpush(key, buyer)  # keep their place
                    return holds
                log.info("waitlist %s/%s: %s skipped (%s)", product, variant, buyer, exc.code)
                continue
            except Exception:
                await self._client.lpush(key, buyer)  # a failure of ours: they keep their place
                raise
            order = result.order.public()
            holds.append(order)
            event = orjson.dumps({"type": "waitlist.hold", "order": order})
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xadd(buyer_events_key(buyer), {"event": event},
                          maxlen=BUYER_EVENTS_MAXLEN, approximate=True)
                pipe.publish(f"lc:buyer:{key_part(buyer)}", event)
                await pipe.execute()
