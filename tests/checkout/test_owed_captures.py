"""Authorized orders whose capture the buy could not make are captured by the sweeper.

Immediate-capture mode promises a settled sale: a capture outage, or a node dying between
authorizing and capturing, must not leave the order authorized forever.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from checkout.order_states import OrderState
from conftest import Live
from shop import (buy, eventually, give_wallet, make_brand, make_live_stream, make_product,
                  stock_of)


async def _state(live: Live, order_id: str) -> OrderState:
    order = await live.services.orders.get(order_id)
    assert order is not None
    return order.state


async def _until_paid(live: Live, order_id: str) -> None:
    async def paid() -> bool:
        return await _state(live, order_id) is OrderState.PAID
    await eventually(paid, f"{order_id} to be captured")


@pytest.mark.parametrize("node_settings", [{"capture_owed_after_s": 1}])
async def test_a_capture_outage_is_settled_by_the_sweeper(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=5)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob", token="tok_capture_outage")
    r = await buy(live, "bob", product["id"], stream=stream["id"])
    assert r.status_code == 202, r.text
    assert r.json()["payment"] == "capture_pending"
    order_id = r.json()["order"]["id"]
    assert await _state(live, order_id) is OrderState.AUTHORIZED
    await _until_paid(live, order_id)
    record = await live.services.client.hgetall(live.services.gateway.order_key(order_id))
    assert record[b"state"] == b"captured" and record[b"capture_failures"] == b"4"
    stock = await stock_of(live, product["id"])
    assert (stock["default"]["sold"], stock["default"]["held"]) == (1, 0)
    captures = await live.services.client.zcard(
        f"lc:{{p:{product['id']}}}:captures")
    assert captures == 0, "the debt is cleared with the capture"


async def test_a_node_dying_between_authorize_and_capture_leaves_a_debt(live: Live) -> None:
    """What a crash leaves: authorized at the gateway and in Valkey, capture not made."""
    await make_brand(live)
    product = await make_product(live, stock=5)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    services: Any = live.services
    # Reserve without paying (like a cart hold), then authorize as the buy would, and stop.
    from checkout.buy import BuyRequest
    reserved = await services.buys.reserve(BuyRequest(
        buyer="bob", product=product["id"], variant="default", quantity=1,
        idempotency_key="crash-1", channel="stream", stream=stream["id"],
        payment_token="tok_visa"))
    order_id = reserved.order.id
    await services.orders.claim(order_id, 30_000)
    await services.gateway.authorize(order_id, reserved.order.fields["amount_minor"], "USD",
                                     "tok_visa")
    owed_now = int(time.time() * 1000)
    await services.orders.transition(order_id, OrderState.AUTHORIZED, "",
                                     capture_owed_at_ms=owed_now)
    await _until_paid(live, order_id)
    record = await services.client.hgetall(services.gateway.order_key(order_id))
    assert record[b"state"] == b"captured"
    # The sweeper counts its captures when its pass ends, after the order is already paid.
    await eventually(lambda: services.sweeper.captured >= 1, "the sweeper's count of the capture")


@pytest.mark.parametrize("node_settings", [{"capture_mode": "on_shipment"}])
async def test_on_shipment_authorizations_are_not_captured_by_the_sweeper(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, stock=5)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    r = await buy(live, "bob", product["id"], stream=stream["id"])
    assert r.status_code == 201, r.text
    order_id = r.json()["order"]["id"]
    await live.services.sweeper.sweep_once(int(time.time() * 1000) + 10**9)
    assert await _state(live, order_id) is OrderState.AUTHORIZED
