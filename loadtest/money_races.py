"""Money races (issue #16) against a real node: payments racing their hold's expiry, cart
removal racing checkout; then the reconciliation, and every answer a buyer got checked
against what its order became.

1. Start a `livecart serve` child (cart holds of `hold_s`, the sweeper every
   `sweep_interval_s`, the capture mode asked) or use `url` + `secret`. Set up through the
   HTTP API only: a brand, a product with a unit per buyer, a live `cart_hold` stream, and
   every buyer's wallet (a sandbox card tokenized at /sandbox/tokens, saved with an address).
2. Pay at expiry: every buyer holds one unit, reads its order's deadline (`expires_ms`) and
   checks out at a seeded random moment in [deadline - pay_early_s, deadline + pay_late_s].
3. Remove while checking out: every other buyer holds one unit, then removes the item and
   checks out at the same time (one a few ms after the other, either way round).
4. Wait until the node owes no work (`GET /api/v1/ops/reconcile` until `pending` is empty),
   keep its reconciliation, read every order back as its buyer, and count the lies: answers
   the order, or the gateway as the reconciliation reports it, contradicts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import os
import random
import statistics
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from live.accounts.auth import Role, TokenAuthority
from loadtest.http_client import (ApiCalls, ConnectionFailed, HttpConnection, Reply,
                                  RequestTimeout, loopback_host_port, run_requests)
from loadtest.machine import machine_info, now_iso
from loadtest.server_process import ServerProcess

__all__ = ["MoneyRacesConfig", "run_money_races", "lie_of", "TOLD_STATES", "NO_ANSWER"]

log = logging.getLogger(__name__)

BRAND = "racebrand"
CREATOR = "racehost"
NO_ANSWER = "no answer"
_TOKEN_TTL_S = 6 * 3600
_SETUP_CONCURRENCY = 32  # the node's Valkey pool holds 64 connections
_REQUEST_TIMEOUT_S = 30.0
_HOLD_ATTEMPTS = 3  # an add with the same Idempotency-Key adds once
_REMOVE_SPREAD_S = 0.01  # removal and checkout start within this of each other
_QUIET_POLL_S = 0.5
_MAX_HOLD_S = 120  # an external node's holds past this: each pay would wait that long
_CARD = {"number": "4242424242424242", "exp_month": 12, "cvc": "123"}
_ADDRESS = {"name": "Racer", "line1": "1 Main St", "city": "Springfield",
            "postal_code": "12345", "country": "US"}
# What an answer allows the order to have become once the node is quiet. Not here: what
# decides nothing ("pending", refusals of the request itself).
TOLD_STATES: dict[str, frozenset[str]] = {
    "settled": frozenset({"authorized", "paid"}),
    "capture_pending": frozenset({"authorized", "paid"}),
    "expired": frozenset({"expired"}),
    "declined": frozenset({"declined"}),
    "cancelled": frozenset({"cancelled"}),
    "voided": frozenset({"voided"}),
    "empty": frozenset({"cancelled"}),  # checkout found nothing to pay: the removal won
}
# Removal answers that leave the item to the checkout: its order must not end cancelled.
_REMOVAL_LOST = frozenset({"409 checkout-in-progress", "404 not-found"})

Phase = Literal["pay", "remove"]


@dataclass(frozen=True, slots=True)
class MoneyRacesConfig:
    pay_buyers: int = 300
    remove_buyers: int = 300
    hold_s: int = 4  # LIVECART_CART_HOLD_S of the node started here
    capture_mode: str = "on_shipment"  # LIVECART_CAPTURE_MODE: or "immediate"
    sweep_interval_s: float = 0.1  # LIVECART_SWEEP_INTERVAL_S
    pay_early_s: float = 1.5  # pays land in [deadline - early, deadline + late]
    pay_late_s: float = 0.1
    seed: int = 16
    duration_limit_s: float = 600.0  # the whole run, node start to the last read-back
    quiet_timeout_s: float = 120.0  # for the node to owe no work after the races
    server_log_level: str | None = None
    url: str | None = None  # an already running node (then `secret` is needed)
    secret: str | None = None

    def validate(self) -> None:
        if self.pay_buyers < 0 or self.remove_buyers < 0 or not (
                self.pay_buyers or self.remove_buyers):
            raise ValueError("buyers may not be negative, and some are needed")
        if self.hold_s < 1 or self.sweep_interval_s <= 0:
            raise ValueError("the hold and the sweep interval must be positive")
        if self.capture_mode not in ("on_shipment", "immediate"):
            raise ValueError(f"capture mode on_shipment or immediate, not {self.capture_mode!r}")
        if self.pay_early_s < 0 or self.pay_late_s < 0:
            raise ValueError("--pay-early and --pay-late are seconds, not negative")
        if self.duration_limit_s <= 0 or self.quiet_timeout_s <= 0:
            raise ValueError("the time limits must be positive")
        if self.url is not None:
            loopback_host_port(self.url)
            if not self.secret:
                raise ValueError("--url needs --secret (the node's token secret)")


@dataclass(slots=True)
class _Attempt:
    """One buyer's go: its hold, what the checkout said, what the removal said."""

    phase: Phase
    buyer: str
    token: str
    item_id: str = ""
    order_id: str = ""
    refused: str = ""  # why there was no hold to race with ('' when held)
    told: str = ""  # the checkout's word for the item, "empty", "no answer" or "<status> <type>"
    removal: str = ""  # phase "remove": "204", "409 checkout-in-progress", ...
    hold_ms: int = 0  # the node's hold, its order's expires_ms - created_ms
    offset_ms: float | None = None  # phase "pay": checkout sent this long after the deadline

    def outcome(self) -> str:
        return f"hold refused: {self.refused}" if self.refused else self.told


