"""Live streams: schedule, go live, end; lineup, pins and flash deals, stored in Valkey.

Every change is also written to the stream's event log (`lc:{s:<id>}:events`, a Valkey
stream) and published, so the hub can push it; and each lineup product's offer record
(in the product's slot) is kept in step, because the buy script reads only that slot.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import orjson
import redis.asyncio as redis
from pydantic import Field, StringConstraints
from redis.typing import EncodableT, FieldT

from checkout.catalog import WebUrl
from checkout.errors import Refused
from checkout.funnel import file_show
from checkout.models import StrictModel
from checkout.ids import ID_PATTERN, CreatorId, ProductId, StreamId, new_stream_id
from checkout.store.keys import (STREAMS_INDEX, creator_streams_key, key_part, product_keys,
                           stock_history_keys, stream_events_key, stream_key, stream_seq_key)
from checkout.store.replies import text, text_hash
from checkout.store.batcher import CommandBatcher
from checkout.store.scripts import SCRIPTS, call_script
from checkout.webhook_events import HookRecords, stream_event
from live.streams.lifecycle import TRANSITIONS, IllegalStreamMove, StreamAction, StreamState
from live.streams.shows import ShowIndex

__all__ = ["StreamStore", "StreamIn", "DealIn", "PinIn", "LineupIn", "StreamError",
           "LineupCheck", "EVENTS_MAXLEN", "MAX_CODES", "events_channel", "codes_of"]

EVENTS_MAXLEN = 10_000  # per-stream event history kept for resuming viewers (approximate)
MAX_LINEUP = 50
# Product codes one show hands out (comment-to-buy, docs/chat.md): as many as a claim's
# code can say (4 digits, live/chat/text.py), codes are never reused within a show.
MAX_CODES = 9999

ProductRef = Annotated[ProductId, StringConstraints(pattern=ID_PATTERN)]
# Raises StreamError when the creator may not sell the product.
LineupCheck = Callable[[ProductId], Awaitable[object]]



class StreamIn(StrictModel):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True,
                                            pattern=r"\S")]
    lineup: Annotated[list[ProductRef], Field(max_length=MAX_LINEUP)] = []
    scheduled_at_ms: Annotated[int, Field(ge=0)] | None = None
    purchase_mode: Literal["instant", "cart_hold", "first_paid"] = "instant"
    cover_url: WebUrl | None = None  # the show's picture in listings (else a product's)


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


class StreamError(Refused):
    """A stream change the rules refuse (not live, not in the lineup, too many pins...)."""


def events_channel(stream_id: str) -> str:
    """The shard pub/sub channel of a stream's events, in the stream's slot (SPUBLISH from
    its scripts): on a cluster only the stream's shard carries them."""
    return f"lc:{{s:{key_part(stream_id)}}}:live"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _decode(raw: Mapping[bytes | str, bytes | str]) -> dict[str, Any]:
    out: dict[str, Any] = text_hash(raw)
    for key in ("lineup", "pinned", "deals"):
        out[key] = orjson.loads(out.get(key, "[]" if key != "deals" else "{}"))
    for key in ("scheduled_ms", "started_ms", "ended_ms", "created_ms"):
        if out.get(key):
            out[key] = int(out[key])
    out["codes"] = codes_of(out.get("codes"), out["lineup"])
    out.pop("next_code", None)
    out["recorded"] = out.get("recorded") == "1"
    return out


def codes_of(raw: str | bytes | None, lineup: list[str]) -> dict[str, int]:
    """The show's product codes {product: n}. A stream from before codes has none stored:
    its lineup's in order, as stream.lua hands them out at its next lineup change."""
    if raw:
        return {str(k): int(v) for k, v in orjson.loads(raw).items()}
    return {p: n for n, p in enumerate(lineup, 1)}


async def _file_for_brands(client: redis.Redis, stream: Mapping[str, Any]) -> None:
    """List the show on the dashboard of each brand it features (checkout/funnel.py), at
    when it went live, else when it is scheduled; after each lineup or lifecycle change."""
    await file_show(client, stream["id"], stream["lineup"],
                    stream.get("started_ms") or stream["scheduled_ms"])


