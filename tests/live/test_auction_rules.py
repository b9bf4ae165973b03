"""The auction's rules (auction.lua through AuctionStore) against the embedded Valkey, with
the clock given explicitly: increments, proxy bids against each other, ties, the reserve,
anti-sniping, sudden death's cut-off at the exact deadline, idempotent bids, closing twice."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
import redis.asyncio as redis

from checkout.ids import StreamId
from checkout.store.keys import chat_keys, stream_auction_key, stream_events_key
from live.auctions.store import AuctionRefused, AuctionStore, AuctionTerms, default_increments

S = StreamId("s_auction")
T0 = 1_800_000_000_000  # the tests' clock (ms)


def terms(**over: Any) -> AuctionTerms:
    base: dict[str, Any] = dict(id="a1", product="p_shoe", variant="default", currency="USD",
                                start_minor=1000, duration_ms=60_000, seller="brand:acme")
    return AuctionTerms(**{**base, **over})


async def opened(store: AuctionStore, **over: Any) -> None:
    await store.create(S, terms(**over), open_now=True, now_ms=T0)


async def bid(store: AuctionStore, bidder: str, max_minor: int, at: int = 1000,
              bid_id: str | None = None) -> dict[str, Any]:
    return await store.bid(S, "a1", bidder=bidder, user=f"buyer:{bidder}",
                           bid_id=bid_id or f"{bidder}-{max_minor}-{at}", max_minor=max_minor,
                           now_ms=T0 + at)


async def refused(store: AuctionStore, bidder: str, max_minor: int, at: int = 1000,
                  bid_id: str | None = None) -> AuctionRefused:
    with pytest.raises(AuctionRefused) as caught:
        await bid(store, bidder, max_minor, at, bid_id)
    return caught.value


@pytest.fixture
async def store(rclient: redis.Redis) -> AuctionStore:
    return AuctionStore(rclient)


def test_the_default_increments_follow_the_currencys_digits() -> None:
    usd, jpy = default_increments("USD"), default_increments("JPY")
    assert usd[0] == [100, 5] and usd[-1] == [-1, 10_000]
    assert jpy[0] == [1, 1] and jpy[-1] == [-1, 100]


async def test_proxy_bids_pay_one_increment_over_the_runner_up(store: AuctionStore) -> None:
    await opened(store)
    first = await bid(store, "ann", 5000)
    assert (first["outcome"], first["price_minor"], first["high"]) == ("high", 1000, True)
    bob = await bid(store, "bob", 1500)  # ann's max holds: the price is bob's max + a step
    assert (bob["outcome"], bob["price_minor"], bob["high"]) == ("outbid", 1550, False)
    low = await refused(store, "bob", 1590)
    assert low.kind == "too-low" and low.next_minor == 1600
    cal = await bid(store, "cal", 6000)  # over ann's max: ann's max + her band's step
    assert (cal["outcome"], cal["price_minor"]) == ("high", 5100)
    state = await store.get(S, "a1")
    assert state is not None and state["price_minor"] == 5100 and state["bids"] == 3
    assert [b["outcome"] for b in await store.bid_log(S, "a1", 10)] == [
        "high", "too-low", "outbid", "high"]  # newest first


async def test_a_tie_goes_to_the_earlier_max_and_the_high_bidder_may_raise_theirs(
        store: AuctionStore) -> None:
    await opened(store)
    await bid(store, "ann", 3000)
    tie = await bid(store, "bob", 3000)
    assert (tie["outcome"], tie["price_minor"], tie["high"]) == ("outbid", 3000, False)
    raised = await bid(store, "ann", 8000)
    assert (raised["outcome"], raised["price_minor"], raised["max_minor"]) == ("raised", 3000, 8000)
    assert (await refused(store, "ann", 7000)).kind == "not-higher"
    paddles = [(await bid(store, "ann", 9000))["paddle"], (await bid(store, "bob", 3500))["paddle"]]
    assert paddles == [1, 2]


async def test_a_bid_in_the_last_seconds_extends_a_standard_auction(store: AuctionStore) -> None:
    await opened(store, extend_ms=15_000)
    early = await bid(store, "ann", 2000, at=10_000)
    assert early["ends_ms"] == T0 + 60_000
    late = await bid(store, "bob", 2500, at=50_000)  # 10 s left: extended to 15 s from now
    assert late["ends_ms"] == T0 + 65_000
    assert (await refused(store, "cal", 9000, at=65_000)).kind == "closed"


async def test_sudden_death_cuts_off_at_the_exact_deadline(store: AuctionStore) -> None:
    await opened(store, format="sudden_death")
    last = await bid(store, "ann", 2000, at=59_999)
    assert last["ends_ms"] == T0 + 60_000  # never extended
    assert (await refused(store, "bob", 9000, at=60_000)).kind == "closed"
    closed = await store.close(S, "a1", now_ms=T0 + 60_000)
    assert (closed["result"], closed["winner"], closed["price_minor"]) == ("sold", "ann", 1000)


async def test_a_bid_stamped_before_the_deadline_but_run_after_a_late_one_is_refused(
        store: AuctionStore) -> None:
    """Found by `loadtest auction` under load: a bid stamped just before the deadline waited
    for a connection, a bid stamped just after ran first (refused, closed), then the early
    one ran, was accepted and extended the clock: an auction that said "closed" went on."""
    await opened(store, extend_ms=15_000)
    assert (await refused(store, "bob", 3000, at=60_001)).kind == "closed"
    assert (await refused(store, "ann", 2000, at=59_999)).kind == "closed"
    closed = await store.close(S, "a1", now_ms=T0 + 59_000)  # a closer whose clock is behind
    assert closed["result"] == "no-bids"


async def test_the_reserve_lifts_the_price_or_the_lot_does_not_sell(store: AuctionStore) -> None:
    await opened(store, reserve_minor=4000)
    under = await bid(store, "ann", 3000)
    assert under["price_minor"] == 1000
    assert (await store.close(S, "a1", now_ms=T0 + 60_000))["result"] == "reserve-not-met"
    await opened(store, id="a2", reserve_minor=4000)
    met = await store.bid(S, "a2", bidder="ann", user="buyer:ann", bid_id="x", max_minor=5000,
                          now_ms=T0 + 1)
    assert met["price_minor"] == 4000  # a max that meets the reserve pays the reserve
    closed = await store.close(S, "a2", now_ms=T0 + 60_000)
    assert (closed["result"], closed["winner"], closed["price_minor"]) == ("sold", "ann", 4000)


async def test_a_retried_bid_is_answered_once_and_a_reused_id_is_refused(
        store: AuctionStore) -> None:
    await opened(store)
    one = await bid(store, "ann", 2000, bid_id="b-1")
    again = await bid(store, "ann", 2000, at=2000, bid_id="b-1")
    assert again == one
    assert (await refused(store, "ann", 2500, bid_id="b-1")).kind == "bid-id-reused"
    state = await store.get(S, "a1")
    assert state is not None and state["bids"] == 1


async def test_the_seller_and_a_banned_user_cannot_bid(store: AuctionStore,
                                                       rclient: redis.Redis) -> None:
    await opened(store)
    assert (await refused(store, "brand:acme", 2000)).kind == "seller"
    await rclient.hset(chat_keys(S).bans, "buyer:mallory", "0")
    assert (await refused(store, "mallory", 2000)).kind == "banned"
    await rclient.hset(chat_keys(S).bans, "buyer:tim", str(T0 + 500))  # a time-out, over
    assert (await bid(store, "tim", 2000))["outcome"] == "high"


async def test_closing_is_once_whoever_closes_and_cancel_only_before_a_bid(
        store: AuctionStore) -> None:
    await opened(store)
    await bid(store, "ann", 2000)
    with pytest.raises(AuctionRefused) as cancel:
        await store.cancel(S, "a1", now_ms=T0 + 2)
    assert cancel.value.kind == "has-bids"
    with pytest.raises(AuctionRefused) as early:
        await store.close(S, "a1", now_ms=T0 + 59_999)
    assert early.value.kind == "not-due"
    first, second = (await store.close(S, "a1", now_ms=T0 + 60_000),
                     await store.close(S, "a1", now_ms=T0 + 60_001))
    assert first["result"] == second["result"] == "sold" and second["already"] is True
    await opened(store, id="a3")
    assert (await store.cancel(S, "a3", now_ms=T0 + 5))["result"] == "cancelled"


async def test_pre_bids_stand_when_the_clock_starts(store: AuctionStore) -> None:
    await store.create(S, terms(), open_now=False, now_ms=T0)
    pre = await bid(store, "ann", 3000, at=-5000)
    assert pre["price_minor"] == 1000 and pre.get("ends_ms") is None
    opened_ = await store.open(S, "a1", now_ms=T0)
    assert opened_["price_minor"] == 1000 and opened_["ends_ms"] == T0 + 60_000
    assert (await bid(store, "bob", 2000))["outcome"] == "outbid"


async def test_changes_are_sequenced_events_and_a_bid_is_the_shows_live_auction(
        store: AuctionStore, rclient: redis.Redis) -> None:
    """Opening and closing are events of the show's log; a bid is not (a frame per bid per
    viewer put a busy room minutes behind): it leaves the auction as viewers see it where
    the hub's tick reads it."""
    await opened(store)
    first = await bid(store, "ann", 2000)
    second = await bid(store, "bob", 1500)
    events = [orjson.loads(f[b"e"]) for _, f in await rclient.xrange(stream_events_key(S))]
    assert [e["type"] for e in events] == ["auction.created", "auction.opened"]
    assert [e["seq"] for e in events] == [1, 2]
    assert (first["bids"], second["bids"]) == (1, 2)  # the count a card shows it at
    raw = await rclient.get(stream_auction_key(S))
    assert raw is not None and "ann" not in raw.decode()  # bidders are masked as paddles
    live = orjson.loads(raw)
    assert {k: live[k] for k in ("auction", "bids", "high_paddle", "price_minor", "next_minor")} \
        == {"auction": "a1", "bids": 2, "high_paddle": 1, "price_minor": 1550, "next_minor": 1600}
    await store.close(S, "a1", now_ms=T0 + 60_000)
    events = [orjson.loads(f[b"e"]) for _, f in await rclient.xrange(stream_events_key(S))]
    assert events[-1]["type"] == "auction.closed" and events[-1]["bids"] == 2