def lie_of(told: str, removal: str, state: str, gateway: str = "") -> str:
    """Why the buyer's answers contradict what its order became ('' when they don't);
    `gateway`: the reconciliation's gateway mismatch for the order, if any."""
    allowed = TOLD_STATES.get(told)
    if allowed is not None and state not in allowed:
        return f"told {told}, the order is {state}"
    if removal in _REMOVAL_LOST and state == "cancelled":
        return f"removal answered {removal}, the order is cancelled"
    if gateway and allowed is not None:
        return f"told {told}; the reconciliation: {gateway}"
    return ""


def _label(reply: Reply | None) -> str:
    """A reply as a report key: '204', '409 checkout-in-progress', 'no answer'."""
    if reply is None:
        return NO_ANSWER
    if reply.status < 300:
        return str(reply.status)
    try:
        kind = str(orjson.loads(reply.body).get("type", ""))
    except (orjson.JSONDecodeError, AttributeError):
        kind = ""
    return f"{reply.status} {kind.rsplit('/', 1)[-1]}".strip()


def _checkout_word(reply: Reply | None) -> str:
    if reply is None or reply.status != 200:
        return _label(reply)
    items = orjson.loads(reply.body)["items"]
    return str(items[0]["result"]) if items else "empty"


class _Node(ApiCalls):
    """The node under test over HTTP, with the tokens its roles need (minted here)."""

    def __init__(self, host: str, port: int, tokens: TokenAuthority, run_id: str) -> None:
        super().__init__(host, port)
        self.tokens = tokens
        self.run_id = run_id
        self.product = ""
        self.stream = ""
        self.server_errors = 0  # 5xx replies during the races and the read-back
        self.operator = self.mint(Role.OPERATOR, "loadtest")

    def mint(self, role: Role, subject: str) -> str:
        return self.tokens.mint(role, subject, ttl_s=_TOKEN_TTL_S)

    async def many(self, raws: list[bytes], ok: int, what: str) -> list[Any]:
        replies = await run_requests(self.host, self.port, raws, concurrency=_SETUP_CONCURRENCY)
        bad = [r for r in replies if r.status != ok]
        if bad:
            raise RuntimeError(f"{len(bad)} {what} refused, e.g. {bad[0].status} "
                               f"{bad[0].body[:300]!r}")
        return [orjson.loads(r.body) for r in replies]

    async def send(self, raw: bytes, *, attempts: int = 1, delay_s: float = 0.0) -> Reply | None:
        """One race request on a connection of its own, after `delay_s`; None when no reply
        came. 5xx replies are counted; with `attempts` > 1 failures and 5xx are retried with
        the same bytes (only for idempotent requests)."""
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        reply: Reply | None = None
        for _ in range(attempts):
            conn = HttpConnection(self.host, self.port)
            try:
                reply = await conn.request(raw, _REQUEST_TIMEOUT_S)
            except (ConnectionFailed, RequestTimeout):
                reply = None
            finally:
                conn.close()
            if reply is not None and reply.status >= 500:
                self.server_errors += 1
            elif reply is not None:
                break
        return reply

    async def setup(self, units: int, buyers: list[str]) -> dict[str, str]:
        """The shop and the buyers' wallets; returns each buyer's token."""
        creator, brand = self.mint(Role.CREATOR, CREATOR), self.mint(Role.BRAND, BRAND)
        await self.one(self.req("POST", "/api/v1/brands", self.operator,
                                {"id": BRAND, "name": "Race Brand", "currency": "USD"}), 201, 409)
        product = await self.one(self.req(
            "POST", f"/api/v1/brands/{BRAND}/products", brand,
            {"title": "Race sneaker", "price_minor": 4900, "currency": "USD",
             "sku": f"RACE-{self.run_id}", "stock": units, "commission_bps": 1000}), 201)
        self.product = product["id"]
        stream = await self.one(self.req(
            "POST", "/api/v1/streams", creator,
            {"title": "Money races", "lineup": [self.product], "purchase_mode": "cart_hold"}), 201)
        self.stream = stream["id"]
        await self.one(self.req("POST", f"/api/v1/streams/{self.stream}/live", creator), 200)
        tokens = {b: self.mint(Role.BUYER, b) for b in buyers}
        card = {**_CARD, "exp_year": datetime.date.today().year + 3}
        cards = await self.many([self.req("POST", "/sandbox/tokens", None, card)
                                 for _ in buyers], 201, "sandbox cards")
        await self.many([self.req("PUT", "/api/v1/me/wallet", tokens[b],
                                  {"shipping": _ADDRESS, "payment_token": c["token"]})
                         for b, c in zip(buyers, cards, strict=True)], 200, "wallets")
        return tokens

    async def hold(self, attempt: _Attempt, key: str) -> bool:
        """Hold one unit in the buyer's cart; False (and why, in `refused`) when not held."""
        reply = await self.send(self.req(
            "POST", "/api/v1/cart/items", attempt.token,
            {"product_id": self.product, "stream_id": self.stream, "quantity": 1},
            {"Idempotency-Key": key}), attempts=_HOLD_ATTEMPTS)
        if reply is None or reply.status != 201:
            attempt.refused = _label(reply)
            return False
        item = orjson.loads(reply.body)
        attempt.item_id, attempt.order_id = item["id"], item["order_id"] or ""
        if not attempt.order_id:
            attempt.refused = "added without a hold"
            return False
        return True

    async def deadline_s(self, attempt: _Attempt) -> float | None:
        """The hold's deadline (epoch seconds), from its order read as the buyer."""
        reply = await self.send(self.req("GET", f"/api/v1/orders/{attempt.order_id}",
                                         attempt.token), attempts=3)
        if reply is None or reply.status != 200:
            attempt.refused = f"order read: {_label(reply)}"
            return None
        order = orjson.loads(reply.body)
        attempt.hold_ms = int(order["expires_ms"]) - int(order["created_ms"])
        if attempt.hold_ms > _MAX_HOLD_S * 1000:
            raise RuntimeError(f"the node's cart holds last {attempt.hold_ms // 1000} s: each "
                               "pay would wait that long; start it with LIVECART_CART_HOLD_S=4")
        return int(order["expires_ms"]) / 1000

    def checkout(self, attempt: _Attempt) -> bytes:
        return self.req("POST", "/api/v1/cart/checkout", attempt.token)


