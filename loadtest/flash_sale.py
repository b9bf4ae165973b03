"""The flash sale: N buyers race for U units of one product offered in a live stream.

1. Start a `livecart serve` child (or use `url` + `secret`), set up a brand, a product with
   U units, a live stream offering it, and a wallet for every buyer (not measured).
2. The race (`loadtest.race`): every buyer sends one buy with its own Idempotency-Key.
   Optionally `kill -9` the embedded Valkey once a fraction of the units is sold; the
   server's supervisor restarts it from the AOF while the race goes on.
3. Check the outcome through the API and Valkey: acknowledged orders, units sold, oversold,
   duplicate orders, acknowledged orders lost, the stock invariant.
4. The baseline: the same requests, clients and concurrency against a bare starlette
   endpoint on the same uvicorn stack (`loadtest.baseline`), for the throughput ratio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as redis

from checkout.store.keys import product_keys
from live.accounts.auth import Role, TokenAuthority
from loadtest.http_client import ApiCalls, Reply, loopback_host_port, run_requests
from loadtest.machine import machine_info, now_iso
from loadtest.race import RaceResult, RaceSpec, run_race
from loadtest.server_process import ServerProcess
from loadtest.valkey_kill import kill_valkey, server_pid

__all__ = ["FlashSaleConfig", "run_flash_sale", "KillRecord"]

log = logging.getLogger(__name__)

BRAND = "flashbrand"
CREATOR = "flashhost"
VARIANT = "default"
_TOKEN_TTL_S = 6 * 3600
_SETUP_CONCURRENCY = 32  # the node's Valkey pool holds 64 connections
_KILL_POLL_S = 0.002


@dataclass(frozen=True, slots=True)
class FlashSaleConfig:
    buyers: int = 20_000
    units: int = 1_000
    concurrency: int = 256
    client_processes: int = 1  # 0: the clients run in this event loop
    rate_per_s: float | None = None  # open loop at this arrival rate; None: closed loop
    duration_limit_s: float = 300.0
    attempt_timeout_s: float = 10.0
    max_attempts: int = 6
    kill_valkey_at: float | None = None  # fraction of the units sold
    durability: str = "appendfsync"
    server_log_level: str | None = None  # None: the server's default
    baseline: bool = True
    baseline_loop: str = "uvloop"  # what uvicorn is configured with; "asyncio" to compare
    url: str | None = None  # an already running node (then `secret` is needed)
    secret: str | None = None
    redis_url: str | None = None  # that node's Valkey, for the deep checks and the kill


@dataclass(frozen=True, slots=True)
class KillRecord:
    at_s: float  # after the start of the race
    sold_at_kill: int
    old_pid: int
    new_pid: int
    back_after_s: float  # until the new server answered PING


async def run_flash_sale(config: FlashSaleConfig) -> dict[str, Any]:
    """Run the whole scenario; returns the report (see `loadtest.report`)."""
    if config.units < 1 or config.buyers < 1:
        raise ValueError("buyers and units must be at least 1")
    if config.kill_valkey_at is not None and not 0 < config.kill_valkey_at < 1:
        raise ValueError("--kill-valkey-at is a fraction between 0 and 1")
    run_id = f"{int(time.time()):x}{os.getpid():x}"
    server: ServerProcess | None = None
    if config.url is None:
        server = ServerProcess.livecart(durability=config.durability,
                                        log_level=config.server_log_level)
    async with contextlib.AsyncExitStack() as stack:
        if server is not None:
            await stack.enter_async_context(server)
            url, secret, valkey_url = server.url, server.secret, server.valkey_url
            if valkey_url is None:
                raise RuntimeError(f"no Valkey config under {server.node_data_dir}")
        else:
            assert config.url is not None  # no server of our own: the node is at --url
            if not config.secret:
                raise ValueError("--url needs --secret (the node's token secret)")
            url, secret, valkey_url = config.url, config.secret, config.redis_url
        if config.kill_valkey_at is not None and valkey_url is None:
            raise ValueError("--kill-valkey-at needs the node's Valkey (--redis-url)")
        host, port = loopback_host_port(url)
        shop = _Shop(host, port, TokenAuthority(secret), run_id)
        started = time.monotonic()
        try:
            await shop.setup(config.units, config.buyers)
        except RuntimeError as exc:
            tail = server.log_tail(40) if server is not None else "(external node)"
            raise RuntimeError(f"{exc}\nserver log tail:\n{tail}") from None
        setup_s = time.monotonic() - started
        requests = shop.buy_requests()
        log.info("setup done in %.1f s (product %s, stream %s); the race starts",
                 setup_s, shop.product, shop.stream)
        spec = RaceSpec(host, port, config.concurrency, config.rate_per_s,
                        config.attempt_timeout_s, config.max_attempts, config.duration_limit_s)
        kills: list[KillRecord] = []
        during: Callable[[float], Awaitable[None]] | None = None
        if config.kill_valkey_at is not None:
            assert valkey_url is not None
            threshold = max(1, int(config.units * config.kill_valkey_at))
            during = _killer(valkey_url, shop.product, threshold, kills)
        race = await run_race(spec, requests, processes=config.client_processes, during=during)
        log.info("race done: %d replies in %.2f s; checking", race.completed, race.elapsed_s)
        checks = await shop.verify(race, valkey_url)
        server_log_tail = server.log_tail(10) if server is not None else ""
    baseline: RaceResult | None = None
    # A paced run's throughput is its rate: a ratio against bare capacity would mean nothing.
    if config.baseline and config.rate_per_s is None:
        log.info("baseline: the same requests against bare starlette")
        async with ServerProcess.baseline(log_level=config.server_log_level or "info",
                                          loop=config.baseline_loop) as bare:
            bare_spec = RaceSpec(bare.host, bare.port, config.concurrency, config.rate_per_s,
                                 config.attempt_timeout_s, config.max_attempts,
                                 config.duration_limit_s)
            bare_requests = [r.replace(f"Host: {host}:{port}".encode(),
                                       f"Host: {bare.host}:{bare.port}".encode(), 1)
                             for r in requests]
            baseline = await run_race(bare_spec, bare_requests,
                                      processes=config.client_processes)
    return _report(config, race, checks, kills, baseline, setup_s, server_log_tail)


class _Shop(ApiCalls):
    """The shop under test, set up through the HTTP API."""

    def __init__(self, host: str, port: int, tokens: TokenAuthority, run_id: str) -> None:
        super().__init__(host, port)
        self.tokens = tokens
        self.run_id = run_id
        self.product = ""
        self.stream = ""
        self.buyers: list[str] = []
        self.buyer_tokens: list[str] = []
        self._brand_token = tokens.mint(Role.BRAND, BRAND, ttl_s=_TOKEN_TTL_S)

    async def setup(self, units: int, buyers: int, *, go_live: bool = True) -> None:
        """A brand, a product with `units`, a stream with it (live unless `go_live` is off:
        a WHIP publish makes it live), and `buyers` with wallets."""
        operator = self.tokens.mint(Role.OPERATOR, "loadtest", ttl_s=_TOKEN_TTL_S)
        creator = self.tokens.mint(Role.CREATOR, CREATOR, ttl_s=_TOKEN_TTL_S)
        await self.one(self.req("POST", "/api/v1/brands", operator,
                                  {"id": BRAND, "name": "Flash Brand", "currency": "USD"}),
                        201, 409)
        product = await self.one(self.req(
            "POST", f"/api/v1/brands/{BRAND}/products", self._brand_token,
            {"title": "Flash sneaker", "price_minor": 4900, "currency": "USD",
             "sku": f"FLASH-{self.run_id}", "stock": units, "commission_bps": 1000}), 201)
        self.product = product["id"]
        stream = await self.one(self.req("POST", "/api/v1/streams", creator,
                                           {"title": "Flash sale", "lineup": [self.product]}), 201)
        self.stream = stream["id"]
        if go_live:
            await self.one(self.req("POST", f"/api/v1/streams/{self.stream}/live", creator), 200)
        self.buyers = [f"fb{self.run_id}-{i:06d}" for i in range(buyers)]
        self.buyer_tokens = [self.tokens.mint(Role.BUYER, b, ttl_s=_TOKEN_TTL_S)
                             for b in self.buyers]
        wallet = {"shipping": {"name": "Buyer", "line1": "1 Main St", "city": "Springfield",
                               "postal_code": "12345", "country": "US"},
                  "payment_token": "tok_visa"}
        replies = await run_requests(
            self.host, self.port, [self.req("PUT", "/api/v1/me/wallet", t, wallet)
                                   for t in self.buyer_tokens],
            concurrency=_SETUP_CONCURRENCY)
        bad = [r for r in replies if r.status != 200]
        if bad:
            raise RuntimeError(f"{len(bad)} wallets refused, e.g. {bad[0].status} "
                               f"{bad[0].body[:300]!r}")

    def buy_requests(self) -> list[bytes]:
        body = {"product_id": self.product, "stream_id": self.stream, "quantity": 1}
        return [self.req("POST", "/api/v1/buy", token, body,
                          {"Idempotency-Key": f"fs-{self.run_id}-{i:06d}"})
                for i, token in enumerate(self.buyer_tokens)]

    async def stock(self) -> dict[str, int]:
        data = await self.one(self.req("GET", f"/api/v1/products/{self.product}/stock",
                                         self._brand_token), 200)
        (levels,) = [item for item in data["items"] if item["variant"] == VARIANT]
        return {k: int(levels[k]) for k in ("available", "held", "sold", "total")}

    async def verify(self, race: RaceResult, valkey_url: str | None) -> dict[str, Any]:
        """Everything the targets ask, read back after the race."""
        stock = await self.stock()
        acked = [(i, oid) for i, (s, oid) in enumerate(zip(race.statuses, race.order_ids))
                 if s == 201]
        acked_ids = [oid for _, oid in acked]
        # Read every acknowledged order back as its buyer: it must exist, be paid, be theirs.
        reads = await run_requests(self.host, self.port, [
            self.req("GET", f"/api/v1/orders/{oid}", self.buyer_tokens[i]) for i, oid in acked],
            concurrency=_SETUP_CONCURRENCY) if acked else []
        lost = 0
        lost_detail: collections.Counter[str] = collections.Counter()
        for (i, oid), reply in zip(acked, reads):
            why = _why_not_paid_order_of(reply, oid, self.buyers[i])
            if why:
                lost += 1
                lost_detail[why] += 1
        checks: dict[str, Any] = {
            "stock": stock,
            "orders_acknowledged": len(acked),
            "distinct_acknowledged_ids": len(set(acked_ids)),
            "lost_acknowledged": lost + sum(1 for oid in acked_ids if not oid),
            "lost_detail": dict(lost_detail),
            "unresolved": sum(1 for s in race.statuses if s == 0),
        }
        duplicates = len(acked_ids) - len(set(acked_ids))
        if valkey_url is not None:
            orders = await _orders_in_valkey(valkey_url, self.product)
            per_buyer = collections.Counter(buyer for buyer, _ in orders)
            duplicates = max(duplicates, sum(n - 1 for n in per_buyer.values() if n > 1))
            states = collections.Counter(state for _, state in orders)
            acked_buyers = {self.buyers[i] for i, _ in acked}
            checks["orders_in_valkey"] = len(orders)
            checks["order_states"] = dict(states)
            checks["paid_not_acknowledged"] = sum(
                1 for buyer, state in orders if state == "paid" and buyer not in acked_buyers)
            paid = states.get("paid", 0)
        else:
            paid = len(acked)
        checks["duplicate_orders"] = duplicates
        units = stock["total"]
        checks["oversold"] = max(0, stock["sold"] + stock["held"] - units, paid - units,
                                 -stock["available"])
        checks["stock_invariant_ok"] = (
            stock["total"] == stock["available"] + stock["held"] + stock["sold"]
            and min(stock.values()) >= 0)
        return checks


def _why_not_paid_order_of(reply: Reply, order_id: str, buyer: str) -> str:
    """"" if the reply shows the buyer's paid order; else why not (missing, state ...)."""
    if reply.status == 404:
        return "missing"
    if reply.status != 200:
        return f"read-back status {reply.status}"
    order = orjson.loads(reply.body)
    if order.get("id") != order_id or order.get("buyer") != buyer:
        return "someone else's order"
    return "" if order.get("state") == "paid" else f"state {order.get('state')}"


