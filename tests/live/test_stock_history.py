"""A live show's stock history (live/hub/stock_history.py, stock_history.lua) against the
real embedded Valkey: only a live show, only changes, bounded by its limit, written once
whatever number of hubs read the same stock, a stale read never landing after a newer one,
and cleared with the show's recording. Then two real hubs ticking one room of a real node."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis

from checkout.ids import StreamId
from checkout.store.keys import stock_history_keys, stream_key
from conftest import UNIT, Live
from live.hub.rooms import Hub, HubLimits
from live.hub.stock_history import read_stock_history, record_stock
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product


async def live_show(client: redis.Redis, stream: str = "s1") -> str:
    await client.hset(stream_key(stream), mapping={"state": "live"})
    return stream


def levels(n: int, variant: str = "default") -> dict[str, int]:
    return {variant: n}


async def test_only_changes_of_a_live_show_are_recorded(rclient: redis.Redis) -> None:
    await rclient.hset(stream_key("s1"), mapping={"state": "scheduled"})
    assert await record_stock(rclient, {"s1": (1000, {"p1": levels(5)})}) == {"s1": -1}
    await live_show(rclient)
    assert await record_stock(rclient, {"s1": (1100, {"p1": levels(5), "p2": levels(2)})}) == {"s1": 2}
    assert await record_stock(rclient, {"s1": (1200, {"p1": levels(5)})}) == {"s1": 0}
    assert await record_stock(rclient, {"s1": (1300, {"p1": levels(4), "p2": levels(2)})}) == {"s1": 1}
    # Levels are compared in one spelling: the same variants in another order are no change.
    await record_stock(rclient, {"s1": (1400, {"p3": {"b": 1, "a": 2}})})
    assert await record_stock(rclient, {"s1": (1500, {"p3": {"a": 2, "b": 1}})}) == {"s1": 0}
    history = await read_stock_history(rclient, "s1")
    assert history == [{"at_ms": 1100, "stock": {"p1": levels(5), "p2": levels(2)}},
                       {"at_ms": 1300, "stock": {"p1": levels(4)}},
                       {"at_ms": 1400, "stock": {"p3": {"a": 2, "b": 1}}}]
    await rclient.hset(stream_key("s1"), "state", "ended")
    assert await record_stock(rclient, {"s1": (1600, {"p1": levels(0)})}) == {"s1": -2}
    assert len(await read_stock_history(rclient, "s1")) == 3


async def test_two_hubs_reading_the_same_stock_record_each_change_once(rclient: redis.Redis) -> None:
    await live_show(rclient)
    # Hub A and hub B each tick; both read every level, at slightly different times.
    reads = [(1000, 5), (1010, 5), (1100, 4), (1105, 4), (1200, 4), (1210, 7), (1300, 7)]
    for read_ms, n in reads:
        await record_stock(rclient, {"s1": (read_ms, {"p1": levels(n)})})
    # A slow hub's read from before the last recorded one arrives late: not recorded.
    assert await record_stock(rclient, {"s1": (1150, {"p1": levels(4)})}) == {"s1": 0}
    history = await read_stock_history(rclient, "s1")
    assert [(h["at_ms"], h["stock"]["p1"]["default"]) for h in history] == [
        (1000, 5), (1100, 4), (1210, 7)]


async def test_the_history_keeps_its_limit_the_newest_changes(rclient: redis.Redis) -> None:
    await live_show(rclient)
    for i in range(12):
        await record_stock(rclient, {"s1": (1000 + i, {"p1": levels(i)})}, limit=5)
    keys = stock_history_keys("s1")
    assert await rclient.xlen(keys.history) == 5
    history = await read_stock_history(rclient, "s1")
    assert [h["stock"]["p1"]["default"] for h in history] == [7, 8, 9, 10, 11]
    # The last recorded level still dedupes: the same again is no entry.
    assert await record_stock(rclient, {"s1": (2000, {"p1": levels(11)})}, limit=5) == {"s1": 0}


async def test_two_real_hubs_on_one_show_write_each_change_once(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, sku="SKU-1", stock=20)
    stream = await make_live_stream(live, [product["id"]])
    # The node's own hub and a second one (another node's) both keep the room open and tick.
    other = Hub(live.services.client, "other-node", HubLimits())
    other.start()
    heard: list[tuple[Hub, dict[str, Any]]] = []
    try:
        for hub in (live.services.hub, other):
            await hub.tap(StreamId(stream["id"]), [product["id"]],
                          lambda seq, m, hub=hub: heard.append((hub, m)) if seq is None else None)
        await eventually(lambda: {h for h, m in heard if "stock" in m} == {live.services.hub, other},
                         "both hubs read the stock")
        await give_wallet(live, "bob")
        for _ in range(2):
            assert (await buy(live, "bob", product["id"], stream=stream["id"])).status_code == 201
            await asyncio.sleep(0.5 * UNIT)  # several ticks of each hub in between
        restock = await live.http.put(
            f"/api/v1/products/{product['id']}/variants/default/stock",
            json={"adjust": 5, "reason": "restock"}, headers=live.auth("brand", "acme"))
        assert restock.status_code == 200, restock.text

        def seen_by_both(n: int) -> bool:
            return all(any(m.get("stock", {}).get(product["id"]) == levels(n) for h, m in heard
                           if h is hub) for hub in (live.services.hub, other))
        await eventually(lambda: seen_by_both(23), "both hubs see the restock")
        # Each hub offered every change and was answered (a room records what the script
        # took or already had): both wrote, and the history has each change once.
        rooms = [hub.rooms[stream["id"]] for hub in (live.services.hub, other)]
        await eventually(lambda: all(r.stock_recorded == {product["id"]: levels(23)}
                                     for r in rooms), "both hubs recorded the restock")
    finally:
        await other.close()
    history = await read_stock_history(live.services.client, stream["id"])
    assert [h["stock"][product["id"]]["default"] for h in history] == [20, 19, 18, 23]


async def test_the_history_goes_with_the_recording(live: Live) -> None:
    client = live.services.client
    await live_show(client, "s9")
    await record_stock(client, {"s9": (1000, {"p1": levels(3)})})
    await live.services.streams.set_recorded(StreamId("s9"), True)
    assert await read_stock_history(client, "s9")
    await live.services.streams.set_recorded(StreamId("s9"), False)
    keys = stock_history_keys("s9")
    assert await client.exists(keys.history, keys.last) == 0
