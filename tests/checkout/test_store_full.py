"""Valkey refusing writes (a real refusal: `maxmemory` reached with no eviction policy) is
"not now", not a crash: the buy and the wallet answer 503 `unavailable` with Retry-After,
nothing is half-written, and the same Idempotency-Key once memory is back gets one order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from conftest import Live
from shop import buy, give_wallet, idem, make_brand, make_live_stream, make_product, stock_of


@pytest.fixture
async def full(rclient: redis.Redis) -> AsyncIterator[Any]:
    """Turns Valkey's memory limit on and off; always off again after the test (the server
    is shared by the session)."""

    async def set_full(on: bool) -> None:
        await rclient.config_set("maxmemory-policy", "noeviction")
        await rclient.config_set("maxmemory", "1" if on else "0")

    yield set_full
    await set_full(False)


async def test_a_full_store_is_503_unavailable_and_the_retry_buys_once(live: Live,
                                                                       full: Any) -> None:
    await make_brand(live)
    product = await make_product(live, stock=3)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    await full(True)
    key = idem()
    r = await buy(live, "bob", product["id"], stream=stream["id"], key=key)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("unavailable") and r.headers["retry-after"] == "1"
    saved = await live.http.put("/api/v1/me/wallet", headers=live.auth("buyer", "carol"), json={
        "shipping": {"name": "C", "line1": "1 St", "city": "X", "postal_code": "1",
                     "country": "US"}, "payment_token": "tok_visa"})
    assert saved.status_code == 503, saved.text
    await full(False)
    untouched = (await stock_of(live, product["id"]))["default"]
    assert (untouched["available"], untouched["held"], untouched["sold"]) == (3, 0, 0)
    first = await buy(live, "bob", product["id"], stream=stream["id"], key=key)
    again = await buy(live, "bob", product["id"], stream=stream["id"], key=key)
    assert first.status_code == 201, first.text
    assert again.json()["order"]["id"] == first.json()["order"]["id"]
    assert (await stock_of(live, product["id"]))["default"]["available"] == 2