def _step(price: int) -> int:
    return next(step for below, step in default_increments("USD") if below < 0 or price < below)


async def test_the_final_price_is_what_the_bids_say_offline(store: AuctionStore) -> None:
    """Random bidding wars: the price is the runner-up's max plus a step, capped at the
    winner's max (the earliest of equal maxes wins), whatever order the bids came in."""
    rng = random.Random(7)
    for n in range(40):
        auction = f"war{n}"
        await store.create(S, terms(id=auction), open_now=True, now_ms=T0)
        best: dict[str, tuple[int, int]] = {}  # bidder -> (max, when it was first reached)
        for i in range(rng.randint(1, 12)):
            who, amount = f"b{rng.randint(1, 4)}", rng.randint(1000, 20_000)
            try:
                await store.bid(S, auction, bidder=who, user=f"buyer:{who}", bid_id=f"{n}-{i}",
                                max_minor=amount, now_ms=T0 + i)
            except AuctionRefused:
                continue
            if amount > best.get(who, (0, 0))[0]:
                best[who] = (amount, i)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        state = await store.get(S, auction)
        assert state is not None
        winner, (top, _) = ranked[0]
        expect = 1000 if len(ranked) == 1 else min(top, ranked[1][1][0] + _step(ranked[1][1][0]))
        assert (state["high"], state["price_minor"]) == (winner, expect), (n, ranked)


async def test_of_two_equal_runner_up_maxes_the_earlier_set_gets_the_second_chance(
        store: AuctionStore) -> None:
    """Ties go to the earlier max: bob set 2,500 before ann did, though ann's paddle is
    the lower (she bid first, lower)."""
    await opened(store)
    await bid(store, "ann", 1500, at=1000)  # paddle 1
    await bid(store, "bob", 1200, at=2000)  # paddle 2
    assert (await bid(store, "bob", 2500, at=3000))["outcome"] == "high"
    assert (await bid(store, "ann", 2500, at=4000))["outcome"] == "outbid"  # bob's was first
    assert (await bid(store, "carl", 3000, at=5000))["outcome"] == "high"
    assert (await store.close(S, "a1", now_ms=T0 + 60_000))["winner"] == "carl"
    offer = await store.second_chance(S, "a1", window_ms=60_000, now_ms=T0 + 61_000)
    assert (offer["second"], offer["second_minor"]) == ("bob", 2500)
