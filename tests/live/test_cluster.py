"""A node against a real 3-primary, 3-replica Valkey Cluster from the embedded binary.

One cluster for the module (it costs seconds to form); each test flushes every primary.
The cluster itself is the dynamic check that every script's keys share a slot (it answers
CROSSSLOT otherwise, and refuses a script that touches a key of another slot); the
`slot_checked` wrapper says which call did it, and each test ends by asserting that no
primary counted a CROSSSLOT error.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import astuple
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as redis
from redis.asyncio.cluster import ClusterPubSub, RedisCluster
from redis.crc import key_slot
from websockets.asyncio.client import ClientConnection, connect

from checkout.ids import StreamId
from checkout.store.batcher import CommandBatcher
from checkout.store.keys import (brand_agg_keys, brand_products_key, creator_agg_keys,
                                 creator_links_key, product_keys, stream_agg_keys, stream_key)
from conftest import UNIT, Live, make_settings, start_hub, start_node, stop_node
from live.hub.rooms import Hub, HubLimits
from live.node.services import Services
from live.node.valkey_check import ValkeyRequirementError, check_server
from live.node.valkey_cluster import LocalCluster
from live.node.valkey_cluster_client import connect_cluster, is_cluster
from live.streams.store import events_channel
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product, stock_of


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(tmp_path_factory.mktemp("cluster")) as local:
        yield local


@pytest.fixture
async def cclient(cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(cluster.url)
    await client.flushall()  # every primary
    await client.config_resetstat()  # the error counters the tests read
    yield client
    await client.aclose()


def slot_checked(evalsha: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """`evalsha` that first asserts its keys hash to one slot (names the script if not)."""
    async def checked(sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        keys = keys_and_args[:numkeys]
        slots = {key_slot(k.encode() if isinstance(k, str) else k) for k in keys}
        assert len(slots) <= 1, f"script {sha} called with keys of {len(slots)} slots: {keys}"
        return await evalsha(sha, numkeys, *keys_and_args)
    return checked


@pytest.fixture
async def clive(cluster: LocalCluster, cclient: RedisCluster, tmp_path: Path
                ) -> AsyncIterator[Live]:
    settings = make_settings(cluster.url, tmp_path)
    services, server, task, url = await start_node(settings)
    services.client.evalsha = slot_checked(services.client.evalsha)  # type: ignore[method-assign]
    ws_url = await start_hub(services, url)
    async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
        yield Live(url, services, http, ws_url)
    await stop_node(services, server, task)
    assert await crossslot_errors(cclient) == 0


async def crossslot_errors(client: RedisCluster) -> int:
    """CROSSSLOT errors counted by every primary since the test's CONFIG RESETSTAT."""
    stats = await client.info("errorstats", target_nodes=RedisCluster.PRIMARIES)
    total = 0
    for node_stats in stats.values():
        entry = node_stats.get("errorstat_CROSSSLOT") or {}
        total += int(entry.get("count", 0)) if isinstance(entry, dict) else 0
    return total


async def recv_until(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout * UNIT):
        while True:
            message: dict[str, Any] = orjson.loads(await ws.recv())
            if message["type"] == kind:
                return message


async def test_the_cluster_forms_and_the_node_knows_it(cluster: LocalCluster) -> None:
    assert len(cluster.nodes) == 6
    assert await is_cluster(cluster.url)
    for node in cluster.nodes:
        probe = redis.Redis.from_url(node.url, decode_responses=True)
        info = await probe.execute_command("CLUSTER", "INFO")
        await probe.aclose()
        assert "cluster_state:ok" in info and "cluster_size:3" in info


async def test_the_start_check_reads_every_node_replicas_too(cluster: LocalCluster,
                                                            cclient: RedisCluster) -> None:
    async def knows_every_node() -> bool:  # replicas are learnt by gossip, after the slots
        await cclient.nodes_manager.initialize()
        return len(cclient.get_nodes()) == 6

    await eventually(knows_every_node, "the client knows the 3 replicas")
    info = await check_server(cclient)
    assert info.cluster_enabled and info.appendonly and info.maxmemory_policy == "noeviction"
    replica = next(n for n in cclient.get_nodes() if n.server_type == "replica")
    await cclient.config_set("maxmemory-policy", "allkeys-lru", target_nodes=replica)
    try:
        with pytest.raises(ValkeyRequirementError,
                           match=f"{replica.name}: maxmemory-policy is allkeys-lru"):
            await check_server(cclient)
    finally:
        await cclient.config_set("maxmemory-policy", "noeviction", target_nodes=replica)


