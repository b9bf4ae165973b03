"""durability=replicated survives a failover: `kill -9` a primary mid flash sale, promote its
replica (CLUSTER FAILOVER TAKEOVER), and no acknowledged order is lost.

A cluster of its own (the test swaps roles). Buyers race over HTTP for one product whose
slot the doomed primary serves; once some orders are acknowledged that primary is
SIGKILLed and its replica takes over at once (its supervisor restarts the old primary,
which rejoins as a replica). A request that failed meanwhile is retried with the same
Idempotency-Key until it resolves, as a phone would. Afterwards, read through the cluster:
every acknowledged (201) order exists and is paid, sold == acknowledged units, and
total == available + held + sold.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from checkout.store.keys import product_keys
from conftest import UNIT, Live, make_settings, start_node, stop_node
from live.node.valkey_cluster import LocalCluster
from shop import Buyers, give_wallet, idem, make_brand, make_live_stream, make_product, stock_of

BUYERS = 30
UNITS = 12
IN_FLIGHT = 6
KILL_AFTER_ACKS = 3


async def test_kill_a_primary_mid_sale_loses_no_replicated_order(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path / "cluster") as cluster:
        settings = make_settings(cluster.url, tmp_path / "node", durability="replicated")
        services, server, task, url = await start_node(settings)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
                await _race_through_failover(cluster, Live(url, services, http, ""))
        finally:
            await stop_node(services, server, task)


async def _race_through_failover(cluster: LocalCluster, live: Live) -> None:
    client = live.services.client
    assert isinstance(client, RedisCluster)
    await make_brand(live)
    product = await make_product(live, stock=UNITS)
    stream = await make_live_stream(live, [product["id"]])
    buyers = [f"fo{i}" for i in range(BUYERS)]
    await asyncio.gather(*[give_wallet(live, b) for b in buyers])
    keys = {b: idem() for b in buyers}
    k = product_keys(product["id"])
    owner = client.get_node_from_key(k.stock)
    assert owner is not None
    primary = next(n for n in cluster.nodes if n.port == int(owner.port))
    replica = await cluster.replica_of(int(owner.port))

    phones = Buyers(live, product["id"], stream["id"], in_flight=IN_FLIGHT,
                    ack_goal=KILL_AFTER_ACKS)

    async def fail_over() -> int:
        await asyncio.wait_for(phones.enough_acked.wait(), 30 * UNIT)
        acked_at_kill = len(phones.acked)
        primary.kill_hard()
        promote = redis.Redis(host=replica.host, port=replica.port)
        try:
            await promote.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        finally:
            await promote.aclose()
        return acked_at_kill

    tasks = [asyncio.create_task(phones.resolve(b, keys[b])) for b in buyers]
    killer = asyncio.create_task(fail_over())
    replies = await asyncio.wait_for(asyncio.gather(*tasks), 60 * UNIT)
    acked_at_kill = await killer
    assert acked_at_kill < UNITS  # the kill came mid-sale

    acked = phones.by_buyer()
    codes = [r.status_code for r in replies]
    assert set(codes) <= {201, 409}, codes
    assert codes.count(201) == len(acked) == UNITS
    fresh = RedisCluster.from_url(cluster.url)  # reads the promoted replica
    try:
        for b, order in acked.items():
            stored = await fresh.hgetall(k.order(str(order["id"])))
            assert stored, f"acknowledged order {order['id']} of {b} is gone"
            assert stored[b"state"] == b"paid"
    finally:
        await fresh.aclose()
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["held"], levels["sold"]) == (0, 0, UNITS)
    assert levels["total"] == levels["available"] + levels["held"] + levels["sold"]