async def _orders_in_valkey(valkey_url: str, product: str) -> list[tuple[str, str]]:
    """(buyer, state) of every order of the product, straight from Valkey."""
    client = redis.Redis.from_url(valkey_url, socket_timeout=10)
    try:
        keys = [k async for k in client.scan_iter(match=product_keys(product).order("") + "*",
                                                   count=1000)]
        out: list[tuple[str, str]] = []
        for i in range(0, len(keys), 1000):
            async with client.pipeline(transaction=False) as pipe:
                for key in keys[i:i + 1000]:
                    pipe.hmget(key, "buyer", "state")
                for buyer, state in await pipe.execute():
                    out.append(((buyer or b"").decode(), (state or b"").decode()))
        return out
    finally:
        await client.aclose()


def _killer(valkey_url: str, product: str, threshold: int,
            kills: list[KillRecord]) -> Callable[[float], Awaitable[None]]:
    """A side task: when `threshold` units are sold, SIGKILL Valkey and time its return."""
    stock_key = product_keys(product).stock

    async def kill(go_at: float) -> None:
        client = redis.Redis.from_url(valkey_url, socket_timeout=2, socket_connect_timeout=1)
        try:
            old_pid = await server_pid(client)
            while True:
                sold = int(await client.hget(stock_key, f"sold:{VARIANT}") or 0)
                if sold >= threshold:
                    break
                await asyncio.sleep(_KILL_POLL_S)
            done = await kill_valkey(client, old_pid)
            log.warning("Valkey killed with %d units sold", sold)
            kills.append(KillRecord(round(done.killed_at - go_at, 3), sold, done.old_pid,
                                    done.new_pid, done.back_after_s))
        finally:
            await client.aclose()

    return kill


