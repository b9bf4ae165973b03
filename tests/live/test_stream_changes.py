"""Stream changes are one script each (stream.lua): concurrent hosts can't lose a pin or
pass the pin cap, every stored change has its event, and the offers the buy script reads
converge on the newest change whatever order their syncs land in."""

from __future__ import annotations

import asyncio

import orjson
from conftest import Live
from shop import make_brand, make_live_stream, make_product

from checkout.store.keys import product_keys, stream_events_key


async def test_concurrent_pins_never_pass_the_cap_or_lose_an_event(live: Live) -> None:
    await make_brand(live)
    products = [(await make_product(live, sku=f"P-{i}"))["id"] for i in range(10)]
    stream = (await make_live_stream(live, products))["id"]
    host = live.auth("creator", "cleo")
    cap = live.services.settings.max_pinned

    replies = await asyncio.gather(*(
        live.http.post(f"/api/v1/streams/{stream}/pins", json={"product_id": p}, headers=host)
        for p in products))
    assert sorted(r.status_code for r in replies) == [200] * cap + [409] * (10 - cap)
    refused = [r.json() for r in replies if r.status_code == 409]
    assert all(p["type"].endswith("/too-many-pins") for p in refused)
    pinned = (await live.services.streams.must_get(stream))["pinned"]
    assert len(pinned) == cap == len(set(pinned))

    events = [orjson.loads(f[b"e"]) for _, f in
              await live.services.client.xrange(stream_events_key(stream))]
    pins = [e for e in events if e["type"] == "pin"]
    assert [e["pinned"] for e in pins] == [pinned[:i + 1] for i in range(cap)]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    # Unpinning everything at once: each product leaves once, and the last event is [].
    await asyncio.gather(*(
        live.http.delete(f"/api/v1/streams/{stream}/pins/{p}", headers=host) for p in products))
    events = [orjson.loads(f[b"e"]) for _, f in
              await live.services.client.xrange(stream_events_key(stream))]
    unpins = [e for e in events if e["type"] == "unpin"]
    assert len(unpins) == cap and unpins[-1]["pinned"] == []


async def test_offers_converge_on_the_newest_change(live: Live) -> None:
    await make_brand(live)
    product = (await make_product(live, stock=5))["id"]
    stream = (await make_live_stream(live, [product]))["id"]
    host = live.auth("creator", "cleo")
    deal = {"product_id": product, "price_minor": 1000, "quantity": 5, "per_buyer_limit": 1,
            "countdown_s": 10, "duration_s": 60}
    for _ in range(5):
        await asyncio.gather(
            live.http.post(f"/api/v1/streams/{stream}/deals", json=deal, headers=host),
            live.http.delete(f"/api/v1/streams/{stream}/deals/{product}", headers=host))
        record = await live.services.streams.must_get(stream)
        offer = orjson.loads(await live.services.client.hget(product_keys(product).offers,
                                                             stream))
        assert offer["deal"] == record["deals"].get(product), (offer, record["deals"])
        rev = int(await live.services.client.hget(product_keys(product).offers, f"rev:{stream}"))
        assert rev == int(record["rev"])
