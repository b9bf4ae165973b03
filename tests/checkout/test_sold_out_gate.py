"""The sold-out gate (checkout/sold_out_gate.py): after reserve.lua said sold out, a new
buy of that variant is refused by the node without reserve.lua, and never where reserve.lua
could have answered otherwise: a retry of a key that bought, units back through this node.
Its refusal is recorded with the key's binding and replayed, as reserve.lua's are.

Whether reserve.lua ran for a buy is read from Valkey: it records every answer, a refusal
too, under the key in the product's slot; the gate records its own in the buyer's slot."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Live
from shop import buy, give_wallet, idem, make_brand, make_live_stream, make_product

from checkout.buy import BuyRequest, binding_ttl_s
from checkout.ids import BuyerId, ProductId, VariantId
from checkout.sold_out_gate import SoldOutGate
from checkout.store.keys import idem_binding_key, product_keys

# Long enough that the gate never times out within a test: expiry is the unit tests' part.
GATE_MS = 600_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_closes_for_its_hold_from_the_call_then_opens() -> None:
    clock = Clock()
    gate = SoldOutGate(250, clock=clock)
    assert not gate.closed("p", "default")
    sent_at = gate.ticket()
    clock.now += 0.050  # the answer took 50 ms: the hold counts from the call
    gate.sold_out("p", "default", sent_at)
    assert gate.closed("p", "default")
    assert not gate.closed("p", "red") and not gate.closed("q", "default")
    clock.now += 0.199
    assert gate.closed("p", "default")
    clock.now += 0.002
    assert not gate.closed("p", "default")


def test_units_back_reopen_it_and_an_answer_sent_before_them_does_not_close_it() -> None:
    clock = Clock()
    gate = SoldOutGate(250, clock=clock)
    gate.sold_out("p", "default", gate.ticket())
    clock.now += 0.001
    gate.reopen("p", "default")
    assert not gate.closed("p", "default")
    # A reserve sent before the units came back answers sold out after: stale, ignored.
    sent_at = gate.ticket()
    clock.now += 0.001
    gate.reopen("p", "default")
    clock.now += 0.001
    gate.sold_out("p", "default", sent_at)
    assert not gate.closed("p", "default")
    # Another variant's return makes no answer of this one stale.
    sent_at = gate.ticket()
    clock.now += 0.001
    gate.reopen("p", "red")
    gate.sold_out("p", "default", sent_at)
    assert gate.closed("p", "default")


def test_off_at_zero_and_bounded() -> None:
    off = SoldOutGate(0, clock=Clock())
    off.sold_out("p", "default", off.ticket())
    assert not off.closed("p", "default")
    clock = Clock()
    gate = SoldOutGate(250, max_entries=3, clock=clock)
    for p in ("a", "b", "c"):
        gate.sold_out(p, "default", gate.ticket())
    clock.now += 1  # a, b, c expired: the fourth entry prunes them, not itself
    gate.sold_out("d", "default", gate.ticket())
    assert gate.closed("d", "default") and len(gate._until) == 1
    for p in ("e", "f"):
        gate.sold_out(p, "default", gate.ticket())
    gate.sold_out("g", "default", gate.ticket())  # none expired: all go, a cache may forget
    assert len(gate._until) == 1 and gate.closed("g", "default")
    for p in ("a", "b", "c", "d"):  # returns are bounded the same way
        gate.reopen(p, "default")
    assert len(gate._reopened) <= 3


async def reserve_ran(live: Live, product: str, buyer: str, key: str) -> bool:
    """reserve.lua recorded an answer under this buyer's key."""
    record = product_keys(ProductId(product)).idem(buyer, key)
    return bool(await live.services.client.exists(record))


async def sold_out_once(live: Live, first_key: str | None = None) -> tuple[str, Any]:
    """A product with one unit, bought by `first` (with `first_key`); `second` refused by
    reserve.lua, so the gate closes (if it is on). Returns the product and first's answer."""
    await make_brand(live)
    product = (await make_product(live, stock=1))["id"]
    for buyer in ("first", "second"):
        await give_wallet(live, buyer)
    bought = await buy(live, "first", product, key=first_key)
    assert bought.status_code == 201, bought.text
    key = idem()
    r = await buy(live, "second", product, key=key)
    assert r.status_code == 409 and r.json()["type"].endswith("/sold-out"), r.text
    assert await reserve_ran(live, product, "second", key)
    gate_on = live.services.settings.sold_out_gate_ms > 0
    assert live.services.buys.gate.closed(product, "default") is gate_on
    return product, bought


