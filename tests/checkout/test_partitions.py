"""Background work split across nodes (checkout/partitions.py): two real nodes on one Valkey
share the partitions, each product's expired hold is expired by exactly one of them, and a
node that dies without giving its leases back loses them to the live one after the TTL."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as redis
from conftest import UNIT, Live, make_settings, start_node, stop_node
from shop import eventually, give_wallet, idem, make_brand, make_live_stream, make_product

from checkout.partitions import PartitionLeases, partition_of
from checkout.store.keys import NODES, partition_keys
from live.node.valkey_server import EmbeddedValkey

COUNT = 16
LEASE_S = 3.0  # renewed every second: a loaded machine keeps them


@asynccontextmanager
async def node(valkey: EmbeddedValkey, data_dir: Path, port: int) -> AsyncIterator[Live]:
    """A node whose id (host:port) is its own: the port names it, the server binds port 0."""
    settings = make_settings(valkey, data_dir, port=port, partitions=COUNT,
                             partition_lease_s=LEASE_S)
    services, server, task, url = await start_node(settings)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            yield Live(url, services, http, "")
    finally:
        await stop_node(services, server, task)


def held(live: Live) -> set[int]:
    assert live.services.leases is not None
    return set(live.services.leases.held())


async def hold(live: Live, stream: dict[str, Any], product: dict[str, Any]) -> None:
    r = await live.http.post("/api/v1/cart/items", headers={
        **live.auth("buyer", "bob"), "Idempotency-Key": idem()},
        json={"product_id": product["id"], "stream_id": stream["id"]})
    assert r.status_code == 201, r.text


async def test_two_nodes_split_the_partitions_and_each_hold_expires_on_one(
        valkey: EmbeddedValkey, rclient: redis.Redis, tmp_path: Path) -> None:
    async with node(valkey, tmp_path / "a", 1) as a, node(valkey, tmp_path / "b", 2) as b:
        await eventually(lambda: len(held(a)) == len(held(b)) == COUNT // 2
                         and held(a) | held(b) == set(range(COUNT)), "the partitions split")
        await make_brand(a)
        products: list[dict[str, Any]] = []
        while {partition_of(p["id"], COUNT) in held(a) for p in products} != {True, False}:
            products.append(await make_product(a, sku=f"SKU-{len(products)}"))
        stream = await make_live_stream(a, [p["id"] for p in products],
                                        purchase_mode="cart_hold")
        await give_wallet(a, "bob")
        for product in products:
            await hold(a, stream, product)
        mine = [sum(partition_of(p["id"], COUNT) in held(live) for p in products)
                for live in (a, b)]
        before = [live.services.sweeper.expired for live in (a, b)]
        later = int(time.time() * 1000) + 10**9
        for live in (a, b):  # a's pass first: without partitions it expired every hold
            await live.services.sweeper.sweep_once(now_ms=later)
        expired = [live.services.sweeper.expired - n for live, n in zip((a, b), before)]
        assert expired == mine and 0 not in mine and sum(mine) == len(products)


async def test_a_dead_nodes_partitions_go_to_the_live_one_after_the_lease(
        valkey: EmbeddedValkey, rclient: redis.Redis, tmp_path: Path) -> None:
    async with node(valkey, tmp_path / "a", 1) as a:
        assert held(a) == set(range(COUNT))  # alone: every partition, from the start
        ghost = PartitionLeases(rclient, "ghost", count=COUNT, ttl_ms=int(LEASE_S * 1000))

        async def ghost_has_its_share() -> bool:  # a's loop sheds what the ghost takes
            return len(await ghost.rebalance()) == COUNT // 2 and not held(a) & set(ghost.held())
        await eventually(ghost_has_its_share, "a joining node gets its share")
        assert len(held(a)) == COUNT // 2
        await make_brand(a)
        products = [await make_product(a)]
        while partition_of(products[-1]["id"], COUNT) not in ghost.held():
            products.append(await make_product(a, sku=f"SKU-{len(products)}"))
        stream = await make_live_stream(a, [products[-1]["id"]], purchase_mode="cart_hold")
        await give_wallet(a, "bob")
        await hold(a, stream, products[-1])
        later = int(time.time() * 1000) + 10**9
        assert await a.services.sweeper.sweep_once(now_ms=later) == 0  # the ghost's product

        # The ghost dies: no renewal, no release. Its leases and heartbeat lapse.
        await eventually(lambda: held(a) == set(range(COUNT)), "a takes every partition",
                         timeout_s=10 * LEASE_S)
        assert await a.services.sweeper.sweep_once(now_ms=later) == 1


async def test_a_clean_stop_gives_the_partitions_back_at_once(
        valkey: EmbeddedValkey, rclient: redis.Redis, tmp_path: Path) -> None:
    async with node(valkey, tmp_path / "a", 1) as a:
        async with node(valkey, tmp_path / "b", 2) as b:
            await eventually(lambda: len(held(b)) == COUNT // 2, "b gets its share")
            gone = held(b)
        holders = {await rclient.get(partition_keys(p).lease) for p in gone}
        assert holders <= {None, f"{socket.gethostname()}:1".encode()}, holders
        assert await rclient.zrange(NODES, 0, -1) == [f"{socket.gethostname()}:1".encode()]
        await eventually(lambda: held(a) == set(range(COUNT)), "a takes them back")
