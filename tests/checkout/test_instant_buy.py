"""The instant buy (immediate capture through a gateway that charges in one call): the
order goes paying -> paid in one move, the buy reaches the gateway once and Valkey four
times, and whatever breaks between the charge and that move still ends in step.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from checkout.buy import BuyRequest, BuyResult
from checkout.order_states import OrderState
from checkout.payments import SandboxGateway
from checkout.store.keys import brand_agg_keys
from conftest import Live
from shop import (buy, give_wallet, idem, make_brand, make_live_stream,
                  make_product, stock_of)
from test_money_races import reconciled

_COUNTING: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "counting", default=None)


@contextmanager
def valkey_calls(live: Live) -> Iterator[list[str]]:
    """Every Valkey command sent from this task (and what it awaits) meanwhile: through the
    batcher (one command each) and straight through the client (the sandbox's scripts).
    Background tasks (sweeper, aggregator, hub) run in their own contexts: not counted."""
    services: Any = live.services
    batcher, client = services.batcher, services.client
    submit, execute_command = batcher.submit, client.execute_command

    def counted_submit(*args: Any) -> Any:  # every batched command is submitted
        if (seen := _COUNTING.get()) is not None:
            seen.append(f"batched {args[0]}")
        return submit(*args)

    async def counted_command(*args: Any, **options: Any) -> Any:
        if (seen := _COUNTING.get()) is not None:
            seen.append(f"direct {args[0]}")
        return await execute_command(*args, **options)

    calls: list[str] = []
    token = _COUNTING.set(calls)
    batcher.submit, client.execute_command = counted_submit, counted_command
    try:
        yield calls
    finally:
        _COUNTING.reset(token)
        del batcher.submit, client.execute_command


async def shop_with_buyer(live: Live, token: str = "tok_visa") -> tuple[str, str]:
    await make_brand(live)
    product = await make_product(live, stock=5)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob", token)
    return product["id"], stream["id"]


def one_tap(product: str, stream: str, token: str = "tok_visa") -> BuyRequest:
    return BuyRequest(buyer="bob", product=product, variant="default", quantity=1,
                      idempotency_key=idem(), channel="stream", stream=stream,
                      payment_token=token, snapshot={"card": '{"last4": "4242"}'})


async def test_an_instant_buy_is_paid_in_one_gateway_call_and_four_valkey_calls(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    product, stream = await shop_with_buyer(live)
    gateway: SandboxGateway = live.services.gateway  # type: ignore[assignment]
    asked: list[str] = []
    for name in ("authorize", "charge", "capture"):
        real = getattr(SandboxGateway, name)

        async def call(self: SandboxGateway, *args: Any, _real: Any = real,
                       _name: str = name) -> Any:
            asked.append(_name)
            return await _real(self, *args)
        monkeypatch.setattr(SandboxGateway, name, call)  # slots: patched on the class
    with valkey_calls(live) as calls:
        result = await live.services.buys.buy(one_tap(product, stream))
    assert (result.payment, result.order.state) == ("settled", OrderState.PAID)
    assert asked == ["charge"]
    # bind the key, reserve (claimed), the charge (the sandbox's one script), to paid.
    assert calls == ["batched EVALSHA", "batched EVALSHA", "direct EVALSHA",
                     "batched EVALSHA"], calls
    order = result.order.fields
    record = await gateway.charges(order["id"])
    assert record["state"] == "captured" and record["captured_minor"] == "5000"
    assert (order["gateway_ref"], order["capture_ref"]) == (record["auth_ref"],
                                                            record["capture_ref"])
    assert order["card"] == '{"last4": "4242"}', "the snapshot is written with the sale"
    stock = await stock_of(live, product)
    assert (stock["default"]["sold"], stock["default"]["held"]) == (1, 0)
    captures = await live.services.client.zcard(f"lc:{{p:{product}}}:captures")
    assert captures == 0, "no capture is owed: it was made with the authorization"
    # The sale and its commission are folded once each, as for authorized -> paid.
    report = await reconciled(live)
    assert report["ok"], report["mismatches"]
    totals = await live.services.client.hgetall(brand_agg_keys("acme").totals)
    assert (totals[b"units"], totals[b"captured_minor"]) == (b"1", b"5000")


async def test_the_http_buy_answers_paid_and_a_replay_charges_nothing_more(live: Live) -> None:
    product, stream = await shop_with_buyer(live)
    key = idem()
    r = await buy(live, "bob", product, stream=stream, key=key)
    assert r.status_code == 201, r.text
    assert (r.json()["payment"], r.json()["order"]["state"]) == ("settled", "paid")
    again = await buy(live, "bob", product, stream=stream, key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["order"]["id"] == r.json()["order"]["id"]
    gateway: SandboxGateway = live.services.gateway  # type: ignore[assignment]
    assert await gateway.authorizations_count() == 1


async def _claimed_order(live: Live, product: str, stream: str) -> BuyResult:
    """A one-tap reservation, claimed (paying), as the buy makes it before the gateway."""
    return await live.services.buys.reserve(one_tap(product, stream), claimed=True)


async def test_a_node_dying_between_the_charge_and_the_move_refunds_the_buyer(
        live: Live) -> None:
    """What a crash leaves: the card charged, the order still paying. The hold runs out,
    expiry wins and owes a void; the gateway holds captured money, so the sweeper refunds
    it in full. Order and card end in step (the reconciliation says so)."""
    product, stream = await shop_with_buyer(live)
    reserved = await _claimed_order(live, product, stream)
    order_id = reserved.order.id
    gateway: SandboxGateway = live.services.gateway  # type: ignore[assignment]
    assert (await gateway.charge(order_id, 5000, "USD", "tok_visa")).captured
    later = int(time.time() * 1000) + 10**9  # past the hold's deadline
    await live.services.sweeper.sweep_once(later)
    order = await live.services.orders.get(order_id)
    assert order is not None and order.state is OrderState.EXPIRED
    status = await gateway.status(order_id)
    assert (status.captured_minor, status.refunded_minor) == (5000, 5000)
    assert await live.services.client.zcard(f"lc:{{p:{product}}}:voids") == 0
    stock = await stock_of(live, product)
    assert (stock["default"]["available"], stock["default"]["sold"]) == (5, 0)
    report = await reconciled(live)
    assert report["ok"], report["mismatches"]


async def test_a_charge_that_loses_the_race_to_expiry_is_refunded_at_once(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """The charge lands, but the window ran out meanwhile and expiry moved the order first:
    the buyer is told it expired and the payer gives the money back at once (no sweep)."""
    product, stream = await shop_with_buyer(live)
    reserved = await _claimed_order(live, product, stream)
    order_id = reserved.order.id
    gateway: SandboxGateway = live.services.gateway  # type: ignore[assignment]
    charge = SandboxGateway.charge

    async def slow_charge(self: SandboxGateway, *args: Any) -> Any:
        auth = await charge(self, *args)
        later = int(time.time() * 1000) + 10**9
        await live.services.orders.transition(order_id, OrderState.EXPIRED, "hold_expired",
                                              now_ms=later)
        return auth
    monkeypatch.setattr(SandboxGateway, "charge", slow_charge)
    result = await live.services.buys.settle(reserved.order, claimed=True,
                                             payment_token="tok_visa")
    assert (result.payment, result.order.state) == ("expired", OrderState.EXPIRED)
    status = await gateway.status(order_id)
    assert (status.captured_minor, status.refunded_minor) == (5000, 5000)
    assert await live.services.client.zcard(f"lc:{{p:{product}}}:voids") == 0, (
        "the void owed is paid (by a refund) before the answer")
    report = await reconciled(live)
    assert report["ok"], report["mismatches"]


async def test_a_retry_after_a_charge_timeout_settles_the_same_order(live: Live) -> None:
    """The gateway charged but the answer was lost (202 pending): the same key asks again,
    the charge answers what it did, and the order is paid once."""
    product, stream = await shop_with_buyer(live, token="tok_timeout_after_charge")
    key = idem()
    first = await buy(live, "bob", product, stream=stream, key=key)
    # The sandbox's timeout card times out once; the buy's own retry reads the charge back.
    assert first.status_code == 201, first.text
    assert first.json()["order"]["state"] == "paid"
    again = await buy(live, "bob", product, stream=stream, key=key)
    assert again.json()["order"]["state"] == "paid"
    gateway: SandboxGateway = live.services.gateway  # type: ignore[assignment]
    assert await gateway.authorizations_count() == 1
    report = await reconciled(live)
    assert report["ok"], report["mismatches"]
