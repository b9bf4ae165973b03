"""Test helpers that set a shop up through the real HTTP API."""

from __future__ import annotations

import asyncio
import inspect
import io
import itertools
from typing import Any, Callable

import redis.asyncio as redis
from PIL import Image

from conftest import UNIT, Live
from checkout.store.keys import NODES

_keys = itertools.count()


def idem() -> str:
    return f"key-{next(_keys):08d}"


async def make_brand(live: Live, brand: str = "acme", currency: str = "USD") -> None:
    r = await live.http.post("/api/v1/brands", json={"id": brand, "name": brand.title(),
                                                      "currency": currency},
                             headers=live.auth("operator", "ops"))
    assert r.status_code == 201, r.text


async def make_product(live: Live, brand: str = "acme", **fields: Any) -> dict[str, Any]:
    body = {"title": "Sneaker", "price_minor": 5000, "currency": "USD", "sku": "SKU-1",
            "stock": 10, "commission_bps": 1000, "deal_floor_minor": 1, **fields}
    r = await live.http.post(f"/api/v1/brands/{brand}/products", json=body,
                             headers=live.auth("brand", brand))
    assert r.status_code == 201, r.text
    return r.json()


async def make_live_stream(live: Live, lineup: list[str], creator: str = "cleo",
                           **fields: Any) -> dict[str, Any]:
    stream = await make_stream(live, lineup, creator, **fields)
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/live",
                             headers=live.auth("creator", creator))
    assert r.status_code == 200, r.text
    return r.json()


async def give_wallet(live: Live, buyer: str, token: str = "tok_visa") -> None:
    r = await live.http.put("/api/v1/me/wallet", headers=live.auth("buyer", buyer), json={
        "shipping": {"name": "B", "line1": "1 St", "city": "X", "postal_code": "1",
                     "country": "US"}, "payment_token": token})
    assert r.status_code == 200, r.text


async def buy(live: Live, buyer: str, product: str, *, stream: str | None = None,
              quantity: int = 1, key: str | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {"product_id": product, "quantity": quantity, **extra}
    if stream:
        body["stream_id"] = stream
    headers = {**live.auth("buyer", buyer), "Idempotency-Key": key or idem()}
    return await live.http.post("/api/v1/buy", json=body, headers=headers)


async def stock_of(live: Live, product: str, brand: str = "acme") -> dict[str, dict[str, int]]:
    r = await live.http.get(f"/api/v1/products/{product}/stock", headers=live.auth("brand", brand))
    assert r.status_code == 200, r.text
    return {item["variant"]: item for item in r.json()["items"]}


async def db_state(client: redis.Redis) -> dict[bytes, Any]:
    """Every key and its value (TTLs aside): "nothing changed" means this is equal."""
    state: dict[bytes, Any] = {}
    async for key in client.scan_iter(count=1000):
        kind = (await client.type(key)).decode()
        if kind == "string":
            value: Any = await client.get(key)
        elif kind == "hash":
            value = await client.hgetall(key)
        elif kind == "set":
            value = sorted(await client.smembers(key))
        elif kind == "zset" and key == NODES.encode():  # who is alive, not when it beat
            value = await client.zrange(key, 0, -1)
        elif kind == "zset":
            value = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await client.lrange(key, 0, -1)
        elif kind == "stream":
            value = await client.xrange(key)
        else:
            value = None
        state[key] = (kind, value)
    return state


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    """Poll `check()` (sync or async) until it is truthy, at most `timeout_s` (times UNIT);
    returns what it returned."""
    deadline = asyncio.get_running_loop().time() + timeout_s * UNIT
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def make_stream(live: Live, lineup: list[str], creator: str = "cleo",
                      **fields: Any) -> dict[str, Any]:
    """A scheduled stream (not live yet)."""
    r = await live.http.post("/api/v1/streams", json={"title": "Drop", "lineup": lineup, **fields},
                             headers=live.auth("creator", creator))
    assert r.status_code == 201, r.text
    return r.json()


async def video_stats(live: Live, stream_id: str, creator: str = "cleo") -> dict[str, Any]:
    r = await live.http.get(f"/api/v1/streams/{stream_id}/video",
                            headers=live.auth("creator", creator))
    assert r.status_code == 200, r.text
    return r.json()


def png(color: str = "#e11d48", size: tuple[int, int] = (64, 48)) -> bytes:
    """A real PNG picture (for image uploads)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


async def upload_image(live: Live, product: str, data: bytes, *, brand: str = "acme",
                       content_type: str = "image/png") -> Any:
    return await live.http.post(f"/api/v1/products/{product}/images", content=data,
                                headers={**live.auth("brand", brand),
                                         "Content-Type": content_type})