async def _pay_at_expiry(node: _Node, attempt: _Attempt, key: str, offset_s: float) -> None:
    if not await node.hold(attempt, key):
        return
    deadline = await node.deadline_s(attempt)
    if deadline is None:
        return
    await asyncio.sleep(max(0.0, deadline + offset_s - time.time()))
    attempt.offset_ms = round((time.time() - deadline) * 1000, 1)
    attempt.told = _checkout_word(await node.send(node.checkout(attempt)))


async def _remove_while_paying(node: _Node, attempt: _Attempt, key: str,
                               spread_s: float) -> None:
    """Removal and checkout at once; `spread_s` > 0 delays the removal, < 0 the checkout."""
    if not await node.hold(attempt, key):
        return
    remove = node.req("DELETE", f"/api/v1/cart/items/{attempt.item_id}", attempt.token)
    removed, paid = await asyncio.gather(
        node.send(remove, delay_s=max(0.0, spread_s)),
        node.send(node.checkout(attempt), delay_s=max(0.0, -spread_s)))
    attempt.removal, attempt.told = _label(removed), _checkout_word(paid)


async def _phase(name: str, tasks: list[Coroutine[Any, Any, None]]) -> float:
    started = time.monotonic()
    try:
        async with asyncio.TaskGroup() as group:
            for task in tasks:
                group.create_task(task)
    except* RuntimeError as failed:  # a node the run cannot race against: say why, once
        raise failed.exceptions[0] from None
    elapsed = time.monotonic() - started
    log.info("%s: %d buyers in %.1f s", name, len(tasks), elapsed)
    return elapsed


