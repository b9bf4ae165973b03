"""The one-time move of the legacy `{wh}` webhook data into the owners' partitions at start
(live/webhooks/migration.py, docs/webhooks.md "Migration"): nothing queued is lost, queues
keep their order, the delivery log and the endpoints stay as they were.

The legacy state is written the way the previous version wrote it: hook_emit.lua and
hook_done.lua on the `{wh}` keys (the scripts took the prefix as an argument already; only
delivery ids were `dl_<n>`), a node of that version having read the outbox.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as redis
from standardwebhooks.webhooks import Webhook

from conftest import UNIT, Live, make_settings, start_node, stop_node
from hook_receiver import Receiver, receiver  # noqa: F401 - the fixture
from shop import eventually

from checkout.store.keys import LEGACY_HOOKS as OLD
from checkout.store.keys import hook_keys, key_part
from checkout.store.scripts import SCRIPTS, load_all
from checkout.webhook_events import EventType, HookEvent, event_id, owner_partition
from live.node.valkey_server import EmbeddedValkey
from live.webhooks.dispatcher import GROUP
from live.webhooks.endpoints import new_secret
from live.webhooks.migration import migrate_legacy_hooks

KEEP_MS = 30 * 24 * 3600 * 1000


async def legacy_endpoint(client: redis.Redis, endpoint_id: str, owner: str, url: str) -> str:
    secret = new_secret()
    await client.hset(OLD.endpoint(endpoint_id), mapping={
        "id": endpoint_id, "owner": owner, "url": url, "description": "", "secret": secret,
        "events": "order.paid order.refunded", "enabled": "1", "created_ms": 1,
        "updated_ms": 1, "failures": 0, "failing_since_ms": 0})
    await client.sadd(OLD.owner(owner), endpoint_id)
    return secret


async def legacy_emit(client: redis.Redis, kind: EventType, order: str,
                      brand: str = "acme") -> list[str]:
    event = HookEvent(event_id(f"{kind}:{order}"), kind, f"order:{order}", (f"brand:{brand}",),
                      int(time.time() * 1000), {"id": order, "state": kind.value})
    keys = [OLD.event(event.id), OLD.outbox, OLD.counter, OLD.owner("operator"),
            OLD.owner(f"brand:{brand}")]
    reply = orjson.loads(await client.evalsha(
        SCRIPTS["hook_emit"].sha, len(keys), *keys, "event", event.id, kind.value,
        event.resource, key_part(event.resource), event.body(), OLD.prefix, "",
        int(time.time() * 1000), KEEP_MS, 1000, "dl_"))
    return list(reply["deliveries"])


async def legacy_done(client: redis.Redis, delivery: str, entry: str, outcome: str) -> None:
    record = await client.hgetall(OLD.delivery(delivery))
    endpoint = record[b"endpoint"].decode()
    keys = [OLD.delivery(delivery), OLD.endpoint(endpoint), record[b"queue"].decode(),
            OLD.outbox, OLD.retry]
    now = int(time.time() * 1000)
    await client.evalsha(SCRIPTS["hook_done"].sha, len(keys), *keys, delivery, entry, outcome,
                         200 if outcome == "ok" else 500, "", now, now, KEEP_MS, 10**9, 10**6,
                         GROUP)


async def test_legacy_deliveries_move_into_the_partitions_and_are_delivered_in_order(
        valkey: EmbeddedValkey, rclient: redis.Redis, receiver: Receiver,
        tmp_path: Path) -> None:
    await load_all(rclient)
    await rclient.xgroup_create(OLD.outbox, GROUP, id="0", mkstream=True)
    acme = await legacy_endpoint(rclient, "we_acme", "brand:acme", f"{receiver.url}/acme")
    ops = await legacy_endpoint(rclient, "we_ops", "operator", f"{receiver.url}/ops")
    # (Each event's deliveries: the operator's first, its owner set is read first.)
    # An old delivery, delivered before the upgrade: it stays in the log.
    [done_ops, done_acme] = await legacy_emit(rclient, EventType.ORDER_PAID, "o0")
    read = await rclient.xreadgroup(GROUP, "old-node", {OLD.outbox: ">"})
    entries = {f[b"d"].decode(): eid.decode() for eid, f in read[0][1]}
    await legacy_done(rclient, done_acme, entries[done_acme], "ok")
    await legacy_done(rclient, done_ops, entries[done_ops], "ok")
    # Order o1: paid, then refunded, queued behind it. The old node was handed acme's
    # order.paid and died before settling it; the operator's waits for a retry.
    [paid_ops, paid_acme] = await legacy_emit(rclient, EventType.ORDER_PAID, "o1")
    [refund_ops, refund_acme] = await legacy_emit(rclient, EventType.ORDER_REFUNDED, "o1")
    read = await rclient.xreadgroup(GROUP, "old-node", {OLD.outbox: ">"})
    entries = {f[b"d"].decode(): eid.decode() for eid, f in read[0][1]}
    assert set(entries) == {paid_acme, paid_ops}
    await legacy_done(rclient, paid_ops, entries[paid_ops], "retry")
    assert await rclient.zcard(OLD.retry) == 1

    settings = make_settings(valkey, tmp_path, webhook_allow_private=True,
                             webhook_retry_schedule_s=(0.05,), webhook_retry_jitter=0.0)
    services, server, task, url = await start_node(settings)
    try:
        assert [k async for k in rclient.scan_iter(match="lc:{wh}:*")] == []
        hits = {path: await receiver.wait(path, 2) for path in ("/acme", "/ops")}
        for path, secret in (("/acme", acme), ("/ops", ops)):
            assert [Webhook(secret).verify(h.body, h.headers)["type"] for h in hits[path]] == [
                "order.paid", "order.refunded"]
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            live = Live(url, services, http, "")

            async def logged() -> Any:
                r = await http.get("/api/v1/webhooks/we_acme/deliveries",
                                   headers=live.auth("brand", "acme"))
                items = r.json()["items"]
                return items if {i["status"] for i in items} == {"delivered"} else None

            items = await eventually(logged, "every delivery of the log delivered")
            assert [i["id"] for i in items] == [refund_acme, paid_acme, done_acme]
            r = await http.get("/api/v1/webhooks", headers=live.auth("operator", "ops"))
            assert [e["id"] for e in r.json()["items"]] == ["we_ops"]
        partition = owner_partition("brand:acme", settings.partitions)
        assert await rclient.exists(hook_keys(partition).endpoint("we_acme"))
        assert receiver.on("/acme")[0].headers["webhook-id"] == event_id("order.paid:o1")
        assert await migrate_legacy_hooks(rclient, settings.partitions) == 0  # done once
    finally:
        await stop_node(services, server, task)
    assert refund_ops and len({done_ops, paid_ops, refund_ops}) == 3


async def test_a_move_interrupted_after_the_copy_is_finished_once_by_the_next_start(
        rclient: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint's copy is one script; its legacy keys are deleted after. A crash in
    between (here: the first delete fails) leaves both: the next run finds the copy done,
    queues nothing twice and finishes the deletes."""
    await load_all(rclient)
    await rclient.xgroup_create(OLD.outbox, GROUP, id="0", mkstream=True)
    await legacy_endpoint(rclient, "we_acme", "brand:acme", "https://example.com/a")
    [paid] = await legacy_emit(rclient, EventType.ORDER_PAID, "o1")
    [refund] = await legacy_emit(rclient, EventType.ORDER_REFUNDED, "o1")
    unlink = rclient.unlink

    async def crash(*_: Any) -> Any:
        raise ConnectionError("killed")

    monkeypatch.setattr(rclient, "unlink", crash)
    with pytest.raises(ConnectionError):
        await migrate_legacy_hooks(rclient, 16)
    monkeypatch.setattr(rclient, "unlink", unlink)
    new = hook_keys(owner_partition("brand:acme", 16))
    assert await rclient.exists(new.endpoint("we_acme"), OLD.endpoint("we_acme")) == 2

    assert await migrate_legacy_hooks(rclient, 16) == 0  # found moved: nothing moved again
    assert [k async for k in rclient.scan_iter(match="lc:{wh}:*")] == []
    [(_, fields)] = await rclient.xrange(new.outbox)
    assert fields == {b"d": paid.encode()}  # the queue's head, once
    [queue] = [k async for k in rclient.scan_iter(match=new.prefix + "q:*")]
    assert await rclient.lrange(queue, 0, -1) == [paid.encode(), refund.encode()]
    assert (await rclient.hget(new.delivery(refund), "queue")) == queue
