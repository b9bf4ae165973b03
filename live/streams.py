"""Live streams: schedule, go live, end; lineup, pins and flash deals, stored in Valkey.

Every change is also written to the stream's event log (`lc:{s:<id>}:events`, a Valkey
stream) and published, so the hub can push it; and each lineup product's offer record
(in the product's slot) is kept in step, because the buy script reads only that slot.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any, Literal

import orjson
import redis.asyncio as redis
from pydantic import Field, StringConstraints

from live.api import StrictModel
from checkout.ids import ID_PATTERN, new_stream_id
from checkout.keys import (STREAMS_INDEX, creator_streams_key, key_part, product_keys,
                           stream_events_key, stream_key, stream_seq_key)
from checkout.scripts import SCRIPTS, call_script
from live.stream_lifecycle import StreamAction, StreamState, apply

__all__ = ["StreamStore", "StreamIn", "DealIn", "PinIn", "LineupIn", "StreamError",
           "EVENTS_MAXLEN", "events_channel"]

EVENTS_MAXLEN = 10_000  # per-stream event history kept for resuming viewers (approximate)
MAX_LINEUP = 50

ProductRef = Annotated[str, StringConstraints(pattern=ID_PATTERN)]



class StreamIn(StrictModel):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True,
                                            pattern=r"\S")]
    lineup: Annotated[list[ProductRef], Field(max_length=MAX_LINEUP)] = []
    scheduled_at_ms: Annotated[int, Field(ge=0)] | None = None
    purchase_mode: Literal["instant", "cart_hold", "first_paid"] = "instant"


class LineupIn(StrictModel):
    lineup: Annotated[list[ProductRef], Field(max_length=MAX_LINEUP)]


class PinIn(StrictModel):
    product_id: ProductRef


class DealIn(StrictModel):
    product_id: ProductRef
    price_minor: Annotated[int, Field(ge=1, le=10**10)]
    quantity: Annotated[int, Field(ge=1, le=1_000_000)]
    per_buyer_limit: Annotated[int, Field(ge=1, le=100)] = 1
    countdown_s: Annotated[int, Field(ge=10, le=300)]
    duration_s: Annotated[int, Field(ge=10, le=24 * 3600)]


class StreamError(Exception):
    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


def events_channel(stream_id: str) -> str:
    return f"lc:live:{key_part(stream_id)}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for key in ("lineup", "pinned", "deals"):
        out[key] = orjson.loads(out.get(key, "[]" if key != "deals" else "{}"))
    for key in ("scheduled_ms", "started_ms", "ended_ms", "created_ms"):
        if out.get(key):
            out[key] = int(out[key])
    return out


class StreamStore:
    def __init__(self, client: redis.Redis, *, max_pinned: int) -> None:
        self._client = client
        self._max_pinned = max_pinned

    async def create(self, creator_id: str, data: StreamIn, lineup_ok: Any) -> dict[str, Any]:
        """`lineup_ok(product_id)` raises StreamError when the creator may not sell a product."""
        for product_id in data.lineup:
            await lineup_ok(product_id)
        stream_id = new_stream_id()
        now = _now_ms()
        record = {
            "id": stream_id, "creator_id": creator_id, "title": data.title,
            "state": StreamState.SCHEDULED.value, "lineup": orjson.dumps(list(dict.fromkeys(data.lineup))),
            "pinned": b"[]", "deals": b"{}", "purchase_mode": data.purchase_mode,
            "scheduled_ms": data.scheduled_at_ms or now, "created_ms": now,
        }
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hset(stream_key(stream_id), mapping=record)
            pipe.zadd(STREAMS_INDEX, {stream_id: record["scheduled_ms"]})
            pipe.zadd(creator_streams_key(creator_id), {stream_id: now})
            await pipe.execute()
        return await self.get(stream_id) or {}

    async def get(self, stream_id: str) -> dict[str, Any] | None:
        raw = await self._client.hgetall(stream_key(stream_id))
        return _decode(raw) if raw else None

    async def must_get(self, stream_id: str) -> dict[str, Any]:
        stream = await self.get(stream_id)
        if stream is None:
            raise StreamError(404, "not-found", f"no stream {stream_id}")
        return stream

    async def act(self, stream_id: str, action: StreamAction) -> dict[str, Any]:
        stream = await self.must_get(stream_id)
        target = apply(StreamState(stream["state"]), action)
        fields: dict[str, Any] = {"state": target.value}
        if target is StreamState.LIVE:
            fields["started_ms"] = _now_ms()
        if target in (StreamState.ENDED, StreamState.CANCELLED):
            fields["ended_ms"] = _now_ms()
            fields["pinned"] = b"[]"
        await self._client.hset(stream_key(stream_id), mapping=fields)
        stream.update(fields)
        if target in (StreamState.ENDED, StreamState.CANCELLED):
            stream["pinned"] = []
        await self._sync_offers(stream, stream["lineup"])
        await self.emit(stream_id, "stream.state", {"state": target.value})
        return stream

    async def set_lineup(self, stream_id: str, lineup: list[str], lineup_ok: Any) -> dict[str, Any]:
        stream = await self.must_get(stream_id)
        if stream["state"] in (StreamState.ENDED, StreamState.CANCELLED):
            raise StreamError(409, "stream-over", "the stream is over")
        for product_id in lineup:
            await lineup_ok(product_id)
        lineup = list(dict.fromkeys(lineup))
        removed = [p for p in stream["lineup"] if p not in lineup]
        pinned = [p for p in stream["pinned"] if p in lineup]
        await self._client.hset(stream_key(stream_id), mapping={
            "lineup": orjson.dumps(lineup), "pinned": orjson.dumps(pinned)})
        stream["lineup"], stream["pinned"] = lineup, pinned
        await self._sync_offers(stream, lineup, removed=removed)
        await self.emit(stream_id, "lineup.changed", {"lineup": lineup, "pinned": pinned})
        return stream

    async def pin(self, stream_id: str, product_id: str) -> dict[str, Any]:
        stream = await self._live(stream_id)
        if product_id not in stream["lineup"]:
            raise StreamError(409, "not-in-lineup", f"{product_id} is not in this stream's lineup")
        pinned: list[str] = stream["pinned"]
        if product_id not in pinned:
            if len(pinned) >= self._max_pinned:
                raise StreamError(409, "too-many-pins",
                                  f"at most {self._max_pinned} products can be pinned at once")
            pinned = [*pinned, product_id]
            await self._client.hset(stream_key(stream_id), "pinned", orjson.dumps(pinned))
            await self.emit(stream_id, "pin", {"product_id": product_id, "pinned": pinned})
        stream["pinned"] = pinned
        return stream

    async def unpin(self, stream_id: str, product_id: str) -> dict[str, Any]:
        stream = await self._live(stream_id)
        pinned = [p for p in stream["pinned"] if p != product_id]
        if pinned != stream["pinned"]:
            await self._client.hset(stream_key(stream_id), "pinned", orjson.dumps(pinned))
            await self.emit(stream_id, "unpin", {"product_id": product_id, "pinned": pinned})
        stream["pinned"] = pinned
        return stream

    async def start_deal(self, stream_id: str, deal: DealIn, regular_price: int) -> dict[str, Any]:
        stream = await self._live(stream_id)
        if deal.product_id not in stream["lineup"]:
            raise StreamError(409, "not-in-lineup", f"{deal.product_id} is not in the lineup")
        if deal.price_minor >= regular_price:
            raise StreamError(422, "deal-not-cheaper", "a deal price must be below the regular price")
        opens = _now_ms() + deal.countdown_s * 1000
        record = {"id": secrets.token_hex(4), "product_id": deal.product_id,
                  "price_minor": deal.price_minor,
                  "cap": deal.quantity, "per_buyer_limit": deal.per_buyer_limit,
                  "opens_ms": opens, "closes_ms": opens + deal.duration_s * 1000}
        deals = {**stream["deals"], deal.product_id: record}
        await self._client.hset(stream_key(stream_id), "deals", orjson.dumps(deals))
        k = product_keys(deal.product_id)
        # A new deal starts its own count of deal units.
        await self._client.hdel(k.offers, f"dealsold:{stream_id}")
        stream["deals"] = deals
        await self._sync_offers(stream, [deal.product_id])
        await self.emit(stream_id, "deal.scheduled", record)
        return record

    async def end_deal(self, stream_id: str, product_id: str) -> None:
        stream = await self._live(stream_id)
        if product_id not in stream["deals"]:
            raise StreamError(404, "not-found", f"no deal on {product_id}")
        deals = {p: d for p, d in stream["deals"].items() if p != product_id}
        await self._client.hset(stream_key(stream_id), "deals", orjson.dumps(deals))
        stream["deals"] = deals
        await self._sync_offers(stream, [product_id])
        await self.emit(stream_id, "deal.closed", {"product_id": product_id})

    async def set_ingest(self, stream_id: str, ingest: str) -> None:
        """Record and announce what the video ingest is doing: live, reconnecting or none."""
        await self._client.hset(stream_key(stream_id), "ingest", ingest)
        await self.emit(stream_id, "stream.ingest", {"ingest": ingest})

    async def emit(self, stream_id: str, kind: str, payload: dict[str, Any]) -> int:
        """Append to the stream's event log with the next seq and publish it to the hubs."""
        event = orjson.dumps({"type": kind, "at_ms": _now_ms(), **payload})
        seq = await call_script(self._client, SCRIPTS["emit"],
                                [stream_seq_key(stream_id), stream_events_key(stream_id)],
                                [event, EVENTS_MAXLEN, events_channel(stream_id)])
        return int(seq)  # type: ignore[call-overload]

    async def _live(self, stream_id: str) -> dict[str, Any]:
        stream = await self.must_get(stream_id)
        if stream["state"] != StreamState.LIVE:
            raise StreamError(409, "stream-not-live", f"the stream is {stream['state']}")
        return stream

    async def _sync_offers(self, stream: dict[str, Any], products: list[str],
                           removed: list[str] = ()) -> None:  # type: ignore[assignment]
        """Write each product's offer for this stream into the product's own hash slot."""
        async with self._client.pipeline(transaction=False) as pipe:
            for product_id in products:
                offer = {"state": stream["state"], "creator": stream["creator_id"],
                         "deal": stream["deals"].get(product_id)}
                pipe.hset(product_keys(product_id).offers, stream["id"], orjson.dumps(offer))
            for product_id in removed:
                pipe.hdel(product_keys(product_id).offers, stream["id"])
            await pipe.execute()
