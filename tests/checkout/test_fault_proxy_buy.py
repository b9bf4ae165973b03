"""Lost replies on the buy path: a FaultProxy between the node and its Valkey.

The hazard: Valkey runs a script, the reply is lost on the way back, redis-py retries the
whole pipeline on a fresh connection, and the script runs a second time. Every script on
the buy path must make that second run a no-op (the idempotency record, the order's own
state), so a dropped reply never decrements stock twice, never makes a second order and
never releases stock twice.

The node runs without its background tasks (sweeper, aggregator, hub), so the only traffic
through the proxy is the test's own and an armed drop lands exactly where the test puts it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from conftest import UNIT, Live, make_settings, start_node, stop_node
from faultproxy import FaultProxy
from shop import buy, give_wallet, idem, make_brand, make_live_stream, make_product, stock_of

from checkout.buy import BuyRequest
from checkout.store.keys import product_keys
from checkout.order_states import OrderState
from checkout.store.scripts import Script
from live.node.valkey_server import EmbeddedValkey


class ScriptDrops:
    """Arms the proxy's drop right before the batcher sends a named script.

    With no other traffic on the proxy, the next reply Valkey sends is that script's.
    """

    def __init__(self, proxy: FaultProxy, live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
        self.proxy = proxy
        self.armed: list[str] = []
        self.fired: list[str] = []
        original: Callable[[Script, list[str], list[Any]], Awaitable[Any]] = \
            live.services.batcher.script

        async def script(s: Script, keys: list[str], args: list[Any]) -> Any:
            if s.name in self.armed:
                self.armed.remove(s.name)
                self.fired.append(s.name)
                proxy.drop_next_reply()
            return await original(s, keys, args)

        monkeypatch.setattr(live.services.batcher, "script", script)
        submit: Callable[[Script, list[str], list[Any]], Any] = live.services.batcher.submit_script

        def submit_script(s: Script, keys: list[str], args: list[Any]) -> Any:
            if s.name in self.armed:  # a buy's binding, sent beside the wallet's read
                self.armed.remove(s.name)
                self.fired.append(s.name)
                proxy.drop_next_reply()
            return submit(s, keys, args)

        monkeypatch.setattr(live.services.batcher, "submit_script", submit_script)

    def arm(self, name: str) -> None:
        self.armed.append(name)


@pytest.fixture
async def proxied(valkey: EmbeddedValkey, rclient: redis.Redis,
                  tmp_path: Path) -> AsyncIterator[tuple[Live, FaultProxy]]:
    async with FaultProxy(valkey.host, valkey.port) as proxy:
        settings = make_settings(valkey, tmp_path, redis_url=f"redis://127.0.0.1:{proxy.port}")
        services, server, task, url = await start_node(settings, background=False)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
                yield Live(url=url, services=services, http=http, ws_url=""), proxy
        finally:
            await stop_node(services, server, task)


@pytest.fixture
def drops(proxied: tuple[Live, FaultProxy], monkeypatch: pytest.MonkeyPatch) -> ScriptDrops:
    live, proxy = proxied
    return ScriptDrops(proxy, live, monkeypatch)


async def evalsha_calls(rclient: redis.Redis) -> int:
    stats = await rclient.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def orders_of(rclient: redis.Redis, product: str) -> list[dict[str, str]]:
    """Every order hash Valkey holds for `product` (read directly, not through the proxy)."""
    pattern = f"lc:{product_keys(product).tag}:order:*"
    orders = []
    async for key in rclient.scan_iter(match=pattern, count=1000):
        raw = await rclient.hgetall(key)
        orders.append({k.decode(): v.decode() for k, v in raw.items()})
    return orders


async def settle_pending_drops(live: Live, proxy: FaultProxy, armed: int) -> None:
    """Let every armed drop fire on a harmless PING, so none is left for the teardown."""
    for _ in range(100):
        if proxy.replies_dropped >= armed:
            return
        await live.services.client.ping()
    raise AssertionError(f"{armed - proxy.replies_dropped} drops never fired")


async def test_dropped_replies_across_the_buy_path_never_double_decrement(
        proxied: tuple[Live, FaultProxy], drops: ScriptDrops, rclient: redis.Redis) -> None:
    live, proxy = proxied
    await make_brand(live)
    product = await make_product(live, stock=50)
    stream = await make_live_stream(live, [product["id"]])
    buyers = [f"fp{i}" for i in range(20)]
    for b in buyers:
        await give_wallet(live, b)

    # Baseline: how many EVALSHA one clean buy costs (bind_key, reserve, the gateway's
    # charge, transition to paid); a re-run after a lost reply shows up as one more, and a
    # re-run of reserve answers "replay", after which the buy claims the order as any
    # replayed reservation does (one more transition).
    # The first buy also loads the gateway's scripts (NOSCRIPT, then load): measure the second.
    await give_wallet(live, "fp-baseline")
    for _ in range(2):
        before = await evalsha_calls(rclient)
        r = await buy(live, "fp-baseline", product["id"], stream=stream["id"])
        assert r.status_code == 201, r.text
        per_buy = await evalsha_calls(rclient) - before

    # "request": drop the first reply of the request (the wallet read); the others drop the
    # reply of that script; None: a clean buy in between.
    targets = ["reserve", "bind_key", "transition", "request", None]
    acknowledged: dict[str, tuple[str, int]] = {}  # key -> (order id, qty)
    reran: list[int] = []
    expected: list[int] = []
    for i, b in enumerate(buyers):
        target = targets[i % len(targets)]
        qty = 1 + i % 2
        key = idem()
        dropped_before = proxy.replies_dropped
        calls_before = await evalsha_calls(rclient)
        if target == "request":
            proxy.drop_next_reply()
        elif target is not None:
            drops.arm(target)
        r = await buy(live, b, product["id"], stream=stream["id"], quantity=qty, key=key)
        assert r.status_code == 201, (target, r.text)
        order = r.json()["order"]
        assert order["state"] == "paid" and order["qty"] == qty
        acknowledged[key] = (order["id"], qty)
        if target is not None:
            assert proxy.replies_dropped == dropped_before + 1, target
        if target in ("reserve", "bind_key", "transition"):
            # The script whose reply was lost really ran twice.
            reran.append(await evalsha_calls(rclient) - calls_before - per_buy)
            expected.append(2 if target == "reserve" else 1)
        # The same key still replays the same order, never a second one.
        again = await buy(live, b, product["id"], stream=stream["id"], quantity=qty, key=key)
        assert again.status_code == 201 and again.json()["order"]["id"] == order["id"]
    assert not drops.armed
    assert reran == expected and len(reran) == 12

    units = sum(q for _, q in acknowledged.values()) + 2  # + the baseline buys
    levels = (await stock_of(live, product["id"]))["default"]
    assert levels["sold"] == units
    assert levels["held"] == 0
    assert levels["total"] == 50 == levels["available"] + levels["held"] + levels["sold"]
    orders = await orders_of(rclient, product["id"])
    assert len(orders) == len(acknowledged) + 2
    assert {o["state"] for o in orders} == {"paid"}
    assert {o["id"] for o in orders} >= {oid for oid, _ in acknowledged.values()}
    assert await live.services.gateway.authorizations_count() == len(orders)


async def test_concurrent_race_with_random_drops_sells_exactly_the_stock(
        proxied: tuple[Live, FaultProxy], rclient: redis.Redis) -> None:
    """Drops land on whatever pipeline is in flight, often carrying many buyers' scripts."""
    live, proxy = proxied
    await make_brand(live)
    product = await make_product(live, stock=12)
    stream = await make_live_stream(live, [product["id"]])
    buyers = [f"cr{i}" for i in range(30)]
    await asyncio.gather(*[give_wallet(live, b) for b in buyers])
    rng = random.Random(7)
    keys = {b: idem() for b in buyers}
    armed = 0

    async def one(b: str) -> httpx.Response:
        await asyncio.sleep(rng.random() * 0.05 * UNIT)
        return await buy(live, b, product["id"], stream=stream["id"], key=keys[b])

    tasks = [asyncio.create_task(one(b)) for b in buyers]
    # A bounded number of drops, spaced out: each one costs its pipeline a reconnect.
    while armed < 8 and not all(t.done() for t in tasks):
        proxy.drop_next_reply()
        armed += 1
        await asyncio.sleep(0.01 * UNIT)
    await asyncio.wait(tasks)
    replies = [t.result() for t in tasks]
    await settle_pending_drops(live, proxy, armed)
    assert proxy.replies_dropped >= 3, "the race finished before any drop landed"

    codes = [r.status_code for r in replies]
    assert codes.count(201) == 12, codes
    assert codes.count(409) == 18
    assert all(r.json()["type"].endswith("/sold-out") for r in replies if r.status_code == 409)
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["held"], levels["sold"], levels["total"]) == (0, 0, 12, 12)
    orders = await orders_of(rclient, product["id"])
    assert sorted(o["buyer"] for o in orders) == sorted(
        b for b, r in zip(buyers, replies, strict=True) if r.status_code == 201)
    assert await live.services.gateway.authorizations_count() == 12
    # Every key still answers what it answered the first time.
    for b, r in zip(buyers, replies, strict=True):
        again = await buy(live, b, product["id"], stream=stream["id"], key=keys[b])
        assert again.status_code == r.status_code
        if r.status_code == 201:
            assert again.json()["order"]["id"] == r.json()["order"]["id"]