class StreamStore:
    def __init__(self, client: redis.Redis, *, max_pinned: int, shows: ShowIndex,
                 hooks: HookRecords | None = None, batcher: CommandBatcher | None = None) -> None:
        self._client = client
        self._batcher = batcher  # a bid's check that the stream exists rides its pipeline
        self._max_pinned = max_pinned
        self.shows = shows  # where discovery finds the streams, filed after each change
        self._hooks = hooks  # the stream.* webhook events, recorded after each lifecycle change
        # Called with the stream each time one goes live (the node starts its show alert);
        # it must return at once: going live never waits on it.
        self.on_live: Callable[[Mapping[str, Any]], object] | None = None

    async def create(self, creator_id: CreatorId, data: StreamIn,
                     lineup_ok: LineupCheck) -> dict[str, Any]:
        """`lineup_ok(product_id)` raises StreamError when the creator may not sell a product."""
        for product_id in data.lineup:
            await lineup_ok(product_id)
        stream_id = new_stream_id()
        now = _now_ms()
        lineup = list(dict.fromkeys(data.lineup))
        record: dict[FieldT, EncodableT] = {
            "id": stream_id, "creator_id": creator_id, "title": data.title,
            "state": StreamState.SCHEDULED.value, "lineup": orjson.dumps(lineup),
            "codes": orjson.dumps({p: n for n, p in enumerate(lineup, 1)}),
            "next_code": len(lineup) + 1,
            "pinned": b"[]", "deals": b"{}", "purchase_mode": data.purchase_mode,
            "scheduled_ms": data.scheduled_at_ms or now, "created_ms": now,
            **({"cover_url": str(data.cover_url)} if data.cover_url else {}),
        }
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hset(stream_key(stream_id), mapping=record)
            pipe.zadd(STREAMS_INDEX, {stream_id: record["scheduled_ms"]})
            pipe.zadd(creator_streams_key(creator_id), {stream_id: now})
            await pipe.execute()
        stream = await self.must_get(stream_id)
        await self.shows.record(stream, now)
        await self._record_hook(stream, now)
        await _file_for_brands(self._client, stream)
        return stream

    async def get(self, stream_id: StreamId) -> dict[str, Any] | None:
        raw = await self._client.hgetall(stream_key(stream_id))
        return _decode(raw) if raw else None

    def start_exists(self, stream_id: StreamId) -> Awaitable[int]:
        """Whether the stream exists (1 or 0), sent now (on the batcher, if the store has
        one): a bid needs no more than that, and what it sends before awaiting rides the
        same pipeline."""
        if self._batcher is None:
            return self._client.exists(stream_key(stream_id))
        return self._batcher.submit("EXISTS", stream_key(stream_id))

    async def must_get(self, stream_id: StreamId) -> dict[str, Any]:
        stream = await self.get(stream_id)
        if stream is None:
            raise StreamError(404, "not-found", f"no stream {stream_id}")
        return stream

    async def act(self, stream_id: StreamId, action: StreamAction) -> dict[str, Any]:
        """Apply a lifecycle action (go live, end, cancel) by the table in stream_lifecycle."""
        rules = ";".join(f"{src}={dst}" for (src, act), dst in TRANSITIONS.items()
                         if act is action)
        stream, _ = await self._change(stream_id, "state", {"action": action.value,
                                                             "rules": rules}, action=action)
        await self._sync_offers(stream, stream["lineup"])
        await self.shows.record(stream, _now_ms())
        await self._record_hook(stream, _now_ms())
        await _file_for_brands(self._client, stream)
        if action is StreamAction.GO_LIVE and self.on_live is not None:
            self.on_live(stream)
        return stream

    async def set_lineup(self, stream_id: StreamId, lineup: list[ProductId],
                         lineup_ok: LineupCheck) -> dict[str, Any]:
        await self.must_get(stream_id)
        for product_id in lineup:
            await lineup_ok(product_id)
        stream, removed = await self._change(stream_id, "lineup",
                                             {"lineup": list(dict.fromkeys(lineup))})
        await self._sync_offers(stream, stream["lineup"], removed=removed)
        await _file_for_brands(self._client, stream)
        return stream

    async def pin(self, stream_id: StreamId, product_id: ProductId) -> dict[str, Any]:
        stream, _ = await self._change(stream_id, "pin", {"product_id": product_id})
        return stream

    async def unpin(self, stream_id: StreamId, product_id: ProductId) -> dict[str, Any]:
        stream, _ = await self._change(stream_id, "unpin", {"product_id": product_id})
        return stream

    async def start_deal(self, stream_id: StreamId, deal: DealIn,
                         product: dict[str, Any]) -> dict[str, Any]:
        """Schedule a flash deal within the brand's rules for the product: below its price,
        not below its deal floor (no floor: no deal), a per-buyer limit not above its own.
        reserve.lua applies the same bounds at buy time, whatever changed since."""
        if deal.price_minor >= product["price_minor"]:
            raise StreamError(422, "deal-not-cheaper", "a deal price must be below the regular price")
        floor = product.get("deal_floor_minor") or product["price_minor"]
        if deal.price_minor < floor:
            raise StreamError(422, "deal-below-floor",
                              f"the brand allows deals down to {floor} minor units"
                              if floor < product["price_minor"]
                              else "the brand allows no deals on this product")
        brand_limit = product.get("max_per_buyer") or 0
        if brand_limit and deal.per_buyer_limit > brand_limit:
            raise StreamError(422, "deal-limit-above-brand",
                              f"the brand limits each buyer to {brand_limit}")
        opens = _now_ms() + deal.countdown_s * 1000
        record = {"id": secrets.token_hex(4), "product_id": deal.product_id,
                  "price_minor": deal.price_minor,
                  "cap": deal.quantity, "per_buyer_limit": deal.per_buyer_limit,
                  "opens_ms": opens, "closes_ms": opens + deal.duration_s * 1000}
        stream, _ = await self._change(stream_id, "deal", record)
        await self._sync_offers(stream, [deal.product_id])
        return record

    async def end_deal(self, stream_id: StreamId, product_id: ProductId) -> None:
        stream, _ = await self._change(stream_id, "end_deal", {"product_id": product_id})
        await self._sync_offers(stream, [product_id])

    async def set_cover(self, stream_id: StreamId, cover_url: str | None) -> dict[str, Any]:
        """Set the show's cover (an uploaded image's path or a URL), or remove it (None:
        listings show a product's picture again). Scheduled or live shows only (409
        stream-over). Discovery reads the cover from the stream itself, so its index needs
        no change."""
        stream, _ = await self._change(stream_id, "cover", {"cover_url": cover_url or ""})
        return stream

    async def set_auction(self, stream_id: StreamId, auction_id: str) -> None:
        """Name the show's latest auction, the one its snapshot carries (docs/auctions.md);
        its changes reach sockets as the auction's own events."""
        await self._client.hset(stream_key(stream_id), "auction", auction_id)

    async def set_recorded(self, stream_id: StreamId, recorded: bool) -> None:
        """Whether a node holds the show's recording: its replay (`/r/{stream}`) once over.
        Its recording gone (deleted, or by the retention pass), the stock history kept for
        the replay goes with it (live/hub/stock_history.py)."""
        if recorded:
            await self._client.hset(stream_key(stream_id), "recorded", "1")
        else:
            history = stock_history_keys(stream_id)
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hdel(stream_key(stream_id), "recorded")
                pipe.delete(history.history)  # one key a command: a cluster pipeline's way
                pipe.delete(history.last)
                await pipe.execute()

    async def set_ingest(self, stream_id: StreamId, ingest: str) -> None:
        """Record and announce what the video ingest is doing: live, reconnecting or none."""
        await self._change(stream_id, "ingest", {"ingest": ingest})

    async def _change(self, stream_id: StreamId, op: str, arg: dict[str, Any], *,
                      action: StreamAction | None = None) -> tuple[dict[str, Any], list[ProductId]]:
        """Run one change through stream.lua (checked, written and announced atomically);
        returns the stream as it now stands and the products it dropped from the lineup."""
        keys = [stream_key(stream_id), stream_seq_key(stream_id), stream_events_key(stream_id)]
        reply = orjson.loads(await call_script(
            self._client, SCRIPTS["stream"], keys,
            [op, orjson.dumps(arg), _now_ms(), EVENTS_MAXLEN, events_channel(stream_id),
             self._max_pinned, MAX_CODES]))
        match reply["r"]:
            case "ok":
                return await self.must_get(stream_id), list(reply["removed"])
            case "refused":
                raise StreamError(reply["status"], reply["kind"], reply["detail"])
            case "illegal":
                assert action is not None
                raise IllegalStreamMove(StreamState(reply["state"]), action)
        raise StreamError(404, "not-found", f"no stream {stream_id}")

    async def _record_hook(self, stream: dict[str, Any], now: int) -> None:
        """The stream.* webhook event of the stream's state, for the brands of its lineup
        (recorded once per stream and state, checkout/webhook_events.py)."""
        if self._hooks is None:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for product_id in stream["lineup"]:
                pipe.hget(product_keys(product_id).product, "brand_id")
            brands = [text(b) for b in await pipe.execute() if b]
        event = stream_event(stream, brands, now)
        if event is not None:
            await self._hooks.record(self._client, event)

    async def _sync_offers(self, stream: dict[str, Any], products: list[ProductId],
                           removed: Sequence[ProductId] = ()) -> None:
        """Copy this stream's offer into each product's own hash slot (offer_sync.lua: a
        newer rev is never overwritten by an older one)."""
        rev = int(stream.get("rev") or 0)
        script = SCRIPTS["offer_sync"]
        for product_id in products:
            offer = orjson.dumps({"state": stream["state"], "creator": stream["creator_id"],
                                  "deal": stream["deals"].get(product_id)})
            await call_script(self._client, script, [product_keys(product_id).offers],
                              [stream["id"], rev, offer])
        for product_id in removed:
            await call_script(self._client, script, [product_keys(product_id).offers],
                              [stream["id"], rev, ""])