async def test_flash_sale_on_the_cluster_sells_exactly_the_units(clive: Live) -> None:
    assert isinstance(clive.services.client, RedisCluster)
    await make_brand(clive)
    products = [await make_product(clive, stock=7, sku=f"SKU-{i}") for i in range(3)]
    stream = await make_live_stream(clive, [p["id"] for p in products])
    buyers = [f"b{i}" for i in range(30)]
    await asyncio.gather(*[give_wallet(clive, b) for b in buyers])
    for product in products:  # products land on different shards: each sells exactly 7
        replies = await asyncio.gather(*[buy(clive, b, product["id"], stream=stream["id"])
                                         for b in buyers])
        codes = [r.status_code for r in replies]
        assert codes.count(201) == 7, [r.text for r in replies if r.status_code != 409][:3]
        assert codes.count(409) == 23
        assert all(r.json()["type"].endswith("/sold-out") for r in replies
                   if r.status_code == 409)
        levels = (await stock_of(clive, product["id"]))["default"]
        assert (levels["available"], levels["held"], levels["sold"]) == (0, 0, 7)
        assert levels["total"] == levels["available"] + levels["held"] + levels["sold"]


async def test_aggregates_fold_in_their_owners_slots(clive: Live, cclient: RedisCluster) -> None:
    """Two brands' products sold in two creators' shows: each brand's, stream's and
    creator's aggregates add up, and each sits in its owner's slot, beside the owner's other
    keys (no one slot takes every fold)."""
    sales = {("acme", "cleo"): 2, ("zeta", "dana"): 3}
    await give_wallet(clive, "bob")
    shows: dict[tuple[str, str], str] = {}
    for (brand, creator), count in sales.items():
        await make_brand(clive, brand)
        product = await make_product(clive, brand, price_minor=1000, commission_bps=1000)
        shows[brand, creator] = (await make_live_stream(clive, [product["id"]], creator))["id"]
        for _ in range(count):
            r = await buy(clive, "bob", product["id"], stream=shows[brand, creator])
            assert r.status_code == 201, r.text
    await clive.services.aggregator.drain(timeout_s=10 * UNIT)

    owners: dict[str, str] = {}  # hash tag -> a key the owner had before aggregates moved in
    for (brand, creator), count in sales.items():
        stream = shows[brand, creator]
        report = (await clive.http.get(f"/api/v1/brands/{brand}/report",
                                       headers=clive.auth("brand", brand))).json()
        assert (report["orders"], report["gmv_minor"], report["captured_minor"],
                report["commission_minor"], report["payout_minor"]) == (
            count, 1000 * count, 1000 * count, 100 * count, 900 * count)
        assert report["streams"] == [{"stream_id": stream, "units": count, "orders": count,
                                      "gmv_minor": 1000 * count, "replay_units": 0,
                                      "replay_orders": 0, "replay_gmv_minor": 0}]
        earned = (await clive.http.get(f"/api/v1/creators/{creator}/earnings",
                                       headers=clive.auth("creator", creator))).json()
        assert (earned["earned_minor"], earned["orders"]) == ({"USD": 100 * count}, count)
        assert {(e["brand"], e["stream"]) for e in earned["ledger"]} == {(brand, stream)}
        assert len(earned["ledger"]) == count
        stats = (await clive.http.get(f"/api/v1/streams/{stream}/stats")).json()
        assert (stats["orders"], len(stats["just_bought"])) == (count, count)
        owners.update({f"b:{brand}": brand_products_key(brand), f"s:{stream}": stream_key(stream),
                       f"c:{creator}": creator_links_key(creator)})
        folds = [*astuple(brand_agg_keys(brand)), *astuple(creator_agg_keys(creator)),
                 *astuple(stream_agg_keys(stream))]
        for key in folds:
            assert await cclient.exists(key), key

    slots = {tag: await cclient.cluster_keyslot(key) for tag, key in owners.items()}
    aggregates = [k.decode() async for k in cclient.scan_iter(match="lc:*:agg*")]
    assert aggregates
    for key in aggregates:
        tag = key[key.index("{") + 1:key.index("}")]
        assert tag in owners, f"{key} is in no owner's slot"
        assert await cclient.cluster_keyslot(key) == slots[tag]
    assert {k[k.index("{") + 1:k.index("}")] for k in aggregates} == set(owners)


