"""A show's auctions in Valkey: every change through auction.lua, one step in the stream's
slot (the rules, the proxy resolution, the clock, the event and the bid log together), and
the reads the pages and the brand need. Design: docs/auctions.md."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
import redis.asyncio as redis
from redis.typing import EncodableT

from checkout.errors import Refused
from checkout.ids import StreamId
from checkout.money import minor_digits
from checkout.store.keys import auction_keys, chat_keys, stream_events_key, stream_seq_key
from checkout.store.replies import text_entries, text_hash
from checkout.store.batcher import CommandBatcher
from checkout.store.scripts import SCRIPTS, call_script
from live.streams.store import EVENTS_MAXLEN, events_channel

__all__ = ["AuctionStore", "AuctionTerms", "AuctionRefused", "default_increments", "BID_LOG_MAX"]

BID_LOG_MAX: Final = 100_000  # bids (and refusals) kept per auction, approximate

# eBay's bid increments, in cents of a two-digit currency: (below this price, the step).
_EBAY_INCREMENTS: Final = ((100, 5), (500, 25), (2_500, 50), (10_000, 100), (25_000, 250),
                           (50_000, 500), (100_000, 1_000), (250_000, 2_500), (500_000, 5_000),
                           (-1, 10_000))


def default_increments(currency: str) -> list[list[int]]:
    """The increment table for a currency: eBay's, scaled to its minor digits (a yen
    auction steps in whole yen)."""
    scale = 10 ** (minor_digits(currency) - 2)
    return [[below if below < 0 else max(1, round(below * scale)), max(1, round(step * scale))]
            for below, step in _EBAY_INCREMENTS]


@dataclass(frozen=True, slots=True)
class AuctionTerms:
    """What the host sets when it puts a product up: prices in minor units; `extend_ms` the
    anti-sniping window of a standard auction (a bid inside it extends the clock to it)."""

    id: str
    product: str
    variant: str
    currency: str
    start_minor: int
    duration_ms: int
    seller: str
    reserve_minor: int = 0
    format: Literal["standard", "sudden_death"] = "standard"
    extend_ms: int = 15_000
    increments: tuple[tuple[int, int], ...] | None = None


class AuctionRefused(Refused):
    """A change the auction's rules refuse: a bid (`too-low`, `closed`, `banned`, `seller`,
    `not-higher`, `bid-id-reused`, with the least bid that would do when there is one), or
    the host's (`exists`, `not-scheduled`, `has-bids`, `not-due`)."""

    def __init__(self, code: str, detail: str, next_minor: int | None = None) -> None:
        super().__init__(409, code, detail,
                         **({"next_minor": next_minor} if next_minor is not None else {}))
        self.next_minor = next_minor


def _now_ms() -> int:
    return int(time.time() * 1000)


