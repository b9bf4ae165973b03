"""The order lifecycle: the transition table (pure), the script against every pair of
states, and a hypothesis state machine that drives the real services against a model.

The model is plain Python: stock buckets per variant and each order's state. After every
step the real Valkey must agree with it: total == avail + held + sold, avail >= 0, every
order in the model's state, the expiry index holding exactly the reserved orders, and
the per-buyer count holding exactly the units not given back.

The services live on the session event loop (where the session Valkey's fixtures live);
the machine runs in a worker thread and hands each step to that loop.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis.asyncio as redis
from conftest import UNIT, make_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from checkout.buy import BuyRequest, Rejected
from checkout.catalog import BrandIn, CatalogError, ProductIn, StockChange, VariantIn
from checkout.store.keys import product_keys
from checkout.order_states import (
    TERMINAL,
    PENDING,
    TRANSITIONS,
    VOID_OWED,
    IllegalTransition,
    OutOfTime,
    OrderState,
    StockEffect,
    next_state,
    rules_for,
)
from live.node.services import Services
from live.node.valkey_server import EmbeddedValkey

S, E = OrderState, StockEffect
T = TypeVar("T")

# -- the table, on its own ------------------------------------------------------------

# The lifecycle as the design states it, written out independently of the code.
# Only a payer's claim (reserved -> paying) leads to the gateway; every way out of paying
# but a sale (authorized, or paid when the gateway captured at once), and the brand's
# void, owe the gateway a void.
EXPECTED_MOVES = {
    (S.RESERVED, S.PAYING): E.NONE, (S.RESERVED, S.EXPIRED): E.RELEASE,
    (S.RESERVED, S.CANCELLED): E.RELEASE, (S.PAYING, S.AUTHORIZED): E.SELL,
    (S.PAYING, S.PAID): E.SELL,
    (S.PAYING, S.DECLINED): E.RELEASE, (S.PAYING, S.EXPIRED): E.RELEASE,
    (S.AUTHORIZED, S.PAID): E.NONE, (S.AUTHORIZED, S.VOIDED): E.RESTORE,
    (S.PAID, S.REFUNDED): E.NONE, (S.PAID, S.SHIPPED): E.NONE,
    (S.SHIPPED, S.DELIVERED): E.NONE, (S.SHIPPED, S.REFUNDED): E.NONE,
    (S.DELIVERED, S.REFUNDED): E.NONE,
}
EXPECTED_VOIDS = {(S.PAYING, S.EXPIRED), (S.PAYING, S.DECLINED), (S.AUTHORIZED, S.VOIDED)}
# What each effect does to (avail, held, sold) for one unit.
UNIT_EFFECT = {E.SELL: (0, -1, 1), E.RELEASE: (1, -1, 0), E.RESTORE: (1, 0, -1),
               E.NONE: (0, 0, 0)}


def test_the_table_is_the_designed_lifecycle() -> None:
    assert TRANSITIONS == EXPECTED_MOVES
    assert VOID_OWED == EXPECTED_VOIDS
    assert PENDING == {S.RESERVED, S.PAYING}
    assert TERMINAL == {S.DECLINED, S.EXPIRED, S.CANCELLED, S.VOIDED, S.REFUNDED}


@given(st.sampled_from(OrderState), st.sampled_from(OrderState))
def test_next_state_answers_the_table_or_raises(current: OrderState, target: OrderState) -> None:
    if (current, target) in TRANSITIONS:
        assert next_state(current, target) is TRANSITIONS[(current, target)]
    else:
        with pytest.raises(IllegalTransition) as info:
            next_state(current, target)
        assert (info.value.current, info.value.target) == (current, target)


def test_terminal_states_have_no_way_out_and_every_state_is_reachable() -> None:
    for src, _ in TRANSITIONS:
        assert src not in TERMINAL
    reachable = {S.RESERVED}
    frontier = [S.RESERVED]
    while frontier:
        state = frontier.pop()
        for (src, dst) in TRANSITIONS:
            if src == state and dst not in reachable:
                reachable.add(dst)
                frontier.append(dst)
    assert reachable == set(OrderState)


def test_every_path_keeps_each_unit_in_exactly_one_bucket() -> None:
    """Walk every path from `reserved`: a unit is held, then sold or available, never
    negative anywhere and never counted twice."""
    def walk(state: OrderState, buckets: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        ends = [buckets]
        for (src, dst), effect in TRANSITIONS.items():
            if src == state:
                moved = tuple(b + d for b, d in zip(buckets, UNIT_EFFECT[effect], strict=True))
                assert min(moved) >= 0 and sum(moved) == 1, (state, dst, moved)
                ends += walk(dst, moved)  # type: ignore[arg-type]
        return ends

    ends = walk(S.RESERVED, (0, 1, 0))
    assert set(ends) == {(0, 1, 0), (0, 0, 1), (1, 0, 0)}


def test_rules_for_is_what_the_script_parses() -> None:
    # transition.lua reads ARGV[3] with string.gmatch('([%w_]+)=([%w_]+)=([%w_]+)').
    parsed: set[tuple[OrderState, OrderState, StockEffect]] = set()
    voids: set[tuple[OrderState, OrderState]] = set()
    for target in OrderState:
        if target is S.RESERVED:
            with pytest.raises(ValueError):
                rules_for(target)
            continue
        text = rules_for(target)
        assert re.fullmatch(r"[a-z_]+=[a-z_]+=(void|none)(;[a-z_]+=[a-z_]+=(void|none))*", text)
        for src, eff, debt in re.findall(r"([A-Za-z0-9_]+)=([A-Za-z0-9_]+)=([A-Za-z0-9_]+)", text):
            parsed.add((S(src), target, E(eff)))
            if debt == "void":
                voids.add((S(src), target))
    assert parsed == {(src, dst, eff) for (src, dst), eff in TRANSITIONS.items()}
    assert voids == VOID_OWED


# -- the real services on the session loop --------------------------------------------

BRAND = "modelbrand"
PRICE = 700
VARIANTS = ("red", "blue")
BUYERS = ("ann", "bob", "cy")
# States whose units are still the buyer's (not given back): they count against a limit.
COUNTED = {S.RESERVED, S.PAYING, S.AUTHORIZED, S.PAID, S.SHIPPED, S.DELIVERED, S.REFUNDED}
FAR_FUTURE_MS = 2**50  # a clock past every deadline, for moves that wait on one
_keys = itertools.count()


async def new_product(services: Services, stock: dict[str, int]) -> str:
    await services.catalog.create_brand(BrandIn(id=BRAND, name="Model", currency="USD"))
    product = await services.catalog.create_product(BRAND, ProductIn(
        title="Model", price_minor=PRICE, currency="USD", sku="MODEL-1",
        variants=[VariantIn(id=v, name=v.title(), stock=stock[v]) for v in VARIANTS]))
    return str(product["id"])


async def reserve(services: Services, product: str, variant: str, qty: int, buyer: str,
                  key: str | None = None) -> Any:
    return await services.buys.reserve(BuyRequest(
        buyer=buyer, product=product, variant=variant, quantity=qty,
        idempotency_key=key or f"model-{next(_keys)}", channel="showcase"))


@dataclass
class Snapshot:
    stock: dict[str, int]
    orders: dict[str, dict[str, str]]
    expiring: set[str]
    voids_owed: set[str]
    bought: dict[str, int]
    outbox: int


async def snapshot(client: redis.Redis, product: str, order_ids: list[str]) -> Snapshot:
    k = product_keys(product)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(k.stock)
        pipe.zrange(k.expiry, 0, -1)
        pipe.zrange(k.voids, 0, -1)
        pipe.hgetall(k.bought)
        pipe.xlen(k.outbox)
        for order_id in order_ids:
            pipe.hgetall(k.order(order_id))
        stock, expiring, voids, bought, outbox, *orders = await pipe.execute()
    return Snapshot(
        stock={f.decode(): int(v) for f, v in stock.items()},
        orders={oid: {f.decode(): v.decode() for f, v in raw.items()}
                for oid, raw in zip(order_ids, orders, strict=True)},
        expiring={e.decode() for e in expiring},
        voids_owed={v.decode() for v in voids},
        bought={f.decode(): int(v) for f, v in bought.items()},
        outbox=outbox)


async def direct(services: Services, order_id: str, target: OrderState,
                 reason: str = "") -> tuple[Any, bool]:
    """A move as its caller makes it: expiry on a clock past the deadline, a claim with a
    payment window."""
    return await services.orders.transition(
        order_id, target, reason, now_ms=FAR_FUTURE_MS if target is S.EXPIRED else None,
        payment_window_ms=60_000)


async def drive_to(services: Services, order_id: str, path: list[OrderState]) -> None:
    for state in path:
        _, changed = await direct(services, order_id, state, "drive")
        assert changed


def path_to(state: OrderState) -> list[OrderState]:
    return {S.RESERVED: [], S.PAYING: [S.PAYING], S.AUTHORIZED: [S.PAYING, S.AUTHORIZED],
            S.PAID: [S.PAYING, S.AUTHORIZED, S.PAID], S.DECLINED: [S.PAYING, S.DECLINED],
            S.EXPIRED: [S.EXPIRED], S.CANCELLED: [S.CANCELLED],
            S.VOIDED: [S.PAYING, S.AUTHORIZED, S.VOIDED],
            S.REFUNDED: [S.PAYING, S.AUTHORIZED, S.PAID, S.REFUNDED],
            S.SHIPPED: [S.PAYING, S.AUTHORIZED, S.PAID, S.SHIPPED],
            S.DELIVERED: [S.PAYING, S.AUTHORIZED, S.PAID, S.SHIPPED, S.DELIVERED]}[state]


@pytest.fixture
async def services(valkey: EmbeddedValkey, rclient: redis.Redis,
                   tmp_path: Path) -> Any:
    services = await Services.start(make_settings(valkey, tmp_path), background=False)
    try:
        yield services
    finally:
        await services.close()


async def test_the_script_follows_the_table_for_every_pair(services: Services) -> None:
    """Exhaustive: each state (reached by legal moves) against each target."""
    product = await new_product(services, {"red": 300, "blue": 0})
    for source in OrderState:
        for target in OrderState:
            if target is S.RESERVED:
                continue
            order = (await reserve(services, product, "red", 2, "pair")).order
            await drive_to(services, order.id, path_to(source))
            before = await snapshot(services.client, product, [order.id])
            effect = TRANSITIONS.get((source, target))
            if source == target:
                moved, changed = await direct(services, order.id, target)
                assert not changed and moved.state is source
                assert await snapshot(services.client, product, [order.id]) == before
            elif effect is None:
                with pytest.raises(IllegalTransition) as info:
                    await direct(services, order.id, target)
                assert type(info.value) is IllegalTransition
                assert (info.value.current, info.value.target) == (source, target)
                assert await snapshot(services.client, product, [order.id]) == before
            else:
                moved, changed = await direct(services, order.id, target)
                assert changed and moved.state is target
                after = await snapshot(services.client, product, [order.id])
                da, dh, ds = (2 * d for d in UNIT_EFFECT[effect])
                assert (after.stock["avail:red"] - before.stock["avail:red"],
                        after.stock["held:red"] - before.stock["held:red"],
                        after.stock["sold:red"] - before.stock["sold:red"]) == (da, dh, ds), (
                    source, target)
                assert after.outbox == before.outbox + 1
                owes = (source, target) in VOID_OWED
                assert (order.id in after.voids_owed) == owes, (source, target)
    with pytest.raises(KeyError):
        await services.orders.transition(f"{product}.0123abcd", S.PAID)


async def test_moving_back_to_reserved_is_an_illegal_transition(services: Services) -> None:
    product = await new_product(services, {"red": 5, "blue": 0})
    order = (await reserve(services, product, "red", 1, "back")).order
    await drive_to(services, order.id, path_to(S.PAID))
    with pytest.raises(IllegalTransition):
        await services.orders.transition(order.id, S.RESERVED)


async def test_deadlines_decide_between_a_claim_and_expiry(services: Services) -> None:
    """The claim must come before the hold's deadline, expiry only after it; the claim's
    own window becomes the new deadline."""
    product = await new_product(services, {"red": 5, "blue": 0})
    order = (await reserve(services, product, "red", 1, "dl")).order
    with pytest.raises(OutOfTime) as early:  # the hold is still running
        await services.orders.transition(order.id, S.EXPIRED)
    assert not early.value.late
    claimed = await services.orders.claim(order.id, 60_000)
    assert claimed.state is S.PAYING
    assert claimed.fields["expires_ms"] >= order.fields["created_ms"] + 60_000
    with pytest.raises(OutOfTime) as late:  # a retried claim after its window
        await services.orders.transition(order.id, S.PAYING, now_ms=FAR_FUTURE_MS)
    assert late.value.late
    late_order = (await reserve(services, product, "red", 1, "dl2")).order
    with pytest.raises(OutOfTime):  # a first claim after the hold ran out
        await services.orders.transition(late_order.id, S.PAYING, now_ms=FAR_FUTURE_MS,
                                         payment_window_ms=60_000)
    snap = await snapshot(services.client, product, [order.id, late_order.id])
    assert snap.expiring == {order.id, late_order.id} and not snap.voids_owed
    expired, _ = await direct(services, order.id, S.EXPIRED)
    assert expired.state is S.EXPIRED
    snap = await snapshot(services.client, product, [order.id])
    assert snap.voids_owed == {order.id}  # it expired mid-payment: the gateway owes a void


# -- the state machine ------------------------------------------------------------------

class Bridge:
    """Runs a coroutine on the services' loop from the machine's thread and waits for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30 * UNIT)


