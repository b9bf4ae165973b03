"""Background work split across nodes: each product in one of a fixed number of partitions,
each partition leased to one node at a time.

Why: every node used to sweep and fold every product, so N nodes made N times the scans for
the same work, and on a cluster the one read over every outbox crossed slots. A product
belongs to partition crc32(id) mod `count` (`partition_of`, the one mapping; the count is
fixed for a deployment's data), filed in that partition's set by the catalog. A node
sweeps and folds only the partitions whose lease it holds: taken (SET NX PX with its node
id), renewed and released by lease.lua, never one another node holds. Each node holds at
most its fair share, ceil(count / live nodes), the live nodes being those whose heartbeat
(a sorted set scored by expiry) has not lapsed: a node that joins gets the partitions the
others shed as surplus, and a killed node's partitions are taken over once its leases and
heartbeat expire (the TTL). The same leases give a node the webhook partitions of the same
numbers (owners' webhooks, partitioned by the same mapping: checkout/webhook_events.py
`owner_partition`), so one heartbeat and one fair share cover the sweeper, the aggregator
and webhook delivery.

Two nodes may briefly work on one partition (a node that missed its renewal still thinks it
holds a lease another took): harmless, because every move the sweeper and the aggregator
make is idempotent (transition.lua moves an order out of a state once, apply.lua folds each
order and state once, the gateway's calls are idempotent by order id, and outbox entries go
through a consumer group; webhook attempts are recorded once by hook_done.lua and delivery
is at least once).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis

from checkout.store.keys import NODES, partition_keys
from checkout.store.replies import text
from checkout.store.scripts import SCRIPTS, call_script
from checkout.tasks import repeat, stop_task

__all__ = ["partition_of", "Partitions", "AllPartitions", "PartitionLeases", "products_of",
           "every_product"]

log = logging.getLogger(__name__)


def partition_of(product_id: str, count: int) -> int:
    """The partition of a product: stable across nodes and restarts (not Python's hash)."""
    return zlib.crc32(product_id.encode()) % count


class Partitions(Protocol):
    """What a background loop works on: the partitions this node holds now, of `count`."""

    @property
    def count(self) -> int: ...

    def held(self) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class AllPartitions:
    """Every partition: a lone worker that owns all the work (a node started without its
    background loops, whose sweeps are run by hand; a tool)."""

    count: int

    def held(self) -> list[int]:
        return list(range(self.count))


async def products_of(client: redis.Redis, partitions: Iterable[int]) -> list[str]:
    """The product ids of these partitions (one pipeline of a read per partition)."""
    async with client.pipeline(transaction=False) as pipe:
        for partition in partitions:
            pipe.smembers(partition_keys(partition).products)
        replies = await pipe.execute()
    return sorted(text(p) for reply in replies for p in reply)


async def every_product(client: redis.Redis, count: int) -> list[str]:
    """Every product of every partition (reconciliation, the outbox lag)."""
    return await products_of(client, range(count))


class PartitionLeases:
    """The partitions this node holds, kept by a loop that renews them every third of the
    TTL, sheds what exceeds its fair share and takes free or expired ones up to it."""

    def __init__(self, client: redis.Redis, node: str, *, count: int, ttl_ms: int) -> None:
        self._client = client
        self._node = node
        self._count = count
        self._ttl_ms = ttl_ms
        self._held: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        # Where this node starts looking, so that nodes prefer different partitions.
        start = zlib.crc32(node.encode()) % count
        self._preference = [(start + i) % count for i in range(count)]

    @property
    def count(self) -> int:
        return self._count

    def held(self) -> list[int]:
        return sorted(self._held)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="partition-leases")

    async def close(self) -> None:
        """Stop renewing, give every lease back and leave the live nodes, so the others
        take the partitions now, not after the TTL (a node that dies does neither: its
        leases lapse). A Valkey that cannot be reached leaves them to lapse too."""
        await stop_task(self._task)
        self._task = None
        held, self._held = self.held(), set()
        try:
            for partition in held:
                await self._lease(partition, "release")
            await self._client.zrem(NODES, self._node)
        except Exception:
            log.warning("partition leases not released; they lapse in %d ms", self._ttl_ms,
                        exc_info=True)

    async def rebalance(self) -> list[int]:
        """One pass: heartbeat, renew, then shed or take up to the fair share; returns the
        partitions held afterwards."""
        share = math.ceil(self._count / await self._heartbeat())
        for partition in self.held():
            if not await self._lease(partition, "hold"):
                log.warning("partition %d: lease lost to another node", partition)
                self._held.discard(partition)
        mine = [p for p in self._preference if p in self._held]
        for partition in mine[share:]:  # the least preferred go first
            await self._lease(partition, "release")
            self._held.discard(partition)
        for partition in self._preference:
            if len(self._held) >= share:
                break
            if partition not in self._held and await self._lease(partition, "hold"):
                self._held.add(partition)
        return self.held()

    async def _heartbeat(self) -> int:
        """Say we are alive until one TTL from now, forget the nodes that lapsed; returns
        how many nodes are alive (this one included)."""
        now_ms = int(time.time() * 1000)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(NODES, {self._node: now_ms + self._ttl_ms})
            pipe.zremrangebyscore(NODES, "-inf", f"({now_ms}")
            pipe.zcard(NODES)
            replies = await pipe.execute()
        return max(1, int(replies[-1]))

    async def _lease(self, partition: int, op: str) -> bool:
        reply = await call_script(self._client, SCRIPTS["lease"], [partition_keys(partition).lease],
                                  [self._node, op, self._ttl_ms])
        return bool(reply)

    async def _run(self) -> None:
        # Keep trying: leases that lapse meanwhile go to other nodes.
        await repeat(self.rebalance, self._ttl_ms / 3000, log,
                     "partition lease pass failed; retrying")
