"""Webhooks on a real 3-primary, 3-replica Valkey Cluster (docs/webhooks.md "Partitions"):
each owner's webhooks live in its partition's slot, so two brands' deliveries are on two
shards, delivered by the nodes holding their partitions; a node killed mid-delivery hands
its partitions to another, which sends the delivery again and then the next one about the
same order, in order. The cluster answers CROSSSLOT to any script whose keys span slots;
each test ends by asserting no primary counted one.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
from redis.asyncio.cluster import RedisCluster
from standardwebhooks.webhooks import Webhook

from conftest import TEST_SECRET, UNIT, Live, make_settings, start_node, stop_node
from hook_receiver import Receiver, receiver  # noqa: F401 - the fixture
from node_process import free_port, serve_process
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product
from test_cluster import cclient, cluster, crossslot_errors, slot_checked  # noqa: F401
from test_webhook_migration import legacy_emit, legacy_endpoint

from checkout.store.keys import LEGACY_HOOKS as OLD
from checkout.store.keys import hook_keys
from checkout.store.scripts import load_all
from checkout.webhook_events import OPERATOR_OWNER, EventType, brand_owner, owner_partition
from live.accounts.auth import TokenAuthority
from live.node.valkey_cluster import LocalCluster
from live.webhooks.dispatcher import GROUP

COUNT = 16
LEASE_S = 3.0  # renewed every second: a loaded machine keeps them
FAST = dict(webhook_allow_private=True, webhook_retry_schedule_s=(0.05, 0.05),
            webhook_retry_jitter=0.0, webhook_claim_idle_s=1.0, partitions=COUNT,
            partition_lease_s=LEASE_S)


@asynccontextmanager
async def node(cluster: LocalCluster, data_dir: Path, port: int) -> AsyncIterator[Live]:
    """A node on the cluster whose id (host:port) is its own; every script call checked to
    name keys of one slot."""
    services, server, task, url = await start_node(
        make_settings(cluster.url, data_dir, port=port, **FAST))
    services.client.evalsha = slot_checked(services.client.evalsha)  # type: ignore[method-assign]
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            yield Live(url, services, http, "")
    finally:
        await stop_node(services, server, task)


def held(live: Live) -> set[int]:
    assert live.services.leases is not None
    return set(live.services.leases.held())


def partition(brand: str) -> int:
    return owner_partition(brand_owner(brand), COUNT)


async def register(live: Live, url: str, events: list[str], brand: str | None) -> dict[str, Any]:
    path = f"/api/v1/brands/{brand}/webhooks" if brand else "/api/v1/webhooks"
    auth = live.auth("brand", brand) if brand else live.auth("operator", "ops")
    r = await live.http.post(path, headers=auth, json={"url": url, "events": events})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def sell(live: Live, brand: str, buyer: str) -> str:
    product = await make_product(live, brand, sku=f"{brand}-1")
    stream = await make_live_stream(live, [product["id"]], creator=f"{brand}-host")
    await give_wallet(live, buyer)
    r = await buy(live, buyer, product["id"], stream=stream["id"])
    assert r.status_code == 201, r.text
    return str(r.json()["order"]["id"])


async def test_two_brands_webhooks_are_on_two_shards_and_delivered_by_their_partitions_nodes(
        cluster: LocalCluster, cclient: RedisCluster, receiver: Receiver,
        tmp_path: Path) -> None:
    async with node(cluster, tmp_path / "a", 1) as a, node(cluster, tmp_path / "b", 2) as b:
        await eventually(lambda: len(held(a)) == len(held(b)) == COUNT // 2
                         and held(a) | held(b) == set(range(COUNT)), "the partitions split")

        async def shard(brand: str) -> str:
            found = cclient.get_node_from_key(hook_keys(partition(brand)).outbox)
            assert found is not None
            return str(found.name)

        # A brand whose webhooks a's partitions hold, one whose b's do, on two shards.
        names = [f"brand{i}" for i in range(200)]
        first = next(n for n in names if partition(n) in held(a))
        second = ""
        for name in names:
            if partition(name) in held(b) and await shard(name) != await shard(first):
                second = name
                break
        assert second, "no brand of b's partitions on another shard"
        for brand in (first, second):
            await make_brand(a, brand)
        endpoints = {brand: await register(a, f"{receiver.url}/{brand}", ["order.paid"], brand)
                     for brand in (first, second)}
        ops = await register(a, f"{receiver.url}/ops", ["order.paid"], None)
        orders = {first: await sell(a, first, "bob"), second: await sell(a, second, "eve")}
        for brand, endpoint in endpoints.items():
            [hit] = await receiver.wait(f"/{brand}", 1)
            assert Webhook(endpoint["secret"]).verify(hit.body, hit.headers)["data"]["id"] == (
                orders[brand])
        hits = await receiver.wait("/ops", 2)
        assert {Webhook(ops["secret"]).verify(h.body, h.headers)["data"]["id"] for h in hits} == (
            set(orders.values()))

        # Each brand's endpoint, log and deliveries in its partition's slot, the two slots
        # on two shards; the operator's in its own partition's.
        slots = {brand: await cclient.cluster_keyslot(hook_keys(partition(brand)).outbox)
                 for brand in endpoints}
        assert slots[first] != slots[second]
        for brand, endpoint in endpoints.items():
            keys = hook_keys(partition(brand))
            log = [d.decode() for d in await cclient.zrange(keys.log(endpoint["id"]), 0, -1)]
            assert len(log) == 1
            for key in (keys.endpoint(endpoint["id"]), keys.owner(brand_owner(brand)),
                        keys.log(endpoint["id"]), keys.delivery(log[0])):
                assert await cclient.exists(key), key
                assert await cclient.cluster_keyslot(key) == slots[brand], key
        ops_keys = hook_keys(owner_partition(OPERATOR_OWNER, COUNT))
        assert await cclient.zcard(ops_keys.log(ops["id"])) == 2
        # Delivered by the nodes holding the partitions: each brand's by its own.
        ops_on_a = owner_partition(OPERATOR_OWNER, COUNT) in held(a)
        assert a.services.dispatcher.attempts == 1 + (2 if ops_on_a else 0)
        assert b.services.dispatcher.attempts == 1 + (0 if ops_on_a else 2)
    assert await crossslot_errors(cclient) == 0


async def _serve(redis_url: str, data_dir: Path, port: int) -> asyncio.subprocess.Process:
    """`livecart serve` on the cluster, in a process of its own (for a real `kill -9`)."""
    return await serve_process(redis_url, data_dir, port, **{
        "LIVECART_WEBHOOK_ALLOW_PRIVATE": "1",
        "LIVECART_WEBHOOK_TIMEOUT_S": "60",
        "LIVECART_WEBHOOK_CLAIM_IDLE_S": "1",
        "LIVECART_PARTITIONS": str(COUNT),
        "LIVECART_PARTITION_LEASE_S": str(LEASE_S),
    })


async def test_a_node_killed_mid_delivery_hands_its_partition_over_and_order_holds(
        cluster: LocalCluster, cclient: RedisCluster, receiver: Receiver,
        tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = await _serve(cluster.url, tmp_path / "killed", port)  # alone: every partition
    tokens = SimpleNamespace(tokens=TokenAuthority(TEST_SECRET))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            doomed = Live(url, cast(Any, tokens), http, "")
            receiver.plan["/k"] = ["hang"]  # the first attempt is never answered
            endpoint = await register(doomed, f"{receiver.url}/k",
                                      ["order.paid", "order.refunded"], None)
            await make_brand(doomed, "acme")
            order = await sell(doomed, "acme", "bob")
            [first] = await receiver.wait("/k", 1)
            r = await http.post(f"/api/v1/orders/{order}/refund",
                                headers=doomed.auth("brand", "acme"))
            assert r.status_code == 200, r.text

            async def refund_queued() -> bool:
                r = await http.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries",
                                   headers=doomed.auth("operator", "ops"))
                return [d["type"] for d in r.json()["items"]] == ["order.refunded", "order.paid"]

            await eventually(refund_queued, "order.refunded queued behind order.paid")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert len(receiver.on("/k")) == 1

        # Another node: it gets the partitions once the dead one's leases lapse, claims the
        # delivery its consumer was handed, sends it again, then the refund.
        async with node(cluster, tmp_path / "heir", 3) as heir:
            hits = await receiver.wait("/k", 3, timeout_s=30)
            ops = owner_partition(OPERATOR_OWNER, COUNT)
            assert ops in held(heir)
            assert [h.type for h in hits] == ["order.paid", "order.paid", "order.refunded"]
            assert hits[1].headers["webhook-id"] == first.headers["webhook-id"]
            for hit in hits:
                assert Webhook(endpoint["secret"]).verify(hit.body, hit.headers)["data"]["id"] == (
                    order)
            assert heir.services.dispatcher.attempts == 2
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
    assert await crossslot_errors(cclient) == 0


async def test_legacy_webhooks_of_the_one_slot_move_to_their_partitions_shards(
        cluster: LocalCluster, cclient: RedisCluster, receiver: Receiver,
        tmp_path: Path) -> None:
    """A cluster that ran the previous version: every brand's webhooks in `{wh}`, queued
    deliveries included. The first node of this version moves each brand's to its own
    partition (here on two shards), and delivers them."""
    await load_all(cclient)
    await cclient.xgroup_create(OLD.outbox, GROUP, id="0", mkstream=True)
    names = [f"brand{i}" for i in range(200)]
    first = names[0]
    second = next(n for n in names if cclient.get_node_from_key(hook_keys(partition(n)).outbox)
                  != cclient.get_node_from_key(hook_keys(partition(first)).outbox))
    secrets = {brand: await legacy_endpoint(cclient, f"we_{brand}", brand_owner(brand),
                                            f"{receiver.url}/{brand}")
               for brand in (first, second)}
    for brand in (first, second):
        await legacy_emit(cclient, EventType.ORDER_PAID, f"{brand}-o1", brand)
        await legacy_emit(cclient, EventType.ORDER_REFUNDED, f"{brand}-o1", brand)
    async with node(cluster, tmp_path / "a", 1):
        assert [k async for k in cclient.scan_iter(match="lc:{wh}:*")] == []
        for brand, secret in secrets.items():
            hits = await receiver.wait(f"/{brand}", 2)
            assert [Webhook(secret).verify(h.body, h.headers)["type"] for h in hits] == [
                "order.paid", "order.refunded"]
            keys = hook_keys(partition(brand))
            assert await cclient.exists(keys.endpoint(f"we_{brand}"))
            assert await cclient.zcard(keys.log(f"we_{brand}")) == 2
    assert await crossslot_errors(cclient) == 0
