"""Finish what a buy left undone: expire holds nobody paid, pay the gateway's debts.

Expiry gives back the stock of reservations neither paid nor declined by their deadline;
the move itself (transition.lua, deadline rule `after`) decides against a payer racing it,
and records a void owed when the order was mid-payment. Voids owed release such holds at
the gateway, and whatever the brand voided. Captures owed settle orders authorized in
immediate-capture mode whose capture the buy could not make (a capture outage, or the node
died between authorizing and capturing), and orders whose capture on shipment the node
could not finish. Refunds owed pay the refunds opened on an order that the gateway has not
answered yet (checkout/fulfilment.py), each under its own number, so once. Each debt was recorded in the same atomic step as
the move that created it, so nothing the gateway holds is ever forgotten.

Each node sweeps only the products of the partitions it holds (checkout/partitions.py), so
no pass reads every product and each product is swept by one node at a time. Exactly once
all the same: the transition script moves an order out of a state only one time, and the
gateway's void and capture are idempotent by order id, so two nodes sweeping the same
order (a lease lost mid-pass) are harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import logging
import time

import redis.asyncio as redis

from checkout.errors import Refused
from checkout.ids import OrderId
from checkout.partitions import Partitions, products_of
from checkout.store.keys import product_keys
from checkout.store.replies import members
from checkout.order_states import IllegalTransition, OrderState
from checkout.orders import OrderBook
from checkout.payments import (GatewayTimeout, GatewayUnavailable, PaymentError,
                               PaymentGateway)
from checkout.tasks import repeat, stop_task

__all__ = ["ReservationSweeper", "FinishRefunds"]

log = logging.getLogger(__name__)

# Pays the refunds of an order still owed; returns how many it settled (Fulfilment).
FinishRefunds = Callable[[OrderId], Awaitable[int]]


class ReservationSweeper:
    def __init__(self, client: redis.Redis, orders: OrderBook, gateway: PaymentGateway, *,
                 partitions: Partitions, interval_s: float, batch: int = 200,
                 capture_retry_ms: int = 30_000,
                 finish_refunds: FinishRefunds | None = None) -> None:
        self._client = client
        self._partitions = partitions
        self._orders = orders
        self._gateway = gateway
        self._interval_s = interval_s
        self._batch = batch
        self._capture_retry_ms = capture_retry_ms
        self._finish_refunds = finish_refunds
        self._task: asyncio.Task[None] | None = None
        self.expired = 0
        self.captured = 0
        self.voided = 0
        self.refunded = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="reservation-sweeper")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def sweep_once(self, now_ms: int | None = None) -> int:
        """Expire every due reservation, pay every void and capture owed, of the products
        of the partitions this node holds; returns how many orders this call moved or
        released."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        expired = captured = voided = refunded = 0
        for product in await products_of(self._client, self._partitions.held()):
            k = product_keys(product)
            for order_id in await self._due(k.expiry, now_ms):
                expired += await self._expire(order_id, now_ms)
            for order_id in await self._due(k.voids, now_ms):
                voided += await self._void(k.voids, order_id, now_ms)
            for order_id in await self._due(k.captures, now_ms):
                captured += await self._capture(k.captures, order_id, now_ms)
            for order_id in await self._due(k.refunds, now_ms):
                refunded += await self._refund(k.refunds, order_id, now_ms)
        self.expired += expired
        self.captured += captured
        self.voided += voided
        self.refunded += refunded
        return expired + captured + voided + refunded

    async def _due(self, key: str, now_ms: int) -> list[OrderId]:
        due = await self._client.zrangebyscore(key, "-inf", now_ms, start=0, num=self._batch)
        return [OrderId(m) for m in members(due)]

    async def _capture(self, key: str, order_id: OrderId, now_ms: int) -> bool:
        order = await self._orders.get(order_id)
        if order is None or order.state is not OrderState.AUTHORIZED:
            await self._client.zrem(key, order_id)  # settled meanwhile; nothing owed
            return False
        # The gateway may refuse: the hold was voided or ran out at the card's end.
        if not await self._pay(self._gateway.capture, "capture", key, order_id, now_ms):
            return False
        try:
            _, changed = await self._orders.transition(order_id, OrderState.PAID, "captured_later")
        except (IllegalTransition, KeyError):
            return False
        if changed:
            log.info("order %s: owed capture made by the sweeper", order_id)
        return changed

    async def _refund(self, key: str, order_id: OrderId, now_ms: int) -> int:
        """Pay what the order's refunds still owe; what the gateway could not answer is
        tried again after the retry interval (settling takes the order off the list)."""
        if self._finish_refunds is None:
            return 0
        try:
            settled = await self._finish_refunds(order_id)
        except KeyError:
            await self._client.zrem(key, order_id)
            return 0
        except Refused as exc:  # the gateway refused: the refund is marked failed
            log.error("order %s: owed refund refused (%s); needs an operator", order_id, exc)
            return 0
        await self._client.zadd(key, {order_id: now_ms + self._capture_retry_ms}, xx=True)
        return settled

    async def _expire(self, order_id: OrderId, now_ms: int) -> bool:
        """Expire the order if its deadline passed; a payer that claimed it in time wins."""
        try:
            _, changed = await self._orders.transition(order_id, OrderState.EXPIRED,
                                                       "hold_expired", now_ms=now_ms)
        except (IllegalTransition, KeyError):
            return False
        return changed

    async def _void(self, key: str, order_id: OrderId, now_ms: int) -> bool:
        # A capture that raced the brand's void landed first: the order gave its stock back,
        # so the money goes back too (a full refund instead of the void).
        release: Callable[[str], Awaitable[object]] = self._gateway.void
        if (await self._gateway.status(order_id)).state == "captured":
            log.warning("order %s: voided after a capture landed; refunding it", order_id)
            release = self._refund_all
        if not await self._pay(release, "void", key, order_id, now_ms):
            return False
        await self._client.zrem(key, order_id)
        return True

    async def _refund_all(self, order_id: str) -> object:
        return await self._gateway.refund(order_id)

    async def _pay(self, call: Callable[[str], Awaitable[object]], what: str, key: str,
                   order_id: str, now_ms: int) -> bool:
        """Make one gateway call a debt owes; on failure push the debt back: by the retry
        interval when the gateway could not answer, by an hour (and an error for an
        operator) when it refused."""
        try:
            await call(order_id)
        except (GatewayTimeout, GatewayUnavailable, asyncio.TimeoutError) as exc:
            log.warning("order %s: owed %s failed (%s); retrying in %d s", order_id, what,
                        type(exc).__name__, self._capture_retry_ms // 1000)
            await self._client.zadd(key, {order_id: now_ms + self._capture_retry_ms}, xx=True)
            return False
        except PaymentError as exc:
            log.error("order %s: owed %s refused (%s: %s); needs an operator", order_id, what,
                      type(exc).__name__, exc)
            await self._client.zadd(key, {order_id: now_ms + 3600_000}, xx=True)
            return False
        return True

    async def _run(self) -> None:
        await repeat(self.sweep_once, self._interval_s, log, "sweep failed; retrying")
