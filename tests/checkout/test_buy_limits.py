"""Buy rules that hold whatever the entry point: the brand's per-buyer limit counts every
channel (each stream, the showcase, a cart), and the quantity cap binds carts as it binds
one-tap buys (it lives in the buy script, not in one HTTP handler)."""

from __future__ import annotations

import pytest
from conftest import Live
from shop import buy, give_wallet, idem, make_brand, make_live_stream, make_product

from checkout.buy import BuyRequest, Rejected


async def test_max_per_buyer_counts_every_stream_the_showcase_and_the_cart(live: Live) -> None:
    # The probe bought 8 with a limit of 2: 2 in each of 3 streams and 2 in the showcase.
    await make_brand(live)
    product = (await make_product(live, stock=50, max_per_buyer=2))["id"]
    streams = [(await make_live_stream(live, [product], title=f"S{i}"))["id"] for i in range(3)]
    hold_stream = (await make_live_stream(live, [product], purchase_mode="cart_hold"))["id"]
    await give_wallet(live, "hoarder")
    assert (await buy(live, "hoarder", product, stream=streams[0])).status_code == 201
    assert (await buy(live, "hoarder", product, stream=streams[1])).status_code == 201
    for attempt in (buy(live, "hoarder", product, stream=streams[2]),
                    buy(live, "hoarder", product)):
        r = await attempt
        assert r.status_code == 409 and r.json()["type"].endswith("/limit-reached"), r.text
        assert (r.json()["limit"], r.json()["bought"]) == (2, 2)
    r = await live.http.post("/api/v1/cart/items", headers={
        **live.auth("buyer", "hoarder"), "Idempotency-Key": idem()},
        json={"product_id": product, "stream_id": hold_stream})
    assert r.status_code == 409 and r.json()["type"].endswith("/limit-reached"), r.text
    # Another buyer is not affected.
    await give_wallet(live, "other")
    assert (await buy(live, "other", product, stream=streams[2])).status_code == 201


async def test_the_quantity_cap_binds_a_cart_as_it_binds_a_buy(live: Live) -> None:
    await make_brand(live)
    product = (await make_product(live, stock=5000))["id"]
    stream = (await make_live_stream(live, [product], purchase_mode="cart_hold"))["id"]
    await give_wallet(live, "bulk")
    cap = live.services.settings.max_quantity_per_buy
    r = await live.http.post("/api/v1/cart/items", headers={
        **live.auth("buyer", "bulk"), "Idempotency-Key": idem()},
        json={"product_id": product, "stream_id": stream, "quantity": cap + 1})
    assert r.status_code == 422 and r.json()["type"].endswith("/quantity-too-large"), r.text
    # The rule lives in the buy path itself, whatever the caller (waitlist, a future one).
    with pytest.raises(Rejected) as refused:
        await live.services.buys.reserve(BuyRequest(
            buyer="bulk", product=product, variant="default", quantity=cap + 1,
            idempotency_key=idem(), channel="showcase"))
    assert (refused.value.code, refused.value.details) == ("quantity_too_large", {"max": cap})
    r = await buy(live, "bulk", product, stream=stream, quantity=cap + 1)
    assert r.status_code == 422 and r.json()["type"].endswith("/quantity-too-large"), r.text
    r = await buy(live, "bulk", product, stream=stream, quantity=cap)
    assert r.status_code == 201, r.text