@dataclass
class ModelOrder:
    variant: str
    qty: int
    buyer: str
    state: OrderState
    captured: bool = False  # paid through the gateway (direct moves never touch it)


class OrderModel(RuleBasedStateMachine):
    def __init__(self, services: Services, run: Bridge) -> None:
        super().__init__()
        self.services = services
        self.run = run
        self.product = ""
        self.stock: dict[str, dict[str, int]] = {}
        self.orders: dict[str, ModelOrder] = {}
        self.voids_owed: set[str] = set()

    # helpers
    def _ids(self, *states: OrderState) -> list[str]:
        # In creation order: order ids are random, so sorting by id would make the same
        # choice pick a different order when hypothesis replays an example.
        return [oid for oid, o in self.orders.items() if not states or o.state in states]

    def _apply(self, order: ModelOrder, effect: StockEffect) -> None:
        da, dh, ds = UNIT_EFFECT[effect]
        levels = self.stock[order.variant]
        levels["avail"] += da * order.qty
        levels["held"] += dh * order.qty
        levels["sold"] += ds * order.qty

    def _move_in_model(self, order_id: str, target: OrderState) -> None:
        order = self.orders[order_id]
        self._apply(order, TRANSITIONS[(order.state, target)])
        if (order.state, target) in VOID_OWED:
            self.voids_owed.add(order_id)
        order.state = target

    def _snapshot(self) -> Snapshot:
        return self.run(snapshot(self.services.client, self.product, list(self.orders)))

    # setup: a fresh database per example
    @initialize(red=st.integers(0, 6), blue=st.integers(0, 6))
    def setup(self, red: int, blue: int) -> None:
        self.run(self.services.client.flushall())
        self.voids_owed = set()
        self.product = self.run(new_product(self.services, {"red": red, "blue": blue}))
        self.stock = {v: {"avail": n, "held": 0, "sold": 0, "total": n}
                      for v, n in (("red", red), ("blue", blue))}

    # rules
    @rule(variant=st.sampled_from(VARIANTS), qty=st.integers(1, 3),
          buyer=st.sampled_from(BUYERS), retry=st.booleans())
    def reserve(self, variant: str, qty: int, buyer: str, retry: bool) -> None:
        key = f"model-{next(_keys)}"
        avail = self.stock[variant]["avail"]
        attempts = 2 if retry else 1
        if avail >= qty:
            first = self.run(reserve(self.services, self.product, variant, qty, buyer, key))
            assert first.order.state is S.RESERVED and not first.replayed
            assert first.order.fields["amount_minor"] == PRICE * qty
            for _ in range(attempts - 1):  # the same key replays the same order
                again = self.run(reserve(self.services, self.product, variant, qty, buyer, key))
                assert again.replayed and again.order.id == first.order.id
            self.orders[first.order.id] = ModelOrder(variant, qty, buyer, S.RESERVED)
            self.stock[variant]["avail"] -= qty
            self.stock[variant]["held"] += qty
        else:
            expected = "sold_out" if avail == 0 else "insufficient_stock"
            for _ in range(attempts):
                try:
                    self.run(reserve(self.services, self.product, variant, qty, buyer, key))
                except Rejected as exc:
                    assert exc.code == expected
                    if expected == "insufficient_stock":
                        assert exc.details["available"] == avail
                else:
                    raise AssertionError(f"reserved {qty} of {variant} with {avail} left")

    @precondition(lambda self: self._ids(S.RESERVED))
    @rule(data=st.data(), token=st.sampled_from(["tok_visa", "tok_decline",
                                                  "tok_insufficient_funds"]))
    def pay(self, data: st.DataObject, token: str) -> None:
        order_id = data.draw(st.sampled_from(self._ids(S.RESERVED)), label="order")
        order = self.run(self.services.orders.get(order_id))
        assert order is not None
        result = self.run(self.services.buys.settle(order, payment_token=token))
        target = S.PAID if token == "tok_visa" else S.DECLINED
        assert result.order.state is target
        assert result.payment == ("settled" if target is S.PAID else "declined")
        self._move_in_model(order_id, S.PAYING)
        if target is S.PAID:
            self._move_in_model(order_id, S.AUTHORIZED)
        self._move_in_model(order_id, target)
        self.orders[order_id].captured = target is S.PAID
        gateway = self.run(self.services.gateway.charges(order_id))
        assert gateway["state"] == ("captured" if target is S.PAID else "declined")

    @precondition(lambda self: self._ids(S.PAID))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self._ids(S.PAID)), label="order")
        if self.orders[order_id].captured:  # the refund endpoint's way (checkout/fulfilment.py)
            outcome = self.run(self.services.fulfilment.refund(order_id, "full", None))
            order = outcome.order
            assert order.fields["refunded_minor"] == PRICE * self.orders[order_id].qty
            gateway = self.run(self.services.gateway.charges(order_id))
            assert gateway["refunded_minor"] == gateway["captured_minor"]
        else:  # paid by a direct move, never captured: the move alone
            order, changed = self.run(self.services.orders.transition(order_id, S.REFUNDED,
                                                                      "refunded"))
            assert changed
        assert order.state is S.REFUNDED
        self._move_in_model(order_id, S.REFUNDED)

    @precondition(lambda self: self._ids(*PENDING) or self.voids_owed)
    @rule()
    def sweep(self) -> None:
        due = self._ids(*PENDING)
        sweeper = self.services.sweeper
        expired, voided = sweeper.expired, sweeper.voided
        self.run(sweeper.sweep_once(now_ms=FAR_FUTURE_MS))
        assert sweeper.expired - expired == len(due)
        for order_id in due:
            self._move_in_model(order_id, S.EXPIRED)
        assert sweeper.voided - voided == len(self.voids_owed)
        self.voids_owed = set()

    @rule(variant=st.sampled_from(VARIANTS), delta=st.integers(-3, 4), absolute=st.booleans())
    def restock(self, variant: str, delta: int, absolute: bool) -> None:
        levels = self.stock[variant]
        if absolute:
            target = max(0, levels["avail"] + delta)
            change = StockChange(set=target, reason="model")
            delta = target - levels["avail"]
        else:
            change = StockChange(adjust=delta, reason="model")
        if levels["avail"] + delta < 0:
            before = self._snapshot()
            try:
                self.run(self.services.catalog.change_stock(self.product, variant, change,
                                                            who="model"))
            except CatalogError as exc:
                assert exc.kind == "negative-stock"
            else:
                raise AssertionError("stock went below zero")
            assert self._snapshot() == before
            return
        reply = self.run(self.services.catalog.change_stock(self.product, variant, change,
                                                            who="model"))
        assert reply["delta"] == delta
        levels["avail"] += delta
        levels["total"] += delta

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def move(self, data: st.DataObject) -> None:
        """Any order to any state, directly: cancel, authorize, capture, void, expire, ...

        Half the draws are among the legal targets, so the legal paths get walked too."""
        order_id = data.draw(st.sampled_from(self._ids()), label="order")
        current = self.orders[order_id].state
        legal = [dst for (src, dst) in TRANSITIONS if src == current]
        anything = st.sampled_from([s for s in OrderState if s is not S.RESERVED])
        target = data.draw(st.sampled_from(legal) | anything if legal else anything,
                           label="target")
        if current == target:
            order, changed = self.run(direct(self.services, order_id, target))
            assert not changed and order.state is current
        elif (current, target) not in TRANSITIONS:
            before = self._snapshot()
            try:
                self.run(direct(self.services, order_id, target))
            except IllegalTransition as exc:
                assert (exc.current, exc.target) == (current, target)
            else:
                raise AssertionError(f"{current} -> {target} was allowed")
            assert self._snapshot() == before, "an illegal move changed something"
        else:
            order, changed = self.run(direct(self.services, order_id, target, "model"))
            assert changed and order.state is target
            self._move_in_model(order_id, target)

    # invariants
    @invariant()
    def valkey_agrees_with_the_model(self) -> None:
        if not self.product:
            return
        snap = self._snapshot()
        for variant in VARIANTS:
            real = {b: snap.stock[f"{b}:{variant}"] for b in ("avail", "held", "sold", "total")}
            assert real["total"] == real["avail"] + real["held"] + real["sold"], real
            assert min(real.values()) >= 0, real
            assert real == self.stock[variant], (variant, real, self.stock[variant])
        for order_id, order in self.orders.items():
            assert snap.orders[order_id]["state"] == order.state.value, order_id
        assert snap.expiring == set(self._ids(*PENDING))
        assert snap.voids_owed == self.voids_owed
        for buyer in BUYERS:
            counted = sum(o.qty for o in self.orders.values()
                          if o.buyer == buyer and o.state in COUNTED)
            assert snap.bought.get(f"b:{buyer}", 0) == counted, buyer


async def test_orders_follow_the_model(services: Services) -> None:
    run = Bridge(asyncio.get_running_loop())
    await asyncio.to_thread(
        run_state_machine_as_test, lambda: OrderModel(services, run),
        settings=hsettings(max_examples=50, stateful_step_count=30, deadline=None,
                           database=None, suppress_health_check=[HealthCheck.too_slow]))
