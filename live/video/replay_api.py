"""A show's replay (issue 13, docs/recording.md "Shoppable replay"): what the replay page
(`/r/{stream}`) needs to re-run an ended show over its recording, in one read.

`GET /api/v1/streams/{stream}/replay`: the recording's playlist, the show's sequenced event
log (pins, deals, lineup, auctions, stream state: each with `at_ms`, the server time it
happened, which the recording's EXT-X-PROGRAM-DATE-TIME is on), its sales (the "just
bought" ticker's entries) and its chat, oldest first, and the cards and stock of every
product the show named, as they are now (a replay buy is at today's price). Also the
show's stock as its room saw it (`stock_history`, live/hub/stock_history.py) and its
auctions bid by bid (`bids`, from the auctions' bid logs), both as the state ticks live
viewers were sent, each with `at_ms`. The page folds the events and those ticks with the
live pages' own reducer (overlay/static/overlay.js) up to the date of the picture on
screen, so a seek re-derives the overlay of that moment: "left then" and the auction card
as they were.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, cast

import orjson
from starlette.responses import Response

from checkout.ids import StreamId
from checkout.store.keys import stream_agg_keys, stream_events_key
from checkout.store.replies import entries
from live.auctions.store import AuctionStore
from live.hub.state import read_cards, read_snapshot
from live.hub.stock_history import read_stock_history
from live.streams.lifecycle import StreamState
from live.video.hls_http import hls_url
from live.video.http import VideoServices
from live.video.recorder import PLAYLIST
from live.web.api import Api, Call, json_response
from live.web.problems import Problem
from live.web.stream_lookup import stream_of

__all__ = ["register", "REPLAY_CHAT", "BID_TICK_MS"]

REPLAY_CHAT: Final = 2_000  # the latest chat messages a replay re-runs
# An auction's bids re-run at most one per this (the hub's shortest tick, HubLimits.tick_s:
# live viewers were sent no more); a bidding war's log holds up to BID_LOG_MAX per auction.
BID_TICK_MS: Final = 100
_CACHE = "public, max-age=5"  # the events never change; stock now does, a little
# An ended show's log, sales and chat, read once a minute per node at most: a public
# endpoint answering megabytes must not read them from Valkey for every request.
_KEEP_S: Final = 60.0
_KEEP_MAX: Final = 64


@dataclass(frozen=True, slots=True)
class _Show:
    read_at: float
    events: list[dict[str, Any]]
    sales: list[dict[str, Any]]
    chat: list[dict[str, Any]]
    stock_history: list[dict[str, Any]]
    bids: list[dict[str, Any]]


_kept: OrderedDict[tuple[int, str], _Show] = OrderedDict()  # (the node's services, stream)


def _named_products(events: list[dict[str, Any]], lineup: list[str]) -> list[str]:
    """Every product the show's events name (a lineup may have changed), lineup first."""
    named = dict.fromkeys(lineup)
    for event in events:
        for key in ("lineup", "pinned"):
            named.update(dict.fromkeys(event.get(key) or []))
        for key in ("product_id", "product"):
            if isinstance(event.get(key), str):
                named[event[key]] = None
    return list(named)


async def _show(call: Call[Any], stream_id: str) -> _Show:
    key, now = (id(call.services), stream_id), time.monotonic()
    kept = _kept.get(key)
    if kept is not None and now - kept.read_at < _KEEP_S:
        return kept
    async with call.services.client.pipeline(transaction=False) as pipe:
        pipe.xrange(stream_events_key(stream_id))
        pipe.lrange(stream_agg_keys(stream_id).ticker, 0, -1)
        logged, ticker = await pipe.execute()
    chat = await call.services.chat.history(StreamId(stream_id), REPLAY_CHAT)
    events = [orjson.loads(fields[b"e"]) for _, fields in entries(logged)]
    history = await read_stock_history(call.services.client, stream_id)
    kept = _Show(now, events, [orjson.loads(t) for t in reversed(ticker)], list(reversed(chat)),
                 [{"type": "state", **entry} for entry in history],
                 await _bids(call, StreamId(stream_id), events))
    _kept[key] = kept
    _kept.move_to_end(key)
    while len(_kept) > _KEEP_MAX:
        _kept.popitem(last=False)
    return kept


async def _bids(call: Call[Any], stream_id: StreamId,
                events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every auction of the show bid by bid as viewers saw it: state ticks ({type, at_ms,
    auction}), oldest first."""
    store = AuctionStore(call.services.client)
    ticks = []
    for auction in dict.fromkeys(e["auction"] for e in events if e["type"] == "auction.created"):
        for tick in await store.bid_ticks(stream_id, auction, BID_TICK_MS):
            at_ms = tick.pop("at_ms")
            ticks.append({"type": "state", "at_ms": at_ms, "auction": tick})
    ticks.sort(key=lambda t: int(t["at_ms"]))
    return ticks


async def _has_recording(call: Call[Any], stream_id: str) -> bool:
    recordings = cast(VideoServices, call.services).video.recordings
    if recordings is None:
        return False
    found = await asyncio.to_thread(recordings.read, stream_id, PLAYLIST)
    return found is not None


def register(api: Api) -> None:
    @api.endpoint("GET", "/streams/{stream}/replay", tag="video",
                  summary="An ended show's replay: its recording, events, sales and chat, "
                          "and its products as they are now")
    async def get_replay(call: Call[Any]) -> Response:
        stream = await stream_of(call)
        if stream["state"] == StreamState.CANCELLED:
            raise Problem(404, "no-recording", "the show was cancelled: it has no replay")
        if stream["state"] != StreamState.ENDED:
            raise Problem(409, "not-ended", f"the show is {stream['state']}: its replay opens "
                          "when it ends")
        if not await _has_recording(call, stream["id"]):
            raise Problem(404, "no-recording", "this show has no recording on this node")
        services = call.services
        client = services.client
        snapshot = await read_snapshot(client, services.chat, stream["id"])
        if snapshot is None:
            raise Problem(404, "not-found", "no such stream")
        show = await _show(call, stream["id"])
        events = show.events
        products, stock = dict(snapshot.products), dict(snapshot.stock)
        missing = [p for p in _named_products(events, snapshot.tray) if p not in products]
        if missing:
            more_cards, more_stock = await read_cards(client, missing)
            products.update(more_cards)
            stock.update(more_stock)
        return json_response({
            "stream": snapshot.stream, "hls_url": hls_url(stream["id"]),
            "tray": snapshot.tray, "products": products, "stock": stock,
            "first_seq": events[0]["seq"] if events else snapshot.seq + 1,
            "events": events, "sales": show.sales, "chat": show.chat,
            "stock_history": show.stock_history, "bids": show.bids,
            "auction": snapshot.auction,
        }, headers={"Cache-Control": _CACHE})