async def subscribers(cluster: LocalCluster, channel: str) -> tuple[int, int]:
    """(shard subscribers of `channel`, plain subscribers of it), summed over every node.
    A node takes an SSUBSCRIBE only for a slot it serves, so shard subscribers are on the
    channel's own shard."""
    sharded = plain = 0
    for node in cluster.nodes:
        probe = redis.Redis.from_url(node.url)
        try:
            sharded += int((await probe.execute_command("PUBSUB", "SHARDNUMSUB", channel))[1])
            plain += int((await probe.execute_command("PUBSUB", "NUMSUB", channel))[1])
        finally:
            await probe.aclose()
    return sharded, plain


async def test_a_pin_and_stock_reach_the_room_through_sharded_pub_sub(
        cluster: LocalCluster, clive: Live) -> None:
    await make_brand(clive)
    products = [await make_product(clive, stock=5, sku=f"SKU-{i}") for i in range(2)]
    streams = [await make_live_stream(clive, [p["id"]]) for p in products]
    await give_wallet(clive, "bob")
    for stream, product in zip(streams, products):  # streams on different shards
        async with connect(f"{clive.ws_url}/ws/streams/{stream['id']}") as ws:
            snap = await recv_until(ws, "snapshot")
            r = await clive.http.post(f"/api/v1/streams/{stream['id']}/pins",
                                      json={"product_id": product["id"]},
                                      headers=clive.auth("creator", "cleo"))
            assert r.status_code == 200, r.text
            pin = await recv_until(ws, "pin")
            assert (pin["product_id"], pin["seq"]) == (product["id"], snap["seq"] + 1)
            assert await subscribers(cluster, events_channel(stream["id"])) == (1, 0)
            r = await buy(clive, "bob", product["id"], stream=stream["id"], quantity=2)
            assert r.status_code == 201, r.text
            async with asyncio.timeout(5 * UNIT):
                while (await recv_until(ws, "state")).get("stock", {}).get(
                        product["id"]) != {"default": 3}:
                    pass


async def test_livecart_cluster_prints_its_url_and_stops_every_node_on_ctrl_c(
        tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "live.node.cli", "cluster", "--nodes", "0", "--data-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30 * UNIT):
            while not lines or not lines[-1].startswith("livecart serve --redis-url "):
                line = (await proc.stdout.readline()).decode()
                assert line, "livecart cluster exited: " + "".join(lines)
                lines.append(line)
        url = lines[-1].split()[-1]
        assert await is_cluster(url)
        probe = redis.Redis.from_url(url, decode_responses=True)
        info = await probe.execute_command("CLUSTER", "INFO")
        await probe.aclose()
        assert "cluster_state:ok" in info and "cluster_known_nodes:6" in info
        pids = [int(line.split()[-1]) for line in lines if line.strip().startswith("node ")]
        assert len(pids) == 6
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20 * UNIT):
            await proc.wait()
    assert proc.returncode == 0
    for pid in pids:  # every valkey-server stopped with it
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def replica_of(cluster: LocalCluster, cclient: RedisCluster, key: str
                     ) -> tuple[redis.Redis, int]:
    """A READONLY client to the replica serving `key`'s slot, and that replica's pid."""
    primary = cclient.get_node_from_key(key)
    assert primary is not None
    node = await cluster.replica_of(int(primary.port))
    pid = node.pid
    assert pid is not None
    replica = redis.Redis(host=node.host, port=node.port, decode_responses=True)
    await replica.execute_command("READONLY")
    return replica, pid


