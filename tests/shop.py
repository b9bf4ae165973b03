"""Test helpers that set a shop up through the real HTTP API."""

from __future__ import annotations

import asyncio
import inspect
import io
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import orjson
import redis.asyncio as redis
from PIL import Image
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

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


# A buy answered 202 (payment pending) or 5xx (a node or Valkey away, HAProxy's 502 for a
# node that died mid-request): not an outcome yet, ask again with the same key.
RETRYABLE = frozenset({202, 502, 503})


@dataclass
class Acked:
    """A buy answered 201: who asked, and the order its answer carried."""

    buyer: str
    order: dict[str, Any]


class Buyers:
    """Phones racing for one product through a crash: each buy is asked again with the same
    Idempotency-Key until it resolves (201 or a refusal), a transport error included, so
    every key lands on exactly one outcome. Keeps every acknowledgement by its key, and how
    many requests are on the wire (to show a crash came mid-request)."""

    def __init__(self, live: Live, product: str, stream: str, *, in_flight: int,
                 ack_goal: int, attempts: int = 400) -> None:
        self.live = live
        self.product = product
        self.stream = stream
        self.acked: dict[str, Acked] = {}  # Idempotency-Key -> its 201
        self.enough_acked = asyncio.Event()  # set once `ack_goal` buys were acknowledged
        self.sending = 0  # requests on the wire now
        self.sent = 0  # requests sent so far
        self.retries = 0  # answers that were not an outcome (see RETRYABLE), errors included
        self._gate = asyncio.Semaphore(in_flight)
        self._ack_goal = ack_goal
        self._attempts = attempts

    async def resolve(self, buyer: str, key: str) -> httpx.Response:
        async with self._gate:
            for _ in range(self._attempts):
                self.sending += 1
                self.sent += 1
                try:
                    r = await buy(self.live, buyer, self.product, stream=self.stream, key=key)
                except httpx.TransportError:  # timeouts included
                    r = None
                finally:
                    self.sending -= 1
                if r is not None and r.status_code not in RETRYABLE:
                    if r.status_code == 201:
                        self.acked[key] = Acked(buyer, r.json()["order"])
                        if len(self.acked) >= self._ack_goal:
                            self.enough_acked.set()
                    return r
                self.retries += 1
                await asyncio.sleep(0.05 * UNIT)
        raise AssertionError(f"{buyer}'s buy {key} never resolved")

    def by_buyer(self) -> dict[str, dict[str, Any]]:
        """The acknowledged orders by buyer (when each buyer buys once)."""
        return {a.buyer: a.order for a in self.acked.values()}


@dataclass
class Viewer:
    """A page's hub client in Python: resumes from its last seq whenever its socket closes
    (a close code, a dead node), through whatever `url` leads to (HAProxy)."""

    url: str
    seqs: list[int] = field(default_factory=list)  # every event seq applied, in order
    kinds: list[str] = field(default_factory=list)  # each of those events' type
    nodes: list[str] = field(default_factory=list)  # the node of each connection
    opened: list[float] = field(default_factory=list)  # each connection's time.monotonic()
    closes: list[int] = field(default_factory=list)
    snapshots: int = 0
    start: int = -1  # the join snapshot's seq
    joined: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, until: asyncio.Future[int]) -> None:
        last: int | None = None
        while not (until.done() and last is not None and last >= until.result()):
            since = "" if last is None else f"?since={last}"
            try:
                async with connect(self.url + since) as ws:
                    self.opened.append(time.monotonic())
                    self.nodes.append(ws.response.headers["X-Livecart-Node"])
                    while not (until.done() and last is not None and last >= until.result()):
                        message = orjson.loads(await ws.recv())
                        if message["type"] == "snapshot":
                            self.snapshots += 1
                            last = self.start = message["seq"]
                            self.joined.set()
                        elif "seq" in message:
                            self.seqs.append(message["seq"])
                            self.kinds.append(message["type"])
                            last = message["seq"]
            except ConnectionClosed as exc:
                self.closes.append(exc.rcvd.code if exc.rcvd else 1006)
            except (InvalidHandshake, OSError):
                pass  # refused while HAProxy moves over: come back, as the pages do
            await asyncio.sleep(0.1 * UNIT)  # the pages' backoff, shortened


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
