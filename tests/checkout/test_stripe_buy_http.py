"""The whole buy path on a real node started with LIVECART_PAYMENTS=stripe, against the
local Stripe (tests/stripe_fake.py): approve, decline with its reason, capture on
shipment, void, a partial refund then the rest, idempotent retries, an outage, saved
cards through SetupIntents, signed webhooks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from conftest import Live, make_settings, start_node, stop_node
from checkout.store.keys import brand_agg_keys
from live.accounts.auth import Role
from live.node.app import build_api, openapi_document
from live.node.valkey_server import EmbeddedValkey
from live.settings import Settings
from shop import (buy, db_state, eventually, give_wallet, idem, make_brand, make_live_stream, make_product,
                  stock_of)
from stripe_fake import StripeFake, fake, sign  # noqa: F401 - the fixture

SECRET = "whsec_livecart_node"


@pytest.fixture
def stripe(fake: tuple[StripeFake, str]) -> StripeFake:
    return fake[0]


@pytest.fixture
def extra() -> dict[str, Any]:
    return {}


@pytest.fixture
def node_settings(fake: tuple[StripeFake, str], extra: dict[str, Any]) -> dict[str, Any]:
    return {"payments": "stripe", "stripe_api_key": fake[0].api_key,
            "stripe_publishable_key": fake[0].publishable_key, "stripe_webhook_secret": SECRET,
            "stripe_api_base": fake[1], **extra}


async def shop(live: Live, buyer: str, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    await give_wallet(live, buyer, token=method)
    await make_brand(live)
    product = await make_product(live, stock=5, price_minor=5000)
    stream = await make_live_stream(live, [product["id"]])
    return product, stream


def only_intent(stripe: StripeFake) -> dict[str, Any]:
    [intent] = stripe.intents.values()
    return intent


async def test_a_buy_authorizes_and_captures_one_payment_intent(live: Live,
                                                                stripe: StripeFake) -> None:
    product, stream = await shop(live, "bob", "pm_card_visa")
    r = await buy(live, "bob", product["id"], stream=stream["id"])
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    assert order["state"] == "paid"
    intent = only_intent(stripe)
    assert (intent["status"], intent["amount"], intent["currency"]) == ("succeeded", 5000, "usd")
    assert intent["metadata"] == {"order_id": order["id"]}
    keys = [k for _, _, _, k in stripe.requests if k]
    assert keys == [f"livecart:{order['id']}:authorize", f"livecart:{order['id']}:capture"]


async def test_a_decline_answers_its_reason_and_gives_stock_back(live: Live,
                                                                 stripe: StripeFake) -> None:
    product, stream = await shop(live, "dee", "pm_card_chargeDeclinedInsufficientFunds")
    r = await buy(live, "dee", product["id"], stream=stream["id"])
    assert r.status_code == 402, r.text
    problem = r.json()
    assert problem["decline_code"] == "insufficient_funds"
    assert problem["detail"] == "Your card has insufficient funds."
    assert problem["order"]["state"] == "declined"
    assert (await stock_of(live, product["id"]))["default"]["available"] == 5
    assert only_intent(stripe)["status"] == "requires_payment_method"


@pytest.mark.parametrize("extra", [{"capture_mode": "on_shipment"}])
async def test_on_shipment_the_brand_captures_one_order_and_voids_another(
        live: Live, stripe: StripeFake) -> None:
    product, stream = await shop(live, "bob", "pm_card_visa")
    orders = []
    for _ in range(2):
        r = await buy(live, "bob", product["id"], stream=stream["id"])
        assert r.status_code == 201 and r.json()["order"]["state"] == "authorized", r.text
        orders.append(r.json()["order"])
    assert {i["status"] for i in stripe.intents.values()} == {"requires_capture"}
    brand = live.auth("brand", "acme")
    r = await live.http.post(f"/api/v1/orders/{orders[0]['id']}/capture", headers=brand)
    assert r.status_code == 200 and r.json()["state"] == "paid", r.text
    r = await live.http.post(f"/api/v1/orders/{orders[1]['id']}/void", headers=brand)
    assert r.status_code == 200 and r.json()["state"] == "voided", r.text
    by_order = {i["metadata"]["order_id"]: i for i in stripe.intents.values()}
    assert by_order[orders[0]["id"]]["status"] == "succeeded"
    assert by_order[orders[1]["id"]]["status"] == "canceled"


async def test_a_partial_refund_then_the_rest_and_the_books_agree(live: Live,
                                                                  stripe: StripeFake) -> None:
    product, stream = await shop(live, "bob", "pm_card_visa")
    order = (await buy(live, "bob", product["id"], stream=stream["id"])).json()["order"]
    r = await live.http.post(f"/api/v1/orders/{order['id']}/refund", json={"amount_minor": 1500},
                             headers={**live.auth("brand", "acme"), "Idempotency-Key": idem()})
    assert r.status_code == 200, r.text
    assert (r.json()["refund"]["amount_minor"], r.json()["refunded_minor"]) == (1500, 1500)
    charge = stripe.charges[only_intent(stripe)["latest_charge"]]
    assert charge["amount_refunded"] == 1500
    r = await live.http.post(f"/api/v1/orders/{order['id']}/refund",
                             headers=live.auth("brand", "acme"))
    assert r.status_code == 200 and r.json()["state"] == "refunded", r.text
    assert charge["amount_refunded"] == 5000
    assert [r["amount"] for r in stripe.refunds.values()] == [1500, 3500]
    await live.services.aggregator.drain()
    report = await live.http.get("/api/v1/ops/reconcile", headers=live.auth("operator", "ops"))
    assert report.status_code == 200 and report.json()["mismatches"] == [], report.text


async def test_a_refund_asked_again_under_its_number_is_made_once(live: Live,
                                                                  stripe: StripeFake) -> None:
    """What a retry after a lost answer does (checkout/fulfilment.py passes the refund's
    number): Stripe answers the first Refund under `livecart:<order>:refund:<n>`."""
    product, stream = await shop(live, "bob", "pm_card_visa")
    order = (await buy(live, "bob", product["id"], stream=stream["id"])).json()["order"]
    first = await live.services.gateway.refund(order["id"], 1000, seq=1)
    again = await live.services.gateway.refund(order["id"], 1000, seq=1)
    assert first.gateway_ref == again.gateway_ref
    assert [r["amount"] for r in stripe.refunds.values()] == [1000]
    second = await live.services.gateway.refund(order["id"], 1000, seq=2)
    assert second.gateway_ref != first.gateway_ref and second.refunded_total_minor == 2000


async def test_the_same_idempotency_key_replays_without_a_second_payment_intent(
        live: Live, stripe: StripeFake) -> None:
    product, stream = await shop(live, "bob", "pm_card_visa")
    key = idem()
    first = await buy(live, "bob", product["id"], stream=stream["id"], key=key)
    again = await buy(live, "bob", product["id"], stream=stream["id"], key=key)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["order"]["id"] == first.json()["order"]["id"]
    assert len(stripe.intents) == 1


@pytest.mark.parametrize("extra", [{"payment_timeout_s": 0.3}])
async def test_answers_lost_on_the_way_back_are_learnt_by_retrying_with_the_same_keys(
        live: Live, stripe: StripeFake) -> None:
    product, stream = await shop(live, "bob", "pm_card_visa")
    stripe.stall = asyncio.Event()  # every first answer is lost; Stripe's replays are not
    r = await buy(live, "bob", product["id"], stream=stream["id"])
    assert r.status_code == 201 and r.json()["order"]["state"] == "paid", r.text
    order_id = r.json()["order"]["id"]
    assert only_intent(stripe)["status"] == "succeeded"
    keys = [k for _, _, _, k in stripe.requests if k]
    assert keys == [f"livecart:{order_id}:{op}" for op in ("authorize",) * 2 + ("capture",) * 2]


async def test_an_outage_leaves_the_order_paying_and_the_same_key_pays_it_after(
        live: Live, stripe: StripeFake) -> None:
    product, stream = await shop(live, "bob", "pm_card_visa")
    key = idem()
    stripe.down = True
    r = await buy(live, "bob", product["id"], stream=stream["id"], key=key)
    assert r.status_code == 202 and r.json()["payment"] == "pending", r.text
    assert stripe.intents == {}
    stripe.down = False
    r = await buy(live, "bob", product["id"], stream=stream["id"], key=key)
    assert r.status_code == 201 and r.json()["order"]["state"] == "paid", r.text
    assert len(stripe.intents) == 1


async def test_a_card_saved_through_a_setup_intent_buys(live: Live,
                                                        fake: tuple[StripeFake, str]) -> None:
    stripe, url = fake
    r = await live.http.post("/api/v1/me/cards/setup", headers=live.auth("buyer", "bob"))
    assert r.status_code == 201, r.text
    setup = r.json()
    assert setup["client_secret"].startswith(setup["setup_intent"])
    async with httpx.AsyncClient() as http:  # what Stripe.js does in the page
        confirmed = await http.post(f"{url}/v1/setup_intents/{setup['setup_intent']}/confirm",
                                    data={"payment_method": "pm_card_visa"},
                                    headers={"Authorization": f"Bearer {stripe.api_key}"})
        assert confirmed.status_code == 200
    r = await live.http.post("/api/v1/me/cards", json={"setup_intent": setup["setup_intent"]},
                             headers=live.auth("buyer", "eve"))
    assert r.status_code == 422 and r.json()["type"].endswith("/payment-method-refused")
    r = await live.http.post("/api/v1/me/cards", json={"setup_intent": setup["setup_intent"]},
                             headers=live.auth("buyer", "bob"))
    assert r.status_code == 200, r.text
    token = r.json()["payment_token"]
    # In the wallet it is bob's alone, shown as Stripe describes the card.
    r = await live.http.post("/api/v1/me/wallet/cards", json={"token": token},
                             headers=live.auth("buyer", "eve"))
    assert r.status_code == 422 and r.json()["type"].endswith("/unknown-payment-token")
    r = await live.http.post("/api/v1/me/wallet/cards", json={"token": token},
                             headers=live.auth("buyer", "bob"))
    assert r.status_code == 201, r.text
    card = r.json()
    assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"]) == \
        ("visa", "4242", 12, 2034)
    product, stream = await shop(live, "bob", token)
    r = await buy(live, "bob", product["id"], stream=stream["id"])
    assert r.status_code == 201, r.text
    assert only_intent(stripe)["customer"] == setup["customer"]
    assert r.json()["order"]["card"] == {"brand": "visa", "last4": "4242"}


@pytest.mark.parametrize("extra", [{"capture_mode": "on_shipment"}])
async def test_webhooks_act_only_on_what_verifies(live: Live, stripe: StripeFake,
                                                  rclient: redis.Redis) -> None:
    product, stream = await shop(live, "bob", "pm_card_visa")
    order = (await buy(live, "bob", product["id"], stream=stream["id"])).json()["order"]
    intent = stripe.cancel(only_intent(stripe))  # cancelled in the dashboard
    url = f"{live.url}/webhooks/stripe"
    # The sale's totals are folded in the background: wait for them, so that only a webhook
    # could change anything from here on.
    await eventually(lambda: rclient.hget(brand_agg_keys("acme").totals, "orders"), "the sale aggregated")
    before = await db_state(rclient)
    for secret in ("whsec_forged", None):
        payload = stripe.event("payment_intent.canceled", intent)
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["Stripe-Signature"] = sign(payload, secret)
        r = await live.http.post(url, content=payload, headers=headers)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/webhook-signature-invalid")
    assert await db_state(rclient) == before
    r = await stripe.send_event(url, "payment_intent.canceled", intent, SECRET)
    assert r.status_code == 200 and r.json() == {"received": True, "applied": True}, r.text
    r = await live.http.post(f"/api/v1/orders/{order['id']}/capture",
                             headers=live.auth("brand", "acme"))
    assert r.status_code == 502 and r.json()["type"].endswith("/payment-gateway-error")


async def test_the_document_has_the_stripe_endpoints(live: Live) -> None:
    doc = (await live.http.get("/api/v1/openapi.json")).json()
    assert doc == openapi_document(live.services.settings)
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert {"/api/v1/me/cards/setup", "/api/v1/me/cards"} <= set(doc["paths"])
    assert "/api/v1/me/cards" not in build_api().openapi()["paths"]


async def test_the_sandbox_tokenizer_is_not_there(live: Live) -> None:
    r = await live.http.post("/sandbox/tokens", json={"number": "4242424242424242",
                                                      "exp_month": 1, "exp_year": 2040,
                                                      "cvc": "123"})
    assert r.status_code == 404


async def test_a_sandbox_node_has_no_stripe_endpoints(valkey: EmbeddedValkey,
                                                      rclient: redis.Redis,
                                                      tmp_path: Path) -> None:
    services, server, task, url = await start_node(make_settings(valkey, tmp_path),
                                                   background=False)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            token = services.tokens.mint(Role.BUYER, "bob", ttl_s=60)
            r = await http.post("/api/v1/me/cards/setup",
                                headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 404
            r = await http.post("/webhooks/stripe", content=b"{}",
                                headers={"Content-Type": "application/json"})
            assert r.status_code == 404
    finally:
        await stop_node(services, server, task)


def test_payments_settings_from_the_environment() -> None:
    settings = Settings.from_env({"LIVECART_PAYMENTS": "stripe",
                                  "LIVECART_STRIPE_API_KEY": "sk_test_secret_value",
                                  "LIVECART_STRIPE_PUBLISHABLE_KEY": "pk_test_value",
                                  "LIVECART_STRIPE_WEBHOOK_SECRET": "whsec_secret_value",
                                  "LIVECART_STRIPE_API_BASE": "http://127.0.0.1:1"})
    assert (settings.payments, settings.stripe_api_base) == ("stripe", "http://127.0.0.1:1")
    assert "secret_value" not in repr(settings)
    assert Settings.from_env({}).payments == "sandbox"
    with pytest.raises(ValueError, match="STRIPE_API_KEY"):
        Settings.from_env({"LIVECART_PAYMENTS": "stripe"})
    with pytest.raises(ValueError, match="STRIPE_PUBLISHABLE_KEY"):
        Settings.from_env({"LIVECART_PAYMENTS": "stripe", "LIVECART_STRIPE_API_KEY": "sk_test_x"})
    with pytest.raises(ValueError, match="sandbox or stripe"):
        Settings.from_env({"LIVECART_PAYMENTS": "paypal"})
