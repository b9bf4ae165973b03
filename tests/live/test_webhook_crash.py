"""No webhook lost: `kill -9` of the node mid-delivery, and `kill -9` of Valkey between
attempts (docs/webhooks.md, "Delivery").

The node runs as `livecart serve` in a subprocess against the session's Valkey; the receiver
holds the first delivery open, the node is SIGKILLed while it waits, and a new node on the
same port (the same consumer of the outbox's group) sends the same event again.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as redis
from standardwebhooks.webhooks import Webhook

from conftest import TEST_SECRET, UNIT, Live, make_settings, start_node, stop_node
from hook_receiver import Receiver, receiver  # noqa: F401 - the fixture
from node_process import free_port, serve_process
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product

from checkout.store.keys import hook_keys
from checkout.webhook_events import owner_partition
from live.accounts.auth import TokenAuthority
from live.node.valkey_server import EmbeddedValkey
from live.webhooks.dispatcher import GROUP

PARTITIONS = 16
ACME = hook_keys(owner_partition("brand:acme", PARTITIONS))  # acme's webhook partition


async def _serve(valkey: EmbeddedValkey, data_dir: Path, port: int) -> asyncio.subprocess.Process:
    return await serve_process(valkey.url, data_dir, port, **{
        "LIVECART_WEBHOOK_ALLOW_PRIVATE": "1",
        "LIVECART_WEBHOOK_TIMEOUT_S": "60",
        "LIVECART_WEBHOOK_CLAIM_IDLE_S": "1",
        "LIVECART_WEBHOOK_RETRY_SCHEDULE_S": "0.05,0.05",
        "LIVECART_PARTITIONS": str(PARTITIONS),
    })


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(15 * UNIT):
        await proc.wait()


async def test_kill_9_of_the_node_mid_delivery_loses_nothing(
        valkey: EmbeddedValkey, rclient: redis.Redis, receiver: Receiver, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    node = await _serve(valkey, tmp_path / "one", port)
    tokens = SimpleNamespace(tokens=TokenAuthority(TEST_SECRET))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            live = Live(url, cast(Any, tokens), http, "")
            await make_brand(live)
            product = await make_product(live)
            stream = await make_live_stream(live, [product["id"]])
            r = await http.post("/api/v1/brands/acme/webhooks", headers=live.auth("brand", "acme"),
                                json={"url": f"{receiver.url}/crash", "events": ["order.paid"]})
            assert r.status_code == 201, r.text
            secret = r.json()["secret"]
            receiver.plan["/crash"] = ["hang"]  # the first attempt is never answered
            await give_wallet(live, "bob")
            assert (await buy(live, "bob", product["id"], stream=stream["id"])).status_code == 201
            [first] = await receiver.wait("/crash", 1)
            node.send_signal(signal.SIGKILL)
            await node.wait()
        # Mid-delivery: the outbox entry is handed out and not acknowledged.
        assert (await rclient.xpending(ACME.outbox, GROUP))["pending"] == 1

        node = await _serve(valkey, tmp_path / "two", port)
        hits = await receiver.wait("/crash", 2)
        assert hits[1].headers["webhook-id"] == first.headers["webhook-id"]
        assert Webhook(secret).verify(hits[1].body, hits[1].headers)["type"] == "order.paid"
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            live = Live(url, cast(Any, tokens), http, "")
            endpoint = r.json()["id"]

            async def delivered() -> Any:
                items = (await http.get(f"/api/v1/webhooks/{endpoint}/deliveries",
                                        headers=live.auth("brand", "acme"))).json()["items"]
                return items and items[0]["status"] == "delivered"

            await eventually(delivered, "the delivery recorded as delivered")
        assert (await rclient.xpending(ACME.outbox, GROUP))["pending"] == 0
    finally:
        if node.returncode is None:
            await _stop(node)


@pytest.fixture
async def own_valkey_node(valkey: EmbeddedValkey, tmp_path: Path) -> Any:
    """A node on its own supervised, AOF-backed embedded Valkey (as `livecart serve` runs)."""
    settings = make_settings(valkey, tmp_path, redis_url=None, partitions=PARTITIONS,
                             webhook_allow_private=True,
                             webhook_retry_schedule_s=(1.0, 0.05), webhook_retry_jitter=0.0)
    services, server, task, url = await start_node(settings)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            yield Live(url=url, services=services, http=http, ws_url="")
    finally:
        await stop_node(services, server, task)


async def test_kill_9_of_valkey_between_attempts_loses_nothing(own_valkey_node: Live,
                                                               receiver: Receiver) -> None:
    live = own_valkey_node
    embedded = live.services.valkey
    assert embedded is not None
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    r = await live.http.post("/api/v1/brands/acme/webhooks", headers=live.auth("brand", "acme"),
                             json={"url": f"{receiver.url}/v", "events": ["order.paid"]})
    assert r.status_code == 201, r.text
    receiver.plan["/v"] = [500]
    await give_wallet(live, "bob")
    assert (await buy(live, "bob", product["id"], stream=stream["id"])).status_code == 201
    [first] = await receiver.wait("/v", 1)

    async def scheduled() -> Any:  # the failed attempt recorded, its retry due in 1 s
        return await live.services.client.zcard(ACME.retry)

    await eventually(scheduled, "the retry scheduled")
    old_pid = embedded.pid
    embedded.kill_hard()
    await eventually(lambda: embedded.restarts == 1 and embedded.pid != old_pid, "Valkey back")
    hits = await receiver.wait("/v", 2, timeout_s=30)
    assert hits[1].headers["webhook-id"] == first.headers["webhook-id"]
    Webhook(r.json()["secret"]).verify(hits[1].body, hits[1].headers)
