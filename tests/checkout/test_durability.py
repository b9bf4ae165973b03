"""Acknowledged means durable: `kill -9` Valkey in the middle of a flash sale.

A node runs on its own supervised EmbeddedValkey (AOF). Buyers race over HTTP for fewer
units than there are buyers; once some orders are acknowledged the Valkey process is
SIGKILLed and the supervisor restarts it from its AOF. A request that failed or timed out
meanwhile is retried with the same Idempotency-Key until it resolves, as a phone would.

Afterwards: every acknowledged (201) order is still there and paid, one order per key,
sold == acknowledged units, and total == available + held + sold.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
from conftest import UNIT, Live, make_settings, start_node, stop_node
from shop import (Buyers, buy, give_wallet, idem, make_brand, make_live_stream, make_product,
                  stock_of)

from checkout.store.keys import product_keys
from checkout.partitions import AllPartitions
from checkout.sweeper import ReservationSweeper
from live.node.services import Services, connect
from live.node.valkey_server import EmbeddedValkey

BUYERS = 60
UNITS = 20
IN_FLIGHT = 8  # concurrent requests: enough that some are in flight when Valkey dies
KILL_AFTER_ACKS = 5
PATIENCE_S = 0.1  # a phone's request timeout in the race: shorter than the restart


@pytest.fixture(params=["appendfsync", "waitaof"])
async def own_node(request: pytest.FixtureRequest, valkey: EmbeddedValkey,
                   tmp_path: Path) -> AsyncIterator[Live]:
    """A node that starts (and owns) its own embedded Valkey: appendfsync always, or
    appendfsync everysec with WAITAOF before every acknowledgement."""
    settings = make_settings(valkey, tmp_path, redis_url=None, durability=request.param)
    services, server, task, url = await start_node(settings, background=False)
    assert services.valkey is not None
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            yield Live(url=url, services=services, http=http, ws_url="")
    finally:
        await stop_node(services, server, task)


async def test_kill_valkey_mid_race_loses_no_acknowledged_order(own_node: Live) -> None:
    live = own_node
    embedded = live.services.valkey
    assert embedded is not None
    expected_fsync = "always" if live.services.settings.durability == "appendfsync" else "everysec"
    assert (await live.services.client.config_get("appendfsync"))["appendfsync"] == expected_fsync

    await make_brand(live)
    product = await make_product(live, stock=UNITS)
    stream = await make_live_stream(live, [product["id"]])
    buyers = [f"dur{i}" for i in range(BUYERS)]
    await asyncio.gather(*[give_wallet(live, b) for b in buyers])
    keys = {b: idem() for b in buyers}

    # Phones give up quickly and ask again with the same key, so abandoned requests (which
    # the server still finishes) overlap their own retries across the crash.
    impatient = httpx.AsyncClient(base_url=live.url, timeout=PATIENCE_S * UNIT)
    phone = Live(url=live.url, services=live.services, http=impatient, ws_url="")
    phones = Buyers(phone, product["id"], stream["id"], in_flight=IN_FLIGHT,
                    ack_goal=KILL_AFTER_ACKS, attempts=200)

    async def crash() -> tuple[int, int, int]:
        await asyncio.wait_for(phones.enough_acked.wait(), 30 * UNIT)
        pid = embedded.pid
        assert pid is not None
        embedded.kill_hard()
        return pid, len(phones.acked), phones.sending

    tasks = [asyncio.create_task(phones.resolve(b, keys[b])) for b in buyers]
    killer = asyncio.create_task(crash())
    try:
        replies = await asyncio.wait_for(asyncio.gather(*tasks), 60 * UNIT)
    finally:
        await impatient.aclose()
    old_pid, acked_at_kill, in_flight_at_kill = await killer
    await embedded.wait_ready(10 * UNIT)
    assert embedded.restarts == 1 and embedded.pid != old_pid
    # Mid-race: some orders acknowledged, more to come, and requests in flight at the kill.
    assert KILL_AFTER_ACKS <= acked_at_kill < UNITS and in_flight_at_kill > 0

    # Every buyer resolved: a paid order or sold out, nothing else.
    acked = phones.by_buyer()
    codes = [r.status_code for r in replies]
    assert set(codes) <= {201, 409}, codes
    assert all(r.json()["type"].endswith("/sold-out") for r in replies if r.status_code == 409)
    assert codes.count(201) == len(acked) == UNITS

    # Read everything back from the restarted server on a fresh connection.
    fresh = redis.Redis.from_url(embedded.url)
    try:
        k = product_keys(product["id"])
        for b, order in acked.items():
            stored = await fresh.hgetall(k.order(str(order["id"])))
            assert stored, f"acknowledged order {order['id']} of {b} is gone"
            assert stored[b"state"] == b"paid" and stored[b"buyer"] == b.encode()
        orders: dict[str, list[str]] = {}
        async for key in fresh.scan_iter(match=f"lc:{k.tag}:order:*", count=1000):
            buyer = (await fresh.hget(key, "buyer") or b"").decode()
            orders.setdefault(buyer, []).append(key.decode())
        assert all(len(v) == 1 for v in orders.values()), orders  # one order per key
        assert set(orders) == set(acked)
        stock = {f.decode(): int(v) for f, v in (await fresh.hgetall(k.stock)).items()}
        assert stock["sold:default"] == len(acked) == UNITS
        assert stock["held:default"] == 0 and stock["avail:default"] == 0
        assert stock["total:default"] == (stock["avail:default"] + stock["held:default"]
                                          + stock["sold:default"]) == UNITS
    finally:
        await fresh.aclose()

    # The same keys, asked again after the crash, answer exactly what they answered.
    for b, r in zip(buyers, replies, strict=True):
        again = await buy(live, b, product["id"], stream=stream["id"], key=keys[b])
        assert again.status_code == r.status_code
        if r.status_code == 201:
            assert again.json()["order"]["id"] == r.json()["order"]["id"]
    assert await live.services.gateway.authorizations_count() == UNITS
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["held"], levels["sold"]) == (0, 0, UNITS)



async def test_acknowledged_orders_survive_a_kill_between_races(own_node: Live) -> None:
    """A quiet kill: everything acknowledged before it is there after it, and the node
    keeps selling on the restarted server (scripts reloaded after NOSCRIPT)."""
    live = own_node
    embedded = live.services.valkey
    assert embedded is not None
    await make_brand(live)
    product = await make_product(live, stock=6)
    stream = await make_live_stream(live, [product["id"]])
    for b in ("q1", "q2", "q3"):
        await give_wallet(live, b)
    first = [await buy(live, b, product["id"], stream=stream["id"]) for b in ("q1", "q2")]
    assert [r.status_code for r in first] == [201, 201]
    embedded.kill_hard()
    await embedded.wait_ready(10 * UNIT)
    for r in first:
        stored = await live.services.orders.get(r.json()["order"]["id"])
        assert stored is not None and stored.fields["state"] == "paid"
    r = await buy(live, "q3", product["id"], stream=stream["id"], quantity=2)
    assert r.status_code == 201, r.text
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["held"], levels["sold"], levels["total"]) == (2, 0, 4, 6)


async def test_aggregates_count_every_sale_made_before_a_restart(own_node: Live) -> None:
    live = own_node
    embedded = live.services.valkey
    assert embedded is not None
    await make_brand(live)
    product = await make_product(live, stock=10)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "agg")
    # The outbox keeps the sales while the aggregator is down (a node restarting, say).
    await live.services.aggregator.close()
    for _ in range(3):
        r = await buy(live, "agg", product["id"], stream=stream["id"])
        assert r.status_code == 201, r.text
    embedded.kill_hard()  # the restarted server has an empty script cache
    await embedded.wait_ready(10 * UNIT)
    live.services.aggregator.start()
    try:
        await live.services.aggregator.drain(timeout_s=10 * UNIT)
        report = (await live.http.get("/api/v1/brands/acme/report",
                                      headers=live.auth("brand", "acme"))).json()
        assert (report["units"], report["orders"]) == (3, 3)
    finally:
        await live.services.aggregator.close()


async def test_background_loops_always_stop(valkey: EmbeddedValkey, rclient: redis.Redis,
                                            tmp_path: Path) -> None:
    """Start and stop a reservation sweeper many times, as node restarts and shutdowns do,
    each on a fresh production client (its first command opens the connection)."""
    services = await Services.start(make_settings(valkey, tmp_path), background=False)
    hung: list[int] = []
    try:
        for i in range(300):
            client = connect(valkey.url)
            sweeper = ReservationSweeper(client, services.orders, services.gateway,
                                         partitions=AllPartitions(16), interval_s=0.1)
            sweeper.start()
            await asyncio.sleep((i % 30) * 0.0001)
            closing = asyncio.ensure_future(sweeper.close())
            done, _ = await asyncio.wait([closing], timeout=UNIT)
            if not done:
                hung.append(i)
                loop_task = sweeper._task  # clean up: cancel until it really stops
                assert loop_task is not None
                while not loop_task.done():
                    loop_task.cancel()
                    await asyncio.wait([loop_task], timeout=0.1)
            await closing
            await client.aclose()
            if hung:
                break
    finally:
        await services.close()
    assert not hung, f"sweeper.close() never returned (attempt {hung[0]})"
