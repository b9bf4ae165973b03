"""The overlay: what a viewer sees at each moment, as a pure reducer over hub messages.

The state is plain JSON data so that `overlay/static/overlay.js` can hold the very same
state; the conformance fixtures in `overlay/fixtures/` run against both, so the Python
reducer and the browser's cannot drift. No I/O and no clock: `now_ms` is passed in.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from checkout.errors import LivecartError

__all__ = ["Thresholds", "initial", "reduce", "view", "auction_view", "Resync", "TICKER_KEPT",
           "AUCTION_FIELDS"]

TICKER_KEPT = 10
# The show's auction as the state keeps it: the fields of its events (docs/protocol.md).
AUCTION_FIELDS = ("auction", "product", "start_minor", "state", "result", "price_minor",
                  "next_minor", "high_paddle", "bids", "ends_ms", "reserve_met")
# What a bid changes, in the tick's `state` (bids are not sequenced events).
AUCTION_BID_FIELDS = ("price_minor", "next_minor", "high_paddle", "bids", "ends_ms",
                      "reserve_met")
State = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Stock badges: 'N left' at or below `show_left_at`, 'only N left' at or below
    `only_left_at`, 'sold out' at zero."""

    show_left_at: int = 10
    only_left_at: int = 3


class Resync(LivecartError):
    """An event skipped a seq: the client must resume (`since`) or take a new snapshot."""


def initial(snapshot: dict[str, Any]) -> State:
    keys = ("seq", "stream", "tray", "pinned", "deals", "products", "stock", "deal_sold",
            "viewers", "likes", "sales", "just_bought")
    state: State = {k: copy.deepcopy(snapshot.get(k)) for k in keys}
    state["deal_sold"] = state["deal_sold"] or {}
    state["stream"] = {"ingest": "none", **state["stream"]}  # snapshots before video had none
    state["just_bought"] = (state["just_bought"] or [])[:TICKER_KEPT]
    auction = snapshot.get("auction")  # snapshots before auctions had none
    state["auction"] = {k: auction.get(k) for k in AUCTION_FIELDS} if auction else None
    state["auction_tick"] = None  # the latest tick's bid, whichever auction it names
    return state


def reduce(state: State | None, message: dict[str, Any]) -> State:
    """Apply one hub message. Raises Resync on a gap; returns a new state."""
    kind = message.get("type")
    if kind == "snapshot":
        return initial(message)
    if state is None:
        raise Resync("no snapshot yet")
    if "seq" in message:
        seq = message["seq"]
        if seq <= state["seq"]:
            return state
        if seq != state["seq"] + 1:
            raise Resync(f"expected seq {state['seq'] + 1}, got {seq}")
        return _event(state, message)
    if kind == "state":
        new = dict(state)
        for key in ("stock", "deal_sold"):
            if key in message:
                new[key] = {**state[key], **message[key]}
        for key in ("viewers", "likes", "sales"):
            if key in message:
                new[key] = message[key]
        if message.get("just_bought"):
            new["just_bought"] = [*message["just_bought"], *state["just_bought"]][:TICKER_KEPT]
        if message.get("auction"):
            new["auction_tick"] = message["auction"]
            new["auction"] = _bid(state["auction"], message["auction"])
        return new
    return state


def _bid(auction: dict[str, Any] | None, bid: dict[str, Any] | None) -> dict[str, Any] | None:
    """The auction after the tick's latest bid: only onto the same auction, and only a later
    bid (`bids` counts them): a tick and the sequenced events race both ways (a tick read
    before the close arrives after it; a page holding events for its picture applies a tick
    before the event that opened the auction)."""
    if auction is None or bid is None or auction["auction"] != bid["auction"] \
            or bid["bids"] <= auction["bids"]:
        return auction
    return {**auction, **{k: bid[k] for k in AUCTION_BID_FIELDS}}


def _event(state: State, message: dict[str, Any]) -> State:
    new = dict(state)
    new["seq"] = message["seq"]
    match message["type"]:
        case "pin" | "unpin":
            new["pinned"] = list(message["pinned"])
        case "deal.scheduled":
            deal = {k: message[k] for k in ("price_minor", "cap", "per_buyer_limit", "opens_ms",
                                            "closes_ms")}
            new["deals"] = {**state["deals"], message["product_id"]: deal}
            new["deal_sold"] = {**state["deal_sold"], message["product_id"]: 0}
        case "deal.closed":
            new["deals"] = {p: d for p, d in state["deals"].items() if p != message["product_id"]}
        case "lineup.changed":
            if any(p not in state["products"] for p in message["lineup"]):
                raise Resync("the lineup names a product this client has no card for")
            new["tray"] = list(message["lineup"])
            new["pinned"] = list(message["pinned"])
            if "codes" in message:
                new["stream"] = {**state["stream"], "codes": dict(message["codes"])}
        case "stream.state":
            new["stream"] = {**state["stream"], "state": message["state"]}
            if message["state"] in ("ended", "cancelled"):
                new["pinned"] = []
        case "stream.ingest":
            new["stream"] = {**state["stream"], "ingest": message["ingest"]}
        case "auction.created":
            created = {**dict.fromkeys(AUCTION_FIELDS), "auction": message["auction"],
                       "product": message["product"], "start_minor": message["start_minor"],
                       "state": "scheduled", "price_minor": 0,
                       "next_minor": message["start_minor"], "bids": 0}
            new["auction"] = _bid(created, state.get("auction_tick"))
        case "auction.opened" | "auction.bid" | "auction.closed":  # .bid: logs from before
            auction = state["auction"]
            if auction is not None and auction["auction"] == message["auction"]:
                moved = {**auction, "state": message.get("state"), "result": message.get("result")}
                if message.get("bids", 0) >= auction["bids"]:  # not older than a tick's
                    moved.update({k: message.get(k) for k in AUCTION_BID_FIELDS})
                new["auction"] = _bid(moved, state.get("auction_tick"))
    return new