async def _quiet_reconciliation(node: _Node, timeout_s: float) -> tuple[dict[str, Any],
                                                                        float | None]:
    """The reconciliation once nothing is pending, and how long that took (None: it did not
    happen within `timeout_s`; the last reconciliation is returned)."""
    started = time.monotonic()
    while True:
        report: dict[str, Any] = await node.one(
            node.req("GET", "/api/v1/ops/reconcile", node.operator), 200)
        if not report["pending"]:
            return report, time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            return report, None
        await asyncio.sleep(_QUIET_POLL_S)


async def _final_states(node: _Node, attempts: list[_Attempt]) -> dict[str, str]:
    """Each held order's state, read back as its buyer."""
    held = [a for a in attempts if a.order_id]
    replies = await run_requests(node.host, node.port, [
        node.req("GET", f"/api/v1/orders/{a.order_id}", a.token) for a in held],
        concurrency=_SETUP_CONCURRENCY) if held else []
    states = {}
    for attempt, reply in zip(held, replies, strict=True):
        if reply.status >= 500:
            node.server_errors += 1
        states[attempt.order_id] = (str(orjson.loads(reply.body)["state"]) if reply.status == 200
                                    else f"read {_label(reply)}")
    return states


async def run_money_races(config: MoneyRacesConfig) -> dict[str, Any]:
    """Run the whole scenario, bounded by `duration_limit_s`; returns the report."""
    config.validate()
    try:
        async with asyncio.timeout(config.duration_limit_s):
            return await _run(config)
    except TimeoutError:
        raise RuntimeError(f"money races: not done within {config.duration_limit_s} s "
                           "(--duration-limit)") from None


async def _run(config: MoneyRacesConfig) -> dict[str, Any]:
    started, load_before = time.monotonic(), os.getloadavg()[0]
    run_id = f"{int(time.time()):x}{os.getpid():x}"
    server: ServerProcess | None = None
    if config.url is None:
        server = ServerProcess.livecart(log_level=config.server_log_level, settings={
            "LIVECART_CART_HOLD_S": str(config.hold_s),
            "LIVECART_CAPTURE_MODE": config.capture_mode,
            "LIVECART_SWEEP_INTERVAL_S": str(config.sweep_interval_s)})
    async with contextlib.AsyncExitStack() as stack:
        if server is not None:
            await stack.enter_async_context(server)
            url, secret = server.url, server.secret
        else:
            assert config.url is not None and config.secret is not None  # validate() said so
            url, secret = config.url, config.secret
        host, port = loopback_host_port(url)
        node = _Node(host, port, TokenAuthority(secret), run_id)
        seconds: dict[str, float] = {}
        pay = [f"mr{run_id}-p{i:05d}" for i in range(config.pay_buyers)]
        rem = [f"mr{run_id}-r{i:05d}" for i in range(config.remove_buyers)]
        try:
            tokens = await node.setup(len(pay) + len(rem), pay + rem)
        except RuntimeError as exc:
            tail = server.log_tail(40) if server is not None else "(external node)"
            raise RuntimeError(f"{exc}\nserver log tail:\n{tail}") from None
        seconds["setup"] = time.monotonic() - started
        log.info("setup done in %.1f s (product %s, stream %s)", seconds["setup"],
                 node.product, node.stream)
        rng = random.Random(config.seed)
        pays = [_Attempt("pay", b, tokens[b]) for b in pay]
        offsets = [rng.uniform(-config.pay_early_s, config.pay_late_s) for _ in pays]
        seconds["pay"] = await _phase("pay at expiry", [
            _pay_at_expiry(node, a, f"mr-{run_id}-p{i:05d}", offsets[i])
            for i, a in enumerate(pays)])
        removes = [_Attempt("remove", b, tokens[b]) for b in rem]
        spreads = [rng.uniform(-_REMOVE_SPREAD_S, _REMOVE_SPREAD_S) for _ in removes]
        seconds["remove"] = await _phase("remove while checking out", [
            _remove_while_paying(node, a, f"mr-{run_id}-r{i:05d}", spreads[i])
            for i, a in enumerate(removes)])
        reconciliation, quiet_s = await _quiet_reconciliation(node, config.quiet_timeout_s)
        states = await _final_states(node, pays + removes)
    seconds["wall"] = time.monotonic() - started
    return _report(config, node, pays, removes, reconciliation, quiet_s, states,
                   seconds, load_before)


