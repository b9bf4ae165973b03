"""Give back the stock of reservations that were neither paid nor declined in time.

Exactly once: the transition script moves an order out of `reserved` only one time, and
the gateway void before it is idempotent, so two nodes sweeping the same order are harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
import redis.asyncio as redis

from checkout.keys import ACTIVE_PRODUCTS, product_keys
from checkout.order_states import IllegalTransition, OrderState
from checkout.orders import OrderBook
from checkout.payments import PaymentError, PaymentGateway
from live.tasks import stop_task

__all__ = ["ReservationSweeper"]

log = logging.getLogger(__name__)

class ReservationSweeper:
    def __init__(self, client: redis.Redis, orders: OrderBook, gateway: PaymentGateway, *,
                 interval_s: float, batch: int = 200) -> None:
        self._client = client
        self._orders = orders
        self._gateway = gateway
        self._interval_s = interval_s
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self.expired = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="reservation-sweeper")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def sweep_once(self, now_ms: int | None = None) -> int:
        """Expire every due reservation; returns how many this call expired."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        count = 0
        for raw in await self._client.smembers(ACTIVE_PRODUCTS):
            product = raw.decode()
            due = await self._client.zrangebyscore(product_keys(product).expiry, "-inf", now_ms,
                                                   start=0, num=self._batch)
            for order_id in due:
                if await self._expire(order_id.decode()):
                    count += 1
        self.expired += count
        return count

    async def _expire(self, order_id: str) -> bool:
        try:
            # Void first: an authorization may have landed just as the hold ran out.
            await self._gateway.void(order_id)
        except PaymentError as exc:
            log.warning("order %s: void before expiry failed (%s); retrying next sweep",
                        order_id, type(exc).__name__)
            return False
        try:
            order, changed = await self._orders.transition(order_id, OrderState.EXPIRED,
                                                           "hold_expired")
        except (IllegalTransition, KeyError):
            return False
        return changed

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed; retrying")
            await asyncio.sleep(self._interval_s)