def _deal_view(state: State, product: str, now_ms: int) -> dict[str, Any] | None:
    deal = state["deals"].get(product)
    if not deal:
        return None
    if now_ms < deal["opens_ms"]:
        return {"phase": "upcoming", "price_minor": deal["price_minor"],
                "seconds_left": math.ceil((deal["opens_ms"] - now_ms) / 1000)}
    left = deal["cap"] - state["deal_sold"].get(product, 0)
    if now_ms < deal["closes_ms"] and left > 0:
        return {"phase": "open", "price_minor": deal["price_minor"], "units_left": left,
                "seconds_left": math.ceil((deal["closes_ms"] - now_ms) / 1000)}
    return None


def _badge(left: int, t: Thresholds) -> str:
    if left <= 0:
        return "sold out"
    if left <= t.only_left_at:
        return f"only {left} left"
    if left <= t.show_left_at:
        return f"{left} left"
    return ""


def _card(state: State, product: str, now_ms: int, t: Thresholds) -> dict[str, Any]:
    p = state["products"][product]
    left = sum(state["stock"].get(product, {}).values())
    deal = _deal_view(state, product, now_ms)
    open_deal = deal if deal is not None and deal["phase"] == "open" else None
    return {
        "id": product, "title": p["title"], "image_url": p["image_url"],
        "currency": p["currency"],
        "price_minor": open_deal["price_minor"] if open_deal is not None else p["price_minor"],
        "original_price_minor": p["price_minor"] if open_deal is not None else None,
        "stock_left": left, "badge": _badge(left, t), "deal": deal,
        "variants": p["variants"],
        "can_buy": state["stream"]["state"] == "live" and left > 0 and p["status"] == "active",
    }


def view(state: State, now_ms: int, thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
    """What the overlay shows at `now_ms` (server time). `ingest` says whether the stream has
    video to play ("live"), has lost its publisher for now ("reconnecting") or has none."""
    known = state["products"]
    ingest = state["stream"]["ingest"]
    return {
        "live": state["stream"]["state"] == "live",
        "ingest": ingest,
        "cards": [_card(state, p, now_ms, thresholds) for p in state["pinned"] if p in known],
        "tray": [_card(state, p, now_ms, thresholds) for p in state["tray"] if p in known],
        "ticker": state["just_bought"],
        "viewers": state["viewers"], "likes": state["likes"],
    }


def _auction_status(auction: dict[str, Any], now_ms: int) -> str:
    match auction["state"]:
        case "scheduled":
            return "scheduled"
        case "open":  # past its deadline: the closer's turn, no bid is taken any more
            return "live" if now_ms < auction["ends_ms"] else "closing"
        case "cancelled":
            return "cancelled"
    return "sold" if auction["result"] == "sold" else "no sale"


def _you(status: str, mine: bool) -> str | None:
    if status in ("scheduled", "live", "closing"):
        return "winning" if mine else "outbid"
    if status == "sold":
        return "won" if mine else "lost"
    return None


def auction_view(state: State, now_ms: int, paddle: int | None = None) -> dict[str, Any] | None:
    """The show's auction card at `now_ms` (server time), or None. `paddle`: the page's own
    paddle in it (from its bid's answer), which makes "you're winning" / "you were outbid"
    the page seeing its paddle lead or another one."""
    auction = state["auction"]
    if auction is None:
        return None
    product = state["products"].get(auction["product"]) or {}
    status = _auction_status(auction, now_ms)
    ends = auction["ends_ms"]
    return {
        "id": auction["auction"], "product": auction["product"],
        "title": product.get("title", auction["product"]),
        "image_url": product.get("image_url", ""), "currency": product.get("currency", "USD"),
        "status": status, "result": auction["result"],
        "price_minor": auction["price_minor"] if auction["bids"] else auction["start_minor"],
        "next_minor": auction["next_minor"], "high_paddle": auction["high_paddle"],
        "bids": auction["bids"], "ends_ms": ends, "reserve_met": auction["reserve_met"],
        "seconds_left": (max(0, math.ceil((ends - now_ms) / 1000))
                         if ends is not None and status in ("live", "closing") else None),
        "can_bid": status in ("scheduled", "live"),
        "you": _you(status, auction["high_paddle"] == paddle) if paddle is not None else None,
    }
