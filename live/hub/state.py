"""Reading a stream's room from Valkey: the full snapshot on join, the coalesced state each
tick, and missed events from the log. The only I/O the hub does besides its sockets."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as redis

from checkout.ids import StreamId
from checkout.store.keys import (chat_keys, product_keys, stream_agg_keys, stream_auction_key,
                                 stream_events_key, stream_key, stream_likes_key,
                                 stream_seq_key, stream_viewers_key)
from checkout.store.replies import entries, int_hash
from live.auctions.store import AuctionStore
from live.chat.store import ChatStore
from live.hub.protocol import Snapshot
from live.streams.store import codes_of
from live.streams.viewers import sum_viewers
from overlay.state import AUCTION_BID_FIELDS

__all__ = ["read_snapshot", "read_states", "read_events_after", "read_cards", "TICKER_SHOWN"]

TICKER_SHOWN = 10


def _stock(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {k.decode()[6:]: int(v) for k, v in raw.items() if k.startswith(b"avail:")}


def _card(raw: dict[bytes, bytes]) -> dict[str, Any]:
    p = {k.decode(): v.decode() for k, v in raw.items()}
    return {"id": p["id"], "title": p["title"], "image_url": p.get("image_url", ""),
            "price_minor": int(p["price_minor"]), "currency": p["currency"],
            "status": p["status"], "variants": orjson.loads(p.get("variants", "[]"))}


def _sales(raw: dict[bytes, bytes]) -> dict[str, int]:
    d = {k.decode(): int(v) for k, v in raw.items()}
    return {"units": d.get("units", 0), "orders": d.get("orders", 0),
            "gmv_minor": d.get("gmv_minor", 0)}


async def read_cards(client: redis.Redis, product_ids: list[str]
                     ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, int]]]:
    """Products' cards and stock as the snapshot has them (a replay names products a
    lineup no longer holds); a product that is gone is left out."""
    async with client.pipeline(transaction=False) as pipe:
        for product in product_ids:
            pipe.hgetall(product_keys(product).product)
            pipe.hgetall(product_keys(product).stock)
        results = await pipe.execute()
    cards, stock = {}, {}
    for i, product in enumerate(product_ids):
        card, levels = results[2 * i:2 * i + 2]
        if card:
            cards[product], stock[product] = _card(card), _stock(levels)
    return cards, stock


async def read_snapshot(client: redis.Redis, chat: ChatStore, stream_id: str) -> Snapshot | None:
    """Everything a viewer needs to draw the room, with the seq it is current to; the
    sender adds `server_time_ms` (`protocol.with_server_time`)."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(stream_key(stream_id))
        pipe.get(stream_seq_key(stream_id))
        await_results = await pipe.execute()
    raw_stream, seq = await_results
    if not raw_stream:
        return None
    stream = {k.decode(): v.decode() for k, v in raw_stream.items()}
    lineup: list[str] = orjson.loads(stream.get("lineup", "[]"))
    async with client.pipeline(transaction=False) as pipe:
        for product in lineup:
            k = product_keys(product)
            pipe.hgetall(k.product)
            pipe.hgetall(k.stock)
            pipe.hget(k.offers, f"dealsold:{stream_id}")
        pipe.hgetall(stream_viewers_key(stream_id))
        pipe.get(stream_likes_key(stream_id))
        pipe.hgetall(stream_agg_keys(stream_id).totals)
        pipe.lrange(stream_agg_keys(stream_id).ticker, 0, TICKER_SHOWN - 1)
        pipe.hgetall(chat_keys(stream_id).reactions)
        results = await pipe.execute()
    now_ms = int(time.time() * 1000)
    products, stock, deal_sold = {}, {}, {}
    for i, product in enumerate(lineup):
        card, levels, sold = results[3 * i:3 * i + 3]
        if card:
            products[product] = _card(card)
            stock[product] = _stock(levels)
            deal_sold[product] = int(sold or 0)
    viewers, likes, sales, ticker, reactions = results[3 * len(lineup):]
    return Snapshot(
        seq=int(seq or 0),
        stream={"id": stream_id, "title": stream["title"], "state": stream["state"],
                "creator_id": stream["creator_id"], "purchase_mode": stream["purchase_mode"],
                "ingest": stream.get("ingest", "none"),
                "codes": codes_of(stream.get("codes"), lineup)},
        tray=[p for p in lineup if p in products],
        pinned=orjson.loads(stream.get("pinned", "[]")),
        deals=orjson.loads(stream.get("deals", "{}")),
        products=products, stock=stock, deal_sold=deal_sold,
        viewers=sum_viewers(viewers, now_ms), likes=int(likes or 0),
        sales=_sales(sales), just_bought=[orjson.loads(t) for t in ticker],
        chat=await chat.room_chat(StreamId(stream_id)), reactions=int_hash(reactions),
        auction=await _auction(client, StreamId(stream_id), stream.get("auction")))