def _report(config: FlashSaleConfig, race: RaceResult, checks: dict[str, Any],
            kills: list[KillRecord], baseline: RaceResult | None, setup_s: float,
            server_log_tail: str) -> dict[str, Any]:
    latency = race.latency().summary()
    sell_s = race.last_201_at - race.go_at if race.last_201_at else 0.0
    statuses = collections.Counter(race.statuses)
    report: dict[str, Any] = {
        "scenario": "flash-sale",
        "buyers": config.buyers,
        "units": config.units,
        "orders_acknowledged": checks["orders_acknowledged"],
        "units_sold": checks["stock"]["sold"],
        "oversold": checks["oversold"],
        "duplicate_orders": checks["duplicate_orders"],
        "lost_acknowledged": checks["lost_acknowledged"],
        "lost_detail": checks["lost_detail"],
        "stock": checks["stock"],
        "stock_invariant_ok": checks["stock_invariant_ok"],
        "unresolved": checks["unresolved"],
        "throughput_per_s": round(race.throughput_per_s, 1),
        "race_seconds": round(race.elapsed_s, 3),
        # The sell phase: from the start until the last acknowledged buy was answered.
        "sold_out_after_s": round(sell_s, 3) if sell_s else None,
        "acknowledged_per_s": round(checks["orders_acknowledged"] / sell_s, 1) if sell_s else None,
        "latency_ms": latency.as_dict(),
        "latency_ms_201": race.latency_201().summary().as_dict(),
        "bare_throughput_per_s": None,
        "bare_latency_ms": None,
        "ratio_vs_bare": None,
        "durability": config.durability,
        "baseline_loop": config.baseline_loop if baseline is not None else None,
        "concurrency": config.concurrency,
        "client_processes": config.client_processes,
        "rate_per_s": config.rate_per_s,
        "kill_valkey_at": config.kill_valkey_at,
        "kills": [asdict(k) for k in kills],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "problems": race.problems,
        "retries": {"connection_errors": race.connection_errors, "timeouts": race.timeouts,
                    "retried_statuses": {str(k): v for k, v in race.retried_statuses.items()},
                    "max_attempts_used": max(race.attempts, default=0),
                    "reconnects": race.connects - min(config.concurrency, config.buyers)},
        "valkey": {k: checks[k] for k in ("orders_in_valkey", "order_states",
                                          "paid_not_acknowledged") if k in checks},
        "setup_seconds": round(setup_s, 2),
        "machine": machine_info(), "date": now_iso(),
    }
    if baseline is not None:
        report["bare_throughput_per_s"] = round(baseline.throughput_per_s, 1)
        report["bare_latency_ms"] = baseline.latency().summary().as_dict()
        report["ratio_vs_bare"] = round(race.throughput_per_s / baseline.throughput_per_s, 3)
    if checks["unresolved"] and server_log_tail:
        report["server_log_tail"] = server_log_tail
    return report


