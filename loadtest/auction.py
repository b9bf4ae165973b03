"""The auction load test (issue 14): thousands of bidders on one live auction, viewers
watching, and the invariants checked from the client's own log.

1. Start `livecart serve` (embedded Valkey, appendfsync always; the hub's caps raised for
   one IP as in the fan-out test) and set up through the API a brand, a product, a live
   stream and `bidders` buyers with saved wallets (`loadtest.flash_sale`'s shop); open
   `viewers` WebSocket viewers on the show (`loadtest.fanout_fleet`).
2. The host puts the product up: a standard auction of `duration_s`, anti-sniping
   `extend_s`, a three-band increment table.
3. Bids, open loop at `bid_rate` per second, each from a random bidder with its own bid id
   (the Idempotency-Key): latency counted from when it was due. Until `duration_s -
   extend_s` the maxes mostly beat the price the client last heard of and rise with the
   schedule (some do not: too-low refusals); then they stay below it (refusals, the clock
   runs on) until `lead_ms` before the deadline, from when they would win: snipes, the
   early ones extending the clock, those after the deadline refused; after one extension
   the lead is 0. Bidding
   stops `tail_s` after the auction closed. A bid without an answer (connection, 5xx) is
   sent again, the same bytes. `kill_valkey`: SIGKILL the embedded Valkey halfway through.
4. Checks, once the closer closed it: every 201'd bid id is in the auction's bid log
   (`GET .../bids`, paged) as accepted and nothing else is accepted there; no acknowledged
   bid at or after the final `ends_ms` (server time in the log, and the client's send time);
   the acknowledged bids replayed in the server's order (each 201 names the auction's bid
   count with it) through `loadtest.auction_model` give each reply's outcome and price, and
   the closed auction's price and leading paddle. With viewers: every viewer is shown the
   final bid count, and bid to screen (from when a bid was due to when a viewer was first
   shown a bid count at least its own) for a sample of the acknowledged bids.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as redis

from live.accounts.auth import Role, TokenAuthority
from loadtest.auction_model import ProxyAuction, step_of
from loadtest.baseline import BUY_PATH
from loadtest.fanout import VIEWERS_PER_PROCESS
from loadtest.fanout_fleet import ViewerFleet, connect_viewers, seq_checks
from loadtest.fanout_node import hub_port, log_errors, read_seq, start_livecart
from loadtest.flash_sale import CREATOR, _Shop
from loadtest.histogram import LatencyHistogram
from loadtest.http_client import ConnectionFailed, HttpConnection, RequestTimeout, run_requests
from loadtest.machine import machine_info, now_iso
from loadtest.race import RaceResult, RaceSpec, run_race
from loadtest.server_process import ServerProcess
from loadtest.valkey_kill import kill_valkey

__all__ = ["AuctionConfig", "run_auction", "INCREMENTS"]

log = logging.getLogger(__name__)

INCREMENTS = [[10_000, 10], [100_000, 50], [-1, 100]]  # three bands: the model crosses them
_START_MINOR = 1_000
_TOKEN_TTL_S = 6 * 3600
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 1.0
_POLL_S = 0.05  # the closing phase reads the auction's clock this often
_CLOSE_TIMEOUT_S = 30.0  # for the closer to close it after its deadline
_LOG_PAGE = 1_000
_RISE_STEPS = 3
_VIEWERS_STALL_S = 10.0
_SCREEN_SAMPLE = 500  # acknowledged bids whose bid-to-screen latency is measured
_ACCEPTED = frozenset({"high", "outbid", "raised"})
_BASELINE_REQUESTS = 20_000
_BASELINE_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class AuctionConfig:
    bidders: int = 5_000
    bid_rate: float = 2_000.0  # bids per second, open loop
    duration_s: int = 30  # the auction's own (10-3600, the API's bounds)
    extend_s: int = 5  # anti-sniping window (5-60)
    viewers: int = 0
    low_share: float = 0.1  # bids meant to be too low
    lead_ms: float = 20.0  # the first snipes go this long before the deadline
    tail_s: float = 1.0  # bids go on this long after the close
    kill_valkey: bool = False
    connections: int = 512  # at most, open as needed
    attempt_timeout_s: float = 10.0
    max_attempts: int = 8
    seed: int = 14
    baseline: bool = True
    server_log_level: str | None = None

    def validate(self) -> None:
        if self.bidders < 2 or self.bid_rate <= 0:
            raise ValueError("at least 2 bidders and a positive bid rate")
        if not 10 <= self.duration_s <= 3600 or not 5 <= self.extend_s <= 60:
            raise ValueError("--duration 10-3600 s and --extend 5-60 s (the API's bounds)")
        if self.duration_s <= self.extend_s:
            raise ValueError("--duration must be longer than --extend")
        if not 0 <= self.low_share < 1 or self.viewers < 0 or self.connections < 1:
            raise ValueError("--low-share in [0, 1), --viewers >= 0, --connections >= 1")


@dataclass(slots=True)
class _Bid:
    index: int
    bidder: int
    max_minor: int
    phase: str  # main, hold, snipe
    key: str = ""  # the bid id (its Idempotency-Key)
    sent_ms: int = 0  # wall clock at the first send
    due: float = 0.0  # monotonic: when the open loop meant to send it
    status: int = 0  # 0: no answer
    attempts: int = 0
    reply: dict[str, Any] = field(default_factory=dict)


class _Bidding:
    """The open-loop bid generator: one event loop, a pool of keep-alive connections."""

    def __init__(self, config: AuctionConfig, shop: _Shop, auction: str, ends_ms: int) -> None:
        self.config = config
        self.shop = shop
        self.path = f"/api/v1/streams/{shop.stream}/auctions/{auction}/bids"
        self.public_path = f"/api/v1/streams/{shop.stream}/auctions/{auction}"
        self.rng = random.Random(config.seed)
        self.bids: list[_Bid] = []
        self.hist = LatencyHistogram()
        self.hist_201 = LatencyHistogram()
        self.idle: list[HttpConnection] = []
        self.opened = 0
        self.slots = asyncio.Semaphore(config.connections)
        self.next_minor = _START_MINOR  # the least bid the client last heard of
        self.heard_bids = 0  # the latest bid count the client heard of
        self.ends_ms = ends_ms  # the deadline the client last heard of
        self.extended_in_snipes = False
        self.closed = False  # the auction is no longer open (its public state)
        self.retried: collections.Counter[str] = collections.Counter()
        self.go_wall = 0.0

    def _max(self, phase: str, index: int) -> int:
        """A max that beats what the client last heard of, or (`low_share`, and in the hold)
        one under it. The bids in flight were all chosen from the same stale price, so a
        beating max also rises with the bid's place in the schedule (`_RISE_STEPS` of the
        top band per bid): later bids beat earlier ones, and most are accepted."""
        nxt = self.next_minor
        step = step_of(INCREMENTS, nxt)
        if phase == "hold" or (phase == "main" and self.rng.random() < self.config.low_share):
            return max(1, nxt - step * self.rng.randint(1, 3))  # too low
        rising = _START_MINOR + index * _RISE_STEPS * INCREMENTS[-1][1]
        return max(nxt, rising) + step * self.rng.randint(0 if phase == "main" else 1, 2)

    def _phase(self, now_ms: int, main_end_ms: int) -> str:
        if now_ms < main_end_ms:
            return "main"
        lead = 0.0 if self.extended_in_snipes else self.config.lead_ms
        return "snipe" if now_ms >= self.ends_ms - lead else "hold"

    def _heard(self, status: int, reply: dict[str, Any], phase: str) -> None:
        if status == 201:
            if int(reply["bids"]) > self.heard_bids:
                self.heard_bids = int(reply["bids"])
                price = int(reply["price_minor"])
                self.next_minor = max(self.next_minor, price + step_of(INCREMENTS, price))
            if int(reply["ends_ms"]) > self.ends_ms:
                if phase == "snipe":
                    self.extended_in_snipes = True
                self.ends_ms = int(reply["ends_ms"])
        elif status == 409 and reply.get("next_minor"):
            self.next_minor = max(self.next_minor, int(reply["next_minor"]))

    def request(self, bid: _Bid) -> bytes:
        return self.shop.req("POST", self.path, self.shop.buyer_tokens[bid.bidder],
                             {"max_minor": bid.max_minor}, {"Idempotency-Key": bid.key})

    async def _conn(self) -> HttpConnection:
        await self.slots.acquire()
        if self.idle:
            return self.idle.pop()
        self.opened += 1
        return HttpConnection(self.shop.host, self.shop.port)

    def _release(self, conn: HttpConnection) -> None:
        if conn.is_open:
            self.idle.append(conn)
        self.slots.release()

    async def _send(self, bid: _Bid, due: float, main_end_ms: int) -> None:
        conn = await self._conn()
        try:
            now_ms = int(time.time() * 1000)
            bid.phase = self._phase(now_ms, main_end_ms)
            bid.max_minor = self._max(bid.phase, bid.index)
            bid.sent_ms, bid.due = now_ms, due
            raw = self.request(bid)
            status, body = await self._attempts(conn, raw, bid)
        finally:
            self._release(conn)
        done = time.monotonic()
        bid.status = status
        if status:
            self.hist.record(done - due)
            if status == 201:
                self.hist_201.record(done - due)
            try:
                bid.reply = orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                bid.reply = {}
            self._heard(status, bid.reply, bid.phase)

    async def _attempts(self, conn: HttpConnection, raw: bytes, bid: _Bid) -> tuple[int, bytes]:
        """The same bytes (the same bid id) until an answer that is not a 5xx."""
        status, body = 0, b""
        for attempt in range(1, self.config.max_attempts + 1):
            bid.attempts = attempt
            try:
                reply = await conn.request(raw, self.config.attempt_timeout_s)
            except ConnectionFailed:
                self.retried["connection"] += 1
            except RequestTimeout:
                self.retried["timeout"] += 1
            else:
                status, body = reply.status, reply.body
                if status not in _RETRY_STATUSES:
                    return status, body
                self.retried[str(status)] += 1
            await asyncio.sleep(min(_BACKOFF_FIRST_S * 2 ** (attempt - 1), _BACKOFF_MAX_S))
        return (status, body) if status not in _RETRY_STATUSES else (0, b"")

    async def _watch_clock(self) -> None:
        """In the closing phase: the auction's deadline and state as viewers read them."""
        conn = HttpConnection(self.shop.host, self.shop.port)
        raw = self.shop.req("GET", self.public_path, None)
        try:
            while not self.closed:
                try:
                    reply = await conn.request(raw, 5.0)
                    if reply.status == 200:
                        a = orjson.loads(reply.body)
                        self.ends_ms = max(self.ends_ms, int(a["ends_ms"]))
                        self.closed = a["state"] != "open"
                except (ConnectionFailed, RequestTimeout):
                    pass
                await asyncio.sleep(_POLL_S)
        finally:
            conn.close()

    async def run(self, main_end_ms: int, limit_s: float) -> float:
        """Bid until `tail_s` after the close (at most `limit_s`); returns the go time."""
        rate = self.config.bid_rate
        go = time.monotonic() + 0.01
        self.go_wall = time.time() + 0.01
        tasks: set[asyncio.Task[None]] = set()
        watcher: asyncio.Task[None] | None = None
        stop_at = go + limit_s
        i = 0
        while True:
            due = go + i / rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            now = time.monotonic()
            if watcher is None and time.time() * 1000 >= main_end_ms:
                watcher = asyncio.create_task(self._watch_clock())
            if self.closed and stop_at > now + self.config.tail_s:
                stop_at = now + self.config.tail_s
            if now >= stop_at:
                break
            bid = _Bid(i, self.rng.randrange(self.config.bidders), 0, "",
                       f"bid-{self.shop.run_id}-{i:07d}")
            self.bids.append(bid)
            task = asyncio.create_task(self._send(bid, due, main_end_ms))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        await asyncio.gather(*tasks)
        for conn in self.idle:
            conn.close()
        return go