@pytest.mark.parametrize("target", [OrderState.CANCELLED, OrderState.EXPIRED,
                                    OrderState.DECLINED])
async def test_release_under_a_dropped_reply_gives_stock_back_once(
        proxied: tuple[Live, FaultProxy], drops: ScriptDrops, rclient: redis.Redis,
        target: OrderState) -> None:
    live, proxy = proxied
    await make_brand(live)
    product = await make_product(live, stock=5)
    reserved = await live.services.buys.reserve(BuyRequest(
        buyer="rel", product=product["id"], variant="default", quantity=3,
        idempotency_key=idem(), channel="showcase"))
    order_id = reserved.order.id
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["held"]) == (2, 3)

    path = ["reserved"]
    if target is OrderState.DECLINED:  # only a payer's claim leads to a decline
        await live.services.orders.claim(order_id, 30_000)
        path.append("paying")
    calls = await evalsha_calls(rclient)
    drops.arm("transition")
    # Expiry waits for the deadline: the test's clock is far past it.
    now = 2**50 if target is OrderState.EXPIRED else None
    order, _ = await live.services.orders.transition(order_id, target, "test", now_ms=now)
    assert drops.fired == ["transition"] and proxy.replies_dropped == 1
    assert await evalsha_calls(rclient) - calls == 2  # ran, reply lost, ran again
    assert order.state is target

    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["held"], levels["sold"], levels["total"]) == (5, 0, 0, 5)
    k = product_keys(product["id"])
    assert int(await rclient.hget(k.bought, "b:rel") or 0) == 0
    assert await rclient.zscore(k.expiry, order_id) is None
    # One outbox entry for the move: the re-run wrote nothing.
    moves = [f for _, f in await rclient.xrange(k.outbox) if f[b"order"] == order_id.encode()]
    assert [m[b"state"].decode() for m in moves] == [*path, target.value]