class AuctionStore:
    def __init__(self, client: redis.Redis, batcher: CommandBatcher | None = None) -> None:
        self._client = client
        # bids ride the batched pipeline (the node's hot path under a bidding war); the
        # host's moves and the hub's reads go on the client
        self._batcher = batcher

    async def _run(self, stream: StreamId, auction: str, op: str, arg: dict[str, Any],
                   now_ms: int | None, *, batched: bool = False) -> dict[str, Any]:
        k = auction_keys(stream, auction)
        keys = [k.auction, stream_seq_key(stream), stream_events_key(stream), k.bids, k.maxes,
                k.bid_ids, k.paddles, chat_keys(stream).bans, k.live, k.max_at]
        args: list[EncodableT] = [op, orjson.dumps(arg), now_ms if now_ms is not None else _now_ms(),
                                  EVENTS_MAXLEN, events_channel(stream), BID_LOG_MAX]
        if batched and self._batcher is not None:
            raw = await self._batcher.submit_script(SCRIPTS["auction"], keys, args)
        else:
            raw = await call_script(self._client, SCRIPTS["auction"], keys, args)
        reply: dict[str, Any] = orjson.loads(raw)
        if reply["r"] == "missing":
            raise Refused(404, "not-found", f"no auction {auction} in stream {stream}")
        return reply

    async def create(self, stream: StreamId, terms: AuctionTerms, *, open_now: bool,
                     now_ms: int | None = None) -> dict[str, Any]:
        """Put a product up: scheduled (pre-bids welcome) or open at once, its clock running."""
        increments = [list(b) for b in terms.increments] if terms.increments else \
            default_increments(terms.currency)
        reply = await self._run(stream, terms.id, "create", {
            "id": terms.id, "product": terms.product, "variant": terms.variant,
            "currency": terms.currency, "start_minor": terms.start_minor,
            "reserve_minor": terms.reserve_minor, "increments": increments,
            "format": terms.format, "extend_ms": terms.extend_ms,
            "duration_ms": terms.duration_ms, "seller": terms.seller, "open": open_now},
            now_ms)
        return _checked(reply)

    async def open(self, stream: StreamId, auction: str, now_ms: int | None = None) -> dict[str, Any]:
        return _checked(await self._run(stream, auction, "open", {}, now_ms))

    async def cancel(self, stream: StreamId, auction: str,
                     now_ms: int | None = None) -> dict[str, Any]:
        return _checked(await self._run(stream, auction, "cancel", {}, now_ms))

    async def close(self, stream: StreamId, auction: str,
                    now_ms: int | None = None) -> dict[str, Any]:
        """Close a due auction: safe from any number of nodes at once (the first closes it,
        the others read the same result: `already`)."""
        return _checked(await self._run(stream, auction, "close", {}, now_ms))

    async def bid(self, stream: StreamId, auction: str, *, bidder: str, user: str,
                  bid_id: str, max_minor: int, now_ms: int | None = None) -> dict[str, Any]:
        """One bid (a max: proxy bidding bids for the bidder up to it), answered once per
        bid id; AuctionRefused says why not."""
        reply = await self._run(stream, auction, "bid", {
            "bidder": bidder, "user": user, "bid_id": bid_id, "max_minor": max_minor}, now_ms,
            batched=True)
        reply.pop("fingerprint", None)
        return _checked(reply)

    async def settle(self, stream: StreamId, auction: str, *, lot: str, order: str = "",
                     buyer: str = "") -> dict[str, Any]:
        """Record what became of the lot: `sold` (with the order and its buyer) or
        `returned` to stock."""
        return _checked(await self._run(stream, auction, "settle",
                                        {"lot": lot, "order": order, "buyer": buyer}, None))

    async def second_chance(self, stream: StreamId, auction: str, window_ms: int,
                            now_ms: int | None = None) -> dict[str, Any]:
        """Once, after the winner's charge failed: offer the lot to the runner-up at their
        max (`second_state` offered), or to nobody (`none`)."""
        return _checked(await self._run(stream, auction, "second_chance",
                                        {"window_ms": window_ms}, now_ms))

    async def accept(self, stream: StreamId, auction: str, *, bidder: str,
                     now_ms: int | None = None) -> dict[str, Any]:
        """The runner-up takes the second-chance offer (`no-offer`, `offer-lapsed`)."""
        return _checked(await self._run(stream, auction, "accept", {"bidder": bidder}, now_ms))

    async def lapse(self, stream: StreamId, auction: str,
                    now_ms: int | None = None) -> dict[str, Any]:
        """An offer past its deadline lapses (a no-op before it, or once taken)."""
        return _checked(await self._run(stream, auction, "lapse", {}, now_ms))

    async def get(self, stream: StreamId, auction: str) -> dict[str, Any] | None:
        raw = text_hash(await self._client.hgetall(auction_keys(stream, auction).auction))
        if not raw:
            return None
        ints = ("start_minor", "reserve_minor", "duration_ms", "extend_ms", "bids",
                "price_minor", "ends_ms", "created_ms", "opened_ms", "closed_ms",
                "second_minor", "second_until_ms", "accepted_ms")
        out: dict[str, Any] = {k: (int(v) if k in ints else v) for k, v in raw.items()}
        out["increments"] = orjson.loads(raw["increments"])
        return out

    async def bid_log(self, stream: StreamId, auction: str, limit: int,
                      before: str | None = None) -> list[dict[str, Any]]:
        """The bids (and refusals), newest first, older than `before` (an entry's `id`):
        who, their max, what happened and the price after; a page, never the whole log."""
        top = f"({before}" if before else "+"
        out = []
        for entry_id, f in text_entries(await self._client.xrevrange(
                auction_keys(stream, auction).bids, max=top, count=limit)):
            out.append({"id": entry_id, "at_ms": int(f["at_ms"]), "bid_id": f["bid_id"],
                        "bidder": f["bidder"], "max_minor": int(f["max_minor"]),
                        "outcome": f["outcome"], "price_minor": int(f["price_minor"])})
        return out

    async def bid_ticks(self, stream: StreamId, auction: str, every_ms: int,
                        page: int = 10_000) -> list[dict[str, Any]]:
        """The auction as viewers saw it bid by bid, oldest first, for the replay: each
        accepted bid's public fields (the tick's `auction`: paddles, never bidders) with
        `at_ms`, the last of each `every_ms` (viewers are sent one tick per hub tick at
        most). Bids logged before the log kept them (no `tick` field) are left out."""
        ticks: list[dict[str, Any]] = []
        start = "-"
        key = auction_keys(stream, auction).bids
        while True:
            got = text_entries(await self._client.xrange(key, min=start, count=page))
            for _, f in got:
                if "tick" not in f:
                    continue
                tick = {"at_ms": int(f["at_ms"]), **orjson.loads(f["tick"])}
                if ticks and ticks[-1]["at_ms"] // every_ms == tick["at_ms"] // every_ms:
                    ticks[-1] = tick
                else:
                    ticks.append(tick)
            if len(got) < page:
                return ticks
            start = f"({got[-1][0]}"

    async def public(self, stream: StreamId, auction: dict[str, Any]) -> dict[str, Any]:
        """An auction as viewers see it: its terms, price and clock, the leader as a paddle."""
        paddle = (await self._client.hget(auction_keys(stream, auction["id"]).paddles,
                                          auction["high"]) if auction.get("high") else None)
        hidden = ("high", "winner", "seller", "reserve_minor", "second", "second_minor",
                  "buyer", "order")
        return {**{k: v for k, v in auction.items() if k not in hidden},
                "high_paddle": int(paddle) if paddle else None,
                "has_reserve": bool(auction["reserve_minor"]),
                "reserve_met": (not auction["reserve_minor"] or (
                    auction["bids"] > 0 and auction["price_minor"] >= auction["reserve_minor"]))}

    async def maxes(self, stream: StreamId, auction: str) -> dict[str, int]:
        """Each bidder's max bid (private to the seller: the second-chance offer reads it)."""
        raw = text_hash(await self._client.hgetall(auction_keys(stream, auction).maxes))
        return {bidder: int(v) for bidder, v in raw.items()}


def _checked(reply: dict[str, Any]) -> dict[str, Any]:
    if reply["r"] == "refused":
        raise AuctionRefused(reply["code"], reply["detail"], reply.get("next_minor"))
    return reply