def _next_minor(auction: dict[str, Any]) -> int:
    """The least bid that would do: the start price, then one increment over the price
    (auction.lua's rule, for a snapshot, which its events otherwise carry)."""
    price = auction["price_minor"]
    if not auction["bids"]:
        return int(auction["start_minor"])
    step = next((s for below, s in auction["increments"] if below < 0 or price < below), 1)
    return int(price + step)


async def _auction(client: redis.Redis, stream_id: StreamId,
                   auction_id: str | None) -> dict[str, Any] | None:
    """The show's latest auction in its events' fields (docs/protocol.md), or None."""
    store = AuctionStore(client)
    auction = await store.get(stream_id, auction_id) if auction_id else None
    if auction is None:
        return None
    public = await store.public(stream_id, auction)
    return {"auction": auction["id"], "product": auction["product"],
            "start_minor": auction["start_minor"], "state": auction["state"],
            "result": auction.get("result") or None, "price_minor": auction["price_minor"],
            "next_minor": _next_minor(auction), "high_paddle": public["high_paddle"],
            "bids": auction["bids"], "ends_ms": auction.get("ends_ms"),
            "reserve_met": public["reserve_met"]}


async def read_states(client: redis.Redis, rooms: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """One pipeline for every room's coalesced state: seq, stock, viewers, likes, sales,
    ticker head, the auction's bids; `read_ms`, when it was read (the stock history's)."""
    now_ms = int(time.time() * 1000)
    order = list(rooms.items())
    async with client.pipeline(transaction=False) as pipe:
        for stream_id, lineup in order:
            pipe.get(stream_seq_key(stream_id))
            pipe.hgetall(stream_viewers_key(stream_id))
            pipe.get(stream_likes_key(stream_id))
            pipe.hgetall(stream_agg_keys(stream_id).totals)
            pipe.lrange(stream_agg_keys(stream_id).ticker, 0, TICKER_SHOWN - 1)
            pipe.hgetall(chat_keys(stream_id).reactions)
            pipe.get(stream_auction_key(stream_id))
            for product in lineup:
                pipe.hgetall(product_keys(product).stock)
                pipe.hget(product_keys(product).offers, f"dealsold:{stream_id}")
        results = await pipe.execute()
    states: dict[str, dict[str, Any]] = {}
    i = 0
    for stream_id, lineup in order:
        seq, viewers, likes, sales, ticker, reactions, auction = results[i:i + 7]
        i += 7
        stock, deal_sold = {}, {}
        for product in lineup:
            stock[product] = _stock(results[i])
            deal_sold[product] = int(results[i + 1] or 0)
            i += 2
        states[stream_id] = {"seq": int(seq or 0), "read_ms": now_ms, "stock": stock,
                             "deal_sold": deal_sold,
                             "viewers": sum_viewers(viewers, now_ms), "likes": int(likes or 0),
                             "sales": _sales(sales),
                             "ticker": [orjson.loads(t) for t in ticker],
                             "reactions": int_hash(reactions),
                             "auction": _tick_auction(auction)}
    return states


def _tick_auction(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    auction = orjson.loads(raw)  # what auction.lua wrote: the tick sends what a bid changes
    return {"auction": auction.get("auction"), **{k: auction.get(k) for k in AUCTION_BID_FIELDS}}


async def read_events_after(client: redis.Redis, stream_id: str, seq: int,
                            limit: int) -> list[bytes] | None:
    """Logged events with seq > `seq`, oldest first; None when the log no longer reaches
    back that far (trimmed or reset): the caller sends a fresh snapshot instead."""
    current = int(await client.get(stream_seq_key(stream_id)) or 0)
    if seq > current:
        return None  # the log was reset under the client
    if seq == current:
        return []
    logged = entries(await client.xrange(stream_events_key(stream_id), min=f"{seq + 1}-0",
                                         count=limit))
    if not logged or logged[0][0] != f"{seq + 1}-0".encode() or len(logged) >= limit:
        return None  # trimmed past the client's seq, or too far behind to replay
    return [fields[b"e"] for _, fields in logged]