@pytest.mark.parametrize("node_settings", [{"sold_out_gate_ms": GATE_MS}])
async def test_a_new_buy_of_a_sold_out_variant_is_refused_without_reserve(live: Live) -> None:
    product, _ = await sold_out_once(live)
    await give_wallet(live, "third")
    key = idem()
    r = await buy(live, "third", product, key=key)
    assert r.status_code == 409, r.text
    gated = r.json()
    assert gated["type"].endswith("/sold-out") and gated["status"] == 409
    assert not await reserve_ran(live, product, "third", key)
    # The same key asked again replays the refusal recorded with its binding.
    again = await buy(live, "third", product, key=key)
    assert again.status_code == 409 and again.json() == gated
    assert not await reserve_ran(live, product, "third", key)
    # The same key for another request is still a reused key.
    other = await buy(live, "third", product, key=key, quantity=2)
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")


@pytest.mark.parametrize("node_settings", [{"sold_out_gate_ms": GATE_MS}])
async def test_the_key_that_bought_the_last_unit_still_replays_its_order(live: Live) -> None:
    key = idem()
    product, bought = await sold_out_once(live, key)
    replayed = await buy(live, "first", product, key=key)
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["order"]["id"] == bought.json()["order"]["id"]


@pytest.mark.parametrize("node_settings", [{"sold_out_gate_ms": GATE_MS}])
async def test_a_restock_here_reopens_it_and_a_gated_key_still_replays(live: Live) -> None:
    product, _ = await sold_out_once(live)
    await give_wallet(live, "patient")
    key = idem()
    assert (await buy(live, "patient", product, key=key)).status_code == 409
    assert not await reserve_ran(live, product, "patient", key)
    r = await live.http.put(f"/api/v1/products/{product}/variants/default/stock",
                            json={"adjust": 1, "reason": "found one"},
                            headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    assert not live.services.buys.gate.closed(product, "default")
    # One key, one answer: the gate's refusal replays; a new key buys the unit back.
    r = await buy(live, "patient", product, key=key)
    assert r.status_code == 409 and r.headers.get("Idempotent-Replayed") is None, r.text
    assert (await buy(live, "patient", product)).status_code == 201


@pytest.mark.parametrize("node_settings", [{"sold_out_gate_ms": GATE_MS}])
async def test_a_refund_that_restocks_reopens_it(live: Live) -> None:
    product, bought = await sold_out_once(live)
    order = bought.json()["order"]
    r = await live.http.post(f"/api/v1/orders/{order['id']}/refund",
                             headers={**live.auth("brand", "acme"), "Idempotency-Key": idem()},
                             json={"amount_minor": 5000, "restock": True})
    assert r.status_code == 200 and r.json()["restocked"] is True, r.text
    assert not live.services.buys.gate.closed(product, "default")
    assert (await buy(live, "second", product)).status_code == 201


@pytest.mark.parametrize("node_settings", [{"sold_out_gate_ms": GATE_MS}])
async def test_a_held_unit_given_back_here_reopens_it(live: Live) -> None:
    await make_brand(live)
    product = (await make_product(live, stock=1))["id"]
    stream = (await make_live_stream(live, [product], purchase_mode="cart_hold"))["id"]
    r = await live.http.post("/api/v1/cart/items", headers={
        **live.auth("buyer", "holder"), "Idempotency-Key": idem()},
        json={"product_id": product, "stream_id": stream})
    assert r.status_code == 201, r.text
    item = r.json()
    await give_wallet(live, "waiting")
    r = await buy(live, "waiting", product)
    assert r.status_code == 409 and r.json()["type"].endswith("/sold-out"), r.text
    assert live.services.buys.gate.closed(product, "default")
    r = await live.http.delete(f"/api/v1/cart/items/{item['id']}",
                               headers=live.auth("buyer", "holder"))
    assert r.status_code == 204, r.text  # the hold's order is cancelled: its unit is back
    assert not live.services.buys.gate.closed(product, "default")
    assert (await buy(live, "waiting", product)).status_code == 201


@pytest.mark.parametrize("node_settings", [{"sold_out_gate_ms": 0}])
async def test_off_every_buy_goes_to_reserve(live: Live) -> None:
    product, _ = await sold_out_once(live)
    await give_wallet(live, "third")
    key = idem()
    assert (await buy(live, "third", product, key=key)).status_code == 409
    assert await reserve_ran(live, product, "third", key)


async def test_a_key_on_its_way_to_reserve_renews_its_binding(live: Live) -> None:
    """A key first refused before reserve.lua (its wallet, its passkey) and bought much later
    keeps its binding as long as the order's record: renewed by each request that binds it
    again, so it is never bound anew while an order is recorded under it."""
    buys = live.services.buys
    request = BuyRequest(buyer=BuyerId("slow"), product=ProductId("p_renew"),
                         variant=VariantId("default"), quantity=1, idempotency_key=idem(),
                         channel="showcase")
    binding = idem_binding_key(request.buyer, request.idempotency_key)
    await buys.bind(request)
    await live.services.client.expire(binding, 60)  # as if bound a day ago
    await buys.bind(request)
    ttl = await live.services.client.ttl(binding)
    assert ttl > binding_ttl_s(live.services.settings.idempotency_ttl_s) - 60