async def test_replicated_buy_is_on_the_replica_or_answers_503(
        cluster: LocalCluster, cclient: RedisCluster, tmp_path: Path) -> None:
    """durability=replicated: a 201 means the slot owner's replica has the order; with that
    replica frozen (SIGSTOP) no replica acknowledges and the buy answers 503, not 201."""
    settings = make_settings(cluster.url, tmp_path, durability="replicated",
                             replica_ack_timeout_ms=300)
    services, server, task, url = await start_node(settings)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            live = Live(url, services, http, "")
            await make_brand(live)
            product = await make_product(live, stock=5)
            stream = await make_live_stream(live, [product["id"]])
            await give_wallet(live, "b1")
            await give_wallet(live, "b2")
            r = await buy(live, "b1", product["id"], stream=stream["id"])
            assert r.status_code == 201, r.text
            order_key = product_keys(product["id"]).order(str(r.json()["order"]["id"]))
            replica, pid = await replica_of(cluster, cclient, order_key)
            try:
                assert await replica.hgetall(order_key)  # no waiting: WAIT saw it there
                os.kill(pid, signal.SIGSTOP)
                try:
                    frozen = await buy(live, "b2", product["id"], stream=stream["id"],
                                       key="frozen-1")
                finally:
                    os.kill(pid, signal.SIGCONT)
                assert frozen.status_code == 503, frozen.text
                assert frozen.headers["content-type"] == "application/problem+json"
                assert frozen.json()["type"].endswith("/not-durable")
                again = await eventually(lambda: _retry_until_acked(live, product, stream),
                                         "the same buy acknowledged once the replica is back")
                assert await replica.hgetall(
                    product_keys(product["id"]).order(str(again.json()["order"]["id"])))
            finally:
                await replica.aclose()
    finally:
        await stop_node(services, server, task)


async def _retry_until_acked(live: Live, product: dict[str, Any], stream: dict[str, Any]
                             ) -> httpx.Response | None:
    r = await buy(live, "b2", product["id"], stream=stream["id"], key="frozen-1")
    assert r.status_code in (201, 503), r.text
    return r if r.status_code == 201 else None


async def test_sales_of_products_in_different_slots_all_reach_the_brand_report(
        clive: Live) -> None:
    """The aggregator folds every product's outbox on a cluster: one read over outboxes of
    two slots is a CROSSSLOT error, and then nothing folds."""
    await make_brand(clive)
    products = [await make_product(clive, stock=5, sku="SKU-0")]
    while True:  # ids are random: two products land in two slots (almost always at once)
        product = await make_product(clive, stock=5, sku=f"SKU-{len(products)}")
        if key_slot(product_keys(product["id"]).outbox.encode()) != key_slot(
                product_keys(products[0]["id"]).outbox.encode()):
            products.append(product)
            break
    stream = await make_live_stream(clive, [p["id"] for p in products])
    await give_wallet(clive, "bob")
    for product in products:
        r = await buy(clive, "bob", product["id"], stream=stream["id"])
        assert r.status_code == 201, r.text
    await clive.services.aggregator.drain(timeout_s=10 * UNIT)
    report = (await clive.http.get("/api/v1/brands/acme/report",
                                   headers=clive.auth("brand", "acme"))).json()
    assert (report["units"], report["orders"]) == (2, 2), report


