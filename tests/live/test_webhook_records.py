"""Recording an event across webhook partitions (checkout/webhook_events.py HookRecords): one
hook_emit.lua per partition of its owners and the operator, each idempotent per event id,
so a producer killed between the two calls and run again neither loses nor doubles a
delivery (docs/webhooks.md "Partitions")."""

from __future__ import annotations

import time

import redis.asyncio as redis
from redis.crc import key_slot

from checkout.store.keys import hook_keys
from checkout.store.scripts import SCRIPTS, call_script, load_all
from checkout.webhook_events import (OPERATOR_OWNER, EventType, HookEvent, HookRecords,
                                     brand_owner, event_id, owner_partition)
from live.webhooks.endpoints import EndpointLimits, EndpointStore

COUNT = 16


async def test_a_retry_after_a_crash_between_the_partitions_neither_loses_nor_doubles(
        rclient: redis.Redis) -> None:
    await load_all(rclient)
    records = HookRecords(keep_ms=60_000, log_keep=100, partitions=COUNT)
    store = EndpointStore(rclient, records, EndpointLimits(max_per_owner=20,
                                                           rotation_grace_ms=1000))
    ops_partition = owner_partition(OPERATOR_OWNER, COUNT)
    brand = next(b for b in (f"brand{i}" for i in range(100))
                 if owner_partition(brand_owner(b), COUNT) != ops_partition)
    mine, _ = await store.create(brand_owner(brand), "https://example.com/a",
                                 [EventType.ORDER_PAID], "")
    ops, _ = await store.create(OPERATOR_OWNER, "https://example.com/o",
                                [EventType.ORDER_PAID], "")
    event = HookEvent(event_id("order:test-1"), EventType.ORDER_PAID, "order:o1",
                      (brand_owner(brand),), int(time.time() * 1000), {"id": "o1"})

    calls = records.args(event)
    assert len(calls) == 2  # the brand's partition, the operator's
    for keys, _ in calls:
        assert len({key_slot(k.encode()) for k in keys}) == 1
    first_keys, first_args = calls[0]
    await call_script(rclient, SCRIPTS["hook_emit"], first_keys, first_args)  # then killed
    again = await records.record(rclient, event)  # the producer's retry
    assert len(again) == 1  # only the partition the crash missed
    assert await records.record(rclient, event) == []  # and a third run: nothing

    for endpoint, owner in ((mine, brand_owner(brand)), (ops, OPERATOR_OWNER)):
        [delivery] = await store.deliveries(endpoint["id"], 0, 10)
        assert (delivery["event"], delivery["status"]) == (event.id, "pending")
        partition = owner_partition(owner, COUNT)
        assert delivery["id"].startswith(f"dl_{partition}_")
        assert await rclient.xlen(hook_keys(partition).outbox) == 1