def _counts(values: list[str]) -> dict[str, int]:
    return dict(collections.Counter(values).most_common())


def _report(config: MoneyRacesConfig, node: _Node, pays: list[_Attempt],
            removes: list[_Attempt], reconciliation: dict[str, Any], quiet_s: float | None,
            states: dict[str, str], seconds: dict[str, float],
            load_before: float) -> dict[str, Any]:
    gateway = {m["subject"]: m["detail"] for m in reconciliation["mismatches"]
               if m["kind"] == "gateway"}
    lies = []
    for a in pays + removes:
        if not a.order_id or a.order_id not in states:
            continue
        why = lie_of(a.told, a.removal, states[a.order_id], gateway.get(a.order_id, ""))
        if why:
            lies.append({"phase": a.phase, "buyer": a.buyer, "order": a.order_id,
                         "told": a.told, "removal": a.removal, "why": why})
    timed = [a for a in pays if a.offset_ms is not None]
    holds = [a.hold_ms for a in pays + removes if a.hold_ms]
    return {
        "scenario": "money-races",
        "node": "external" if config.url else "child",
        "hold_s": config.hold_s if config.url is None else None,
        "hold_ms_observed": statistics.median(holds) if holds else None,
        "capture_mode": config.capture_mode if config.url is None else None,
        "sweep_interval_s": config.sweep_interval_s if config.url is None else None,
        "seed": config.seed,
        "pay_window_s": [-config.pay_early_s, config.pay_late_s],
        "pay": {
            "buyers": len(pays),
            "outcomes": _counts([a.outcome() for a in pays]),
            "sent_before_deadline": _counts([a.told for a in timed if (a.offset_ms or 0) < 0]),
            "sent_after_deadline": _counts([a.told for a in timed if (a.offset_ms or 0) >= 0]),
            # Where the race turned: sent this close to the deadline, a pay still settled
            # (the latest) or already expired (the earliest), in ms after the deadline.
            "latest_settled_ms": max((a.offset_ms for a in timed if a.told == "settled"
                                      and a.offset_ms is not None), default=None),
            "earliest_expired_ms": min((a.offset_ms for a in timed if a.told == "expired"
                                        and a.offset_ms is not None), default=None),
            "final_states": _counts([states.get(a.order_id, "-") for a in pays if a.order_id]),
        },
        "remove": {
            "buyers": len(removes),
            "removals": _counts([a.removal or a.outcome() for a in removes]),
            "checkouts": _counts([a.outcome() for a in removes]),
            "pairs": _counts([f"{a.removal} / {a.told}" for a in removes if not a.refused]),
            "final_states": _counts([states.get(a.order_id, "-") for a in removes
                                     if a.order_id]),
        },
        "server_errors": node.server_errors,
        "no_answer": sum(1 for a in pays + removes if NO_ANSWER in (a.told, a.removal)),
        "lies": len(lies),
        "lie_examples": lies[:20],
        "reconcile": {**{k: reconciliation[k] for k in ("ok", "orders", "products",
                                                         "mismatches", "pending")},
                      "quiet_after_s": None if quiet_s is None else round(quiet_s, 2)},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "machine": machine_info(load_before), "date": now_iso(),
    }