def test_a_topology_refresh_under_load_is_a_connection_error(cluster: LocalCluster) -> None:
    """On a failover redis-py's cluster client refreshes its topology by disconnecting every
    node's connections (`RedisCluster.aclose` -> `nodes_manager.aclose`, from its own retry
    paths), those other tasks are writing on included: their commands failed with uvloop's
    RuntimeError ("the handler is closed") or AttributeError, which the node answered 500
    (seen in `loadtest cluster-sale --kill primary`). Through the batcher such a command
    fails as a ConnectionError, which the node answers 503 and a phone retries with the same
    Idempotency-Key. Run in a process of its own on uvloop, as the node runs; a disconnect
    right after the writes are queued (0 loop turns) hit the window in every run seen here."""
    script = Path(__file__).with_name("cluster_refresh.py")
    done = subprocess.run([sys.executable, str(script), cluster.url, "40"], capture_output=True,
                          text=True, timeout=120 * UNIT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = collections.Counter(orjson.loads(done.stdout))
    assert set(outcomes) <= {"ok", "connection error"}, outcomes
    assert outcomes["ok"] > 0


async def test_an_auction_on_the_cluster_shows_its_bids_and_two_nodes_close_it_into_one_order(
        cluster: LocalCluster, clive: Live, tmp_path: Path) -> None:
    """Issue 14 on a cluster: the bid script, the tick that shows bids, the closer and the
    charge each touch one slot (the fixture counts CROSSSLOT), and two nodes' closers racing
    the same auction make one paid order."""
    await make_brand(clive)
    product = await make_product(clive, sku="LOT-C", stock=1, price_minor=9000)
    stream = await make_live_stream(clive, [product["id"]])
    base = f"/api/v1/streams/{stream['id']}/auctions"
    put = await clive.http.post(base, headers=clive.auth("creator", "cleo"), json={
        "product_id": product["id"], "start_minor": 1000, "duration_s": 600})
    assert put.status_code == 201, put.text
    auction = put.json()["id"]
    for buyer in ("ann", "bob"):
        await give_wallet(clive, buyer)
    async with connect(f"{clive.ws_url}/ws/streams/{stream['id']}") as ws:
        await recv_until(ws, "snapshot")
        for buyer, max_minor in (("ann", 3000), ("bob", 2000)):
            r = await clive.http.post(f"{base}/{auction}/bids", json={"max_minor": max_minor},
                                      headers={**clive.auth("buyer", buyer),
                                               "Idempotency-Key": f"bid-{buyer}-c001"})
            assert r.status_code == 201, r.text
        async with asyncio.timeout(5 * UNIT):
            while True:
                shown = (await recv_until(ws, "state")).get("auction") or {}
                if shown.get("bids") == 2:
                    break
        assert (shown["price_minor"], shown["high_paddle"]) == (2050, 1)
        other = await Services.start(make_settings(cluster.url, tmp_path / "b"), background=False)
        try:
            later = 10**13  # both closers' clocks past the deadline
            await asyncio.gather(clive.services.desk.close_due(later), other.desk.close_due(later),
                                 clive.services.desk.step(stream["id"], auction, later),
                                 other.desk.step(stream["id"], auction, later))
        finally:
            await other.close()
        closed = await recv_until(ws, "auction.closed")
    assert (closed["result"], closed["price_minor"], closed["high_paddle"]) == ("sold", 2050, 1)
    found = await clive.services.auctions.get(stream["id"], auction)
    assert found is not None and found["lot"] == "sold"
    order = await clive.http.get(f"/api/v1/orders/{found['order']}",
                                 headers=clive.auth("buyer", "ann"))
    assert order.status_code == 200, order.text
    assert (order.json()["state"], order.json()["amount_minor"]) == ("paid", 2050)
    levels = (await stock_of(clive, product["id"]))["default"]
    assert (levels["available"], levels["held"], levels["sold"]) == (0, 0, 1)


async def test_a_bus_poll_that_answers_none_at_once_does_not_spin_the_hub(
        cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py's sharded pub/sub answers None at once, awaiting nothing, in some states
    (no shard connection held: orphaned hub processes were found at 94 % CPU in
    `get_sharded_message`). Here the hub's ClusterPubSub answers so for 3 s: the hub's
    process must not burn a core meanwhile (a bound on CPU time over wall time, measured
    from a thread, since a loop that never yields would not let the test measure it), and
    the poll must deliver again after it."""
    client = connect_cluster(cluster.url)
    await client.initialize()  # type: ignore[attr-defined]  # a RedisCluster
    hub = Hub(client, "spin-test", HubLimits())
    stream = StreamId("spintest")
    await hub.room(stream, [])
    pubsub = hub._pubsub
    assert isinstance(pubsub, ClusterPubSub)
    broken = threading.Event()
    real = pubsub.get_sharded_message

    async def answers_none_at_once(**kwargs: Any) -> dict[str, Any] | None:
        if broken.is_set():
            return None
        return await real(**kwargs)

    monkeypatch.setattr(pubsub, "get_sharded_message", answers_none_at_once)

    def cpu_share_while_broken(seconds: float) -> float:
        broken.set()
        try:
            cpu, wall = time.process_time(), time.monotonic()
            time.sleep(seconds)
            return (time.process_time() - cpu) / (time.monotonic() - wall)
        finally:
            broken.clear()

    hub.start()
    try:
        share = await asyncio.to_thread(cpu_share_while_broken, 3.0)
        assert share < 0.3, f"the hub used {share:.0%} of a core on a poll answering None"
        heard: list[int | None] = []
        await hub.tap(stream, [], lambda seq, _event: heard.append(seq))
        await client.spublish(events_channel(stream), orjson.dumps({"seq": 1, "type": "x"}))
        await eventually(lambda: heard == [1], "the event after the poll mended")
    finally:
        await hub.close()
        await client.aclose()