async def _resolve(shop: _Shop, bidding: _Bidding) -> int:
    """Send each bid left without an answer once more (the same bid id: the answer it got,
    or, never applied, a refusal now); returns how many are still without one."""
    lost = [b for b in bidding.bids if not b.status]
    if not lost:
        return 0
    replies = await run_requests(shop.host, shop.port, [bidding.request(b) for b in lost],
                                 concurrency=32)
    for bid, reply in zip(lost, replies, strict=True):
        if reply.status < 500:
            bid.status, bid.reply = reply.status, orjson.loads(reply.body) if reply.body else {}
    return sum(1 for b in lost if not b.status)


async def _closed(shop: _Shop, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + _CLOSE_TIMEOUT_S
    while True:
        a: dict[str, Any] = await shop.one(shop.req("GET", path, None), 200)
        if a["state"] != "open" or time.monotonic() > deadline:
            return a
        await asyncio.sleep(0.1)


async def _bid_log(shop: _Shop, path: str, token: str) -> list[dict[str, Any]]:
    """The whole bid log through the API's pages, newest first."""
    items: list[dict[str, Any]] = []
    before = ""
    while True:
        page = await shop.one(shop.req(
            "GET", f"{path}/bids?limit={_LOG_PAGE}" + (f"&before={before}" if before else ""),
            token), 200)
        items += page["items"]
        if page["before"] is None:
            return items
        before = page["before"]


def _checks(bids: list[_Bid], logged: list[dict[str, Any]], final: dict[str, Any],
            reserve: int) -> dict[str, Any]:
    """The invariants, from the client's log against the server's."""
    by_id = {e["bid_id"]: e for e in logged}
    acked = [b for b in bids if b.status == 201]
    lost = [b for b in acked if (e := by_id.get(b.key)) is None
            or e["outcome"] not in _ACCEPTED]
    accepted_ids = {e["bid_id"] for e in logged if e["outcome"] in _ACCEPTED}
    ack_ids = {b.key for b in acked}
    ends = int(final["ends_ms"])
    after_server = [b for b in acked if (e := by_id.get(b.key)) is not None
                    and e["at_ms"] >= ends]
    after_client = [b for b in acked if b.sent_ms >= ends]
    early_closed = [e for e in logged if e["outcome"] == "closed" and e["at_ms"] < ends]
    # The replay: acknowledged bids in the server's order, each reply against the model.
    model = ProxyAuction(_START_MINOR, reserve, INCREMENTS)
    paddles: dict[int, int] = {}
    disagreements: list[str] = []
    for b in sorted(acked, key=lambda b: int(b.reply["bids"])):
        outcome = model.bid(str(b.bidder), b.max_minor)
        paddles[b.bidder] = int(b.reply["paddle"])
        if outcome != b.reply["outcome"] or model.price != int(b.reply["price_minor"]):
            if len(disagreements) < 10:
                disagreements.append(f"bid {b.index} (#{b.reply['bids']}): model {outcome} at "
                                     f"{model.price}, server {b.reply['outcome']} at "
                                     f"{b.reply['price_minor']}")
            else:
                disagreements.append("")
    model_paddle = paddles.get(int(model.high)) if model.high is not None else None
    return {
        "acknowledged": len(acked),
        "lost_acknowledged": len(lost),
        "accepted_not_acknowledged": len(accepted_ids - ack_ids),
        "auction_bids": int(final["bids"]),
        "accepted_after_deadline": len(after_server),
        "sent_after_deadline_and_accepted": len(after_client),
        "refused_closed_before_deadline": len(early_closed),
        # how far before the final deadline (the script's `now` is read before the call
        # waits for a connection, so scripts can run out of their clock's order)
        "refused_closed_earliest_ms": max((ends - e["at_ms"] for e in early_closed), default=0),
        "model_disagreements": len(disagreements),
        "model_examples": [d for d in disagreements if d],
        "model_price_minor": model.price,
        "model_paddle": model_paddle,
        "final_price_minor": int(final["price_minor"]),
        "final_paddle": final.get("high_paddle"),
        "price_matches": model.price == int(final["price_minor"]),
        "winner_matches": model_paddle == final.get("high_paddle"),
        "log_entries": len(logged),
    }


async def _baseline(config: AuctionConfig, bidding: _Bidding) -> dict[str, Any]:
    """Bare starlette's capacity on this machine in the same run (`loadtest.baseline`):
    the run's own bid requests (the same bytes but the path and host), closed loop, one
    client process."""
    shop = bidding.shop
    sample = bidding.bids[:_BASELINE_REQUESTS]
    async with ServerProcess.baseline(log_level=config.server_log_level or "info") as bare:
        raws = [bidding.request(b).replace(bidding.path.encode(), BUY_PATH.encode(), 1)
                .replace(f"Host: {shop.host}:{shop.port}".encode(),
                         f"Host: {bare.host}:{bare.port}".encode(), 1) for b in sample]
        race: RaceResult = await run_race(
            RaceSpec(bare.host, bare.port, _BASELINE_CONCURRENCY), raws, processes=1)
    return {"requests": len(raws), "per_s": round(race.throughput_per_s, 1),
            "latency_ms": race.latency().summary().as_dict()}


async def run_auction(config: AuctionConfig) -> dict[str, Any]:
    config.validate()
    started, load_before = time.monotonic(), os.getloadavg()[0]
    run_id = f"{int(time.time()):x}{os.getpid():x}"
    report: dict[str, Any] = {"scenario": "auction", "bidders": config.bidders,
                              "bid_rate": config.bid_rate, "duration_s": config.duration_s,
                              "extend_s": config.extend_s, "viewers": config.viewers,
                              "kill_valkey": config.kill_valkey, "seed": config.seed}
    server = start_livecart(config.viewers, config.server_log_level)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(server)
        stack.callback(lambda: report.__setitem__(
            "server_log_errors", log_errors(server.log_tail(100_000))))
        valkey_url = server.valkey_url
        if valkey_url is None:
            raise RuntimeError(f"no Valkey config under {server.node_data_dir}")
        tokens = TokenAuthority(server.secret)
        shop = _Shop(server.host, server.port, tokens, run_id)
        try:
            await shop.setup(1, config.bidders)  # one unit: the lot
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log tail:\n{server.log_tail(40)}") from None
        report["setup_seconds"] = round(time.monotonic() - started, 2)
        log.info("setup done in %.1f s (%d bidders with wallets)", report["setup_seconds"],
                 config.bidders)
        fleet: ViewerFleet | None = None
        if config.viewers:
            fleet = await stack.enter_async_context(ViewerFleet(
                config.viewers, math.ceil(config.viewers / VIEWERS_PER_PROCESS)))
            url = f"ws://127.0.0.1:{hub_port(server)}/ws/streams/{shop.stream}"
            report["connect"] = await connect_viewers(fleet, url, True,
                                                      60.0 + 0.02 * config.viewers)
            log.info("%d viewers in the room", report["connect"]["ready"])
        creator = tokens.mint(Role.CREATOR, CREATOR, ttl_s=_TOKEN_TTL_S)
        created = await shop.one(shop.req(
            "POST", f"/api/v1/streams/{shop.stream}/auctions", creator,
            {"product_id": shop.product, "start_minor": _START_MINOR,
             "duration_s": config.duration_s, "extend_s": config.extend_s,
             "increments": INCREMENTS, "open": True}), 201)
        auction = created["id"]
        path = f"/api/v1/streams/{shop.stream}/auctions/{auction}"
        main_end_ms = int(created["ends_ms"]) - config.extend_s * 1000
        bidding = _Bidding(config, shop, auction, int(created["ends_ms"]))
        kills: list[dict[str, Any]] = []
        killer = None
        if config.kill_valkey:
            killer = asyncio.create_task(_kill_midway(valkey_url, bidding, main_end_ms, kills))
        log.info("auction %s open for %d s; bidding at %.0f/s", auction, config.duration_s,
                 config.bid_rate)
        limit_s = config.duration_s + _CLOSE_TIMEOUT_S + 60
        go = await bidding.run(main_end_ms, limit_s)
        bid_s = time.monotonic() - go
        if killer is not None:
            await killer
        report["unresolved"] = await _resolve(shop, bidding)
        final = await _closed(shop, path)
        logged = await _bid_log(shop, path, creator)
        checks = _checks(bidding.bids, logged, final, reserve=0)
        if fleet is not None:
            report["viewers_seen"], report["viewers_caught_up_s"] = await _viewers_caught_up(
                fleet, valkey_url, shop.stream, int(final["bids"]))
            report["bid_to_screen"] = await _bid_to_screen(fleet, bidding.bids)
    report.update(_figures(config, bidding, go, bid_s, main_end_ms, final, checks, kills))
    if config.baseline:
        log.info("baseline: bare starlette, closed loop")
        report["bare"] = await _baseline(config, bidding)
        report["answered_vs_bare"] = round(report["answered_per_s"] / report["bare"]["per_s"], 3)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["machine"], report["date"] = machine_info(load_before), now_iso()
    return report


async def _viewers_caught_up(fleet: ViewerFleet, valkey_url: str, stream: str,
                             bids: int) -> tuple[dict[str, Any], float | None]:
    """What the viewers saw once every one holds the show's last event and is shown the
    auction's final bid count (the hub may still be fanning out a backlog when the auction
    closes), or once nothing moved for `_VIEWERS_STALL_S`; and how long after the close that
    was (None: they did not)."""
    started = time.monotonic()
    client = redis.Redis.from_url(valkey_url, socket_timeout=10)
    last, moved = -1, started
    try:
        while True:
            seq = await read_seq(client, stream)
            seen = seq_checks(await fleet.call_all(
                "check", {"stock": {}, "pinned": [], "seq": seq, "auction_bids": bids},
                timeout_s=120))
            if seen["viewers_behind_seq"] == 0 and seen["viewers_behind_auction"] == 0:
                return seen, round(time.monotonic() - started, 2)
            frames = sum(seen["hub_frames"].values())
            if frames != last:
                last, moved = frames, time.monotonic()
            elif time.monotonic() - moved > _VIEWERS_STALL_S:
                return seen, None
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()


async def _bid_to_screen(fleet: ViewerFleet, bids: list[_Bid]) -> dict[str, Any]:
    """Bid to screen over every viewer for a sample of the acknowledged bids (evenly spaced
    in the server's order)."""
    acked = sorted((b for b in bids if b.status == 201), key=lambda b: int(b.reply["bids"]))
    sample = acked[::max(1, len(acked) // _SCREEN_SAMPLE)]
    due = {int(b.reply["bids"]): b.due for b in sample}
    answers = await fleet.call_all("bid_latency", {"due": due}, timeout_s=120)
    hist = LatencyHistogram()
    for a in answers:
        hist.merge(LatencyHistogram.decode(a["histogram"]))
    summary = hist.summary()
    return {"bids_sampled": len(due), "pairs": summary.count,
            "missed_pairs": sum(int(a["missed"]) for a in answers),
            "p50_ms": summary.p50_ms, "p99_ms": summary.p99_ms,
            "max_ms": round(max((a["max_s"] for a in answers), default=0.0) * 1000, 1)}


async def _kill_midway(valkey_url: str, bidding: _Bidding, main_end_ms: int,
                       kills: list[dict[str, Any]]) -> None:
    """Halfway through the main phase, SIGKILL Valkey; the node's supervisor restarts it."""
    await asyncio.sleep(max(0.0, (main_end_ms / 1000 - time.time()) / 2))
    client = redis.Redis.from_url(valkey_url, socket_timeout=2, socket_connect_timeout=1)
    try:
        acked = sum(1 for b in bidding.bids if b.status == 201)
        done = await kill_valkey(client)
        kills.append({"at_s": round(time.time() - bidding.go_wall, 2), "acked_before": acked,
                      "old_pid": done.old_pid, "new_pid": done.new_pid,
                      "back_after_s": done.back_after_s})
    finally:
        await client.aclose()


def _figures(config: AuctionConfig, bidding: _Bidding, go: float, bid_s: float,
             main_end_ms: int, final: dict[str, Any], checks: dict[str, Any],
             kills: list[dict[str, Any]]) -> dict[str, Any]:
    bids = bidding.bids
    main = [b for b in bids if b.phase == "main"]
    main_s = max(1e-9, main_end_ms / 1000 - bidding.go_wall)
    outcomes = collections.Counter(
        str(b.reply.get("outcome") or str(b.reply.get("type", "")).rsplit("/", 1)[-1]
            or b.status) for b in bids)
    return {
        "bids_sent": len(bids),
        "bid_seconds": round(bid_s, 2),
        # answers per second over the whole bidding, the backlog's drain included: what
        # the node took (at an offered rate above it, the open loop queues behind it)
        "answered_per_s": round(sum(1 for b in bids if b.status) / max(bid_s, 1e-9), 1),
        "main_seconds": round(main_s, 2),
        "main": {"sent": len(main),
                 "accepted_per_s": round(sum(b.status == 201 for b in main) / main_s, 1),
                 "refused_per_s": round(sum(b.status == 409 for b in main) / main_s, 1)},
        "phases": {p: dict(collections.Counter(str(b.status) for b in bids if b.phase == p))
                   for p in ("main", "hold", "snipe")},
        "outcomes": dict(outcomes.most_common()),
        "latency_ms": bidding.hist.summary().as_dict(),
        "latency_ms_201": bidding.hist_201.summary().as_dict(),
        "connections_opened": bidding.opened,
        "retries": dict(bidding.retried),
        "max_attempts_used": max((b.attempts for b in bids), default=0),
        "final": {k: final.get(k) for k in ("state", "price_minor", "high_paddle", "bids",
                                            "ends_ms", "opened_ms")},
        "extended_s": round((int(final["ends_ms"]) - main_end_ms) / 1000 - config.extend_s, 2),
        "checks": checks,
        "kills": kills,
    }