async def test_declined_buy_under_a_dropped_transition_reply_releases_once(
        proxied: tuple[Live, FaultProxy], drops: ScriptDrops) -> None:
    live, proxy = proxied
    await make_brand(live)
    product = await make_product(live, stock=2)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "dec", token="tok_decline")
    drops.arm("transition")
    r = await buy(live, "dec", product["id"], stream=stream["id"], quantity=2)
    assert r.status_code == 402, r.text
    assert drops.fired == ["transition"] and proxy.replies_dropped == 1
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["held"], levels["sold"]) == (2, 0, 0)


async def test_stock_change_under_a_dropped_reply_adjusts_once(
        proxied: tuple[Live, FaultProxy], drops: ScriptDrops) -> None:
    live, proxy = proxied
    await make_brand(live)
    product = await make_product(live, stock=5)
    drops.arm("stock")
    r = await live.http.put(f"/api/v1/products/{product['id']}/variants/default/stock",
                            json={"adjust": 4, "reason": "restock"},
                            headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    assert r.json()["available"] == 9 and r.json()["delta"] == 4
    assert proxy.replies_dropped == 1
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["available"], levels["total"]) == (9, 9)


async def test_expiry_under_a_dropped_reply_still_serves_the_waitlist(
        proxied: tuple[Live, FaultProxy], drops: ScriptDrops) -> None:
    live, proxy = proxied
    await make_brand(live)
    product = await make_product(live, stock=1)
    await live.services.buys.reserve(BuyRequest(
        buyer="holder", product=product["id"], variant="default", quantity=1,
        idempotency_key=idem(), channel="showcase"))
    r = await live.http.post(f"/api/v1/products/{product['id']}/waitlist", json={},
                             headers=live.auth("buyer", "waiter"))
    assert r.status_code == 201 and r.json()["position"] == 1
    drops.arm("transition")
    await live.services.sweeper.sweep_once(now_ms=2**50)
    assert drops.fired == ["transition"] and proxy.replies_dropped == 1
    levels = (await stock_of(live, product["id"]))["default"]
    # Expected: the waiter now holds the returned unit.
    assert (levels["available"], levels["held"]) == (0, 1), levels


async def test_a_lost_outbox_read_is_applied_without_waiting_for_a_claim(
        proxied: tuple[Live, FaultProxy], monkeypatch: pytest.MonkeyPatch) -> None:
    live, proxy = proxied
    await make_brand(live)
    product = await make_product(live, stock=5)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "agg")
    for _ in range(2):
        assert (await buy(live, "agg", product["id"], stream=stream["id"])).status_code == 201

    client = live.services.client
    original = client.pipeline
    armed = [True]

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        """The aggregator reads each outbox in a pipeline: the first one reading new
        entries (`>`) loses its reply."""
        pipe = original(*args, **kwargs)
        execute = pipe.execute

        async def execute_dropping(*a: Any, **k: Any) -> Any:
            commands = [c[0] for c in pipe.command_stack]
            if armed[0] and commands and all(c[0] == "XREADGROUP" and c[-1] == ">"
                                             for c in commands):
                armed[0] = False
                proxy.drop_next_reply()
            return await execute(*a, **k)
        pipe.execute = execute_dropping
        return pipe

    monkeypatch.setattr(client, "pipeline", pipeline)
    live.services.aggregator.start()
    try:
        for _ in range(int(200 * UNIT)):  # no traffic of ours until the read's reply is lost
            if proxy.replies_dropped:
                break
            await asyncio.sleep(0.01)
        assert proxy.replies_dropped == 1
        await live.services.aggregator.drain(timeout_s=5 * UNIT)
        report = (await live.http.get("/api/v1/brands/acme/report",
                                      headers=live.auth("brand", "acme"))).json()
        assert report["units"] == 2
    finally:
        await live.services.aggregator.close()
