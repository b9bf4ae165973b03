"""StripeGateway through the official SDK against tests/stripe_fake.py (Stripe's wire
format on real uvicorn) and the embedded Valkey: the contract of PaymentGateway, the
idempotency keys, saved cards, webhooks, errors."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from checkout.payments import (
    DeclineCode,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidPaymentRequest,
    PaymentGateway,
    PaymentStatus,
)
from checkout.payments.stripe_gateway import StripeConfig, StripeGateway, WebhookRejected
from conftest import UNIT
from shop import eventually
from stripe_fake import StripeFake, fake, sign  # noqa: F401 - the fixture

SECRET = "whsec_livecart_test"


def make_gateway(rclient: redis.Redis, url: str, **config: Any) -> StripeGateway:
    return StripeGateway(rclient, StripeConfig(**{
        "api_key": "sk_test_livecart", "webhook_secret": SECRET, "api_base": url,
        "timeout_s": 5 * UNIT, **config}))


@pytest.fixture
async def gateway(fake: tuple[StripeFake, str], rclient: redis.Redis
                  ) -> AsyncIterator[StripeGateway]:
    gw = make_gateway(rclient, fake[1])
    yield gw
    await gw.aclose()


@pytest.fixture
def stripe(fake: tuple[StripeFake, str]) -> StripeFake:
    return fake[0]


def creates(stripe: StripeFake) -> list[tuple[dict[str, Any], str | None]]:
    return [(p, key) for method, path, p, key in stripe.requests
            if (method, path) == ("POST", "payment_intents")]


async def test_satisfies_the_protocol(gateway: StripeGateway) -> None:
    assert isinstance(gateway, PaymentGateway)


async def test_authorize_is_a_confirmed_manual_capture_payment_intent(
        gateway: StripeGateway, stripe: StripeFake) -> None:
    auth = await gateway.authorize("p1.o1", 1999, "USD", "pm_card_visa")
    assert auth.approved and auth.gateway_ref.startswith("pi_")
    assert (auth.amount_minor, auth.currency, auth.decline_code) == (1999, "USD", None)
    [(params, key)] = creates(stripe)
    assert key == "livecart:p1.o1:authorize"
    assert params == {"amount": "1999", "currency": "usd", "capture_method": "manual",
                      "confirm": "true", "off_session": "true",
                      "payment_method": "pm_card_visa", "metadata": {"order_id": "p1.o1"}}
    assert stripe.intents[auth.gateway_ref]["status"] == "requires_capture"
    assert await gateway.authorize("p1.o1", 1999, "USD", "pm_card_visa") == auth
    assert len(stripe.intents) == 1
    record = await gateway.status("p1.o1")
    assert (record.state, record.amount_minor, record.captured_minor) == ("authorized", 1999, 0)


@pytest.mark.parametrize(("method", "code"), [
    ("pm_card_chargeDeclined", DeclineCode.CARD_DECLINED),
    ("pm_card_chargeDeclinedInsufficientFunds", DeclineCode.INSUFFICIENT_FUNDS),
    ("pm_card_chargeDeclinedExpiredCard", DeclineCode.EXPIRED_CARD),
])
async def test_a_card_error_is_a_declined_authorization(gateway: StripeGateway,
                                                        stripe: StripeFake, method: str,
                                                        code: DeclineCode) -> None:
    auth = await gateway.authorize("p1.o1", 500, "EUR", method)
    assert auth.status is PaymentStatus.DECLINED and auth.decline_code is code
    assert await gateway.authorize("p1.o1", 500, "EUR", method) == auth
    assert (await gateway.status("p1.o1")).state == "declined"
    with pytest.raises(InvalidPaymentRequest):
        await gateway.capture("p1.o1")
    assert (await gateway.void("p1.o1")).noop
    assert len(stripe.intents) == 1


async def test_an_unknown_payment_method_is_an_invalid_request(gateway: StripeGateway) -> None:
    with pytest.raises(InvalidPaymentRequest, match="No such PaymentMethod"):
        await gateway.authorize("p1.o1", 500, "USD", "pm_nope")


async def test_the_same_order_with_other_parameters_is_refused(gateway: StripeGateway,
                                                               stripe: StripeFake) -> None:
    await gateway.authorize("p1.o1", 500, "USD", "pm_card_visa")
    with pytest.raises(InvalidPaymentRequest):
        await gateway.authorize("p1.o1", 600, "USD", "pm_card_visa")
    assert len(stripe.intents) == 1


async def test_capture_then_capture_again(gateway: StripeGateway, stripe: StripeFake) -> None:
    auth = await gateway.authorize("p1.o1", 2500, "USD", "pm_card_visa")
    first = await gateway.capture("p1.o1")
    assert (first.gateway_ref, first.amount_minor, first.currency) == (auth.gateway_ref, 2500, "USD")
    assert await gateway.capture("p1.o1") == first
    assert stripe.intents[auth.gateway_ref]["status"] == "succeeded"
    captures = [k for m, path, _, k in stripe.requests if path.endswith("/capture")]
    assert captures == ["livecart:p1.o1:capture"]
    record = await gateway.status("p1.o1")
    assert (record.state, record.captured_minor, record.refunded_minor) == ("captured", 2500, 0)
    with pytest.raises(InvalidPaymentRequest):
        await gateway.void("p1.o1")


async def test_void_cancels_the_hold(gateway: StripeGateway, stripe: StripeFake) -> None:
    auth = await gateway.authorize("p1.o1", 800, "USD", "pm_card_visa")
    void = await gateway.void("p1.o1")
    assert (void.gateway_ref, void.amount_minor, void.noop) == (auth.gateway_ref, 800, False)
    assert await gateway.void("p1.o1") == void
    assert stripe.intents[auth.gateway_ref]["status"] == "canceled"
    assert (await gateway.status("p1.o1")).state == "voided"
    with pytest.raises(InvalidPaymentRequest):
        await gateway.capture("p1.o1")


async def test_a_void_before_any_authorization_refuses_a_late_one(gateway: StripeGateway,
                                                                  stripe: StripeFake) -> None:
    assert (await gateway.void("p1.o1")).noop
    with pytest.raises(InvalidPaymentRequest, match="voided"):
        await gateway.authorize("p1.o1", 800, "USD", "pm_card_visa")
    assert stripe.intents == {}
    assert (await gateway.status("p1.o1")).state == "voided"


async def test_refunds_part_by_part_then_the_rest(gateway: StripeGateway,
                                                  stripe: StripeFake) -> None:
    auth = await gateway.authorize("p1.o1", 1000, "USD", "pm_card_visa")
    with pytest.raises(InvalidPaymentRequest):  # not captured yet
        await gateway.refund("p1.o1", 100)
    await gateway.capture("p1.o1")
    first = await gateway.refund("p1.o1", 300)
    assert (first.amount_minor, first.refunded_total_minor, first.remaining_minor) == (300, 300, 700)
    with pytest.raises(InvalidPaymentRequest):
        await gateway.refund("p1.o1", 701)
    second = await gateway.refund("p1.o1", 200)
    assert (second.amount_minor, second.refunded_total_minor) == (200, 500)
    rest = await gateway.refund("p1.o1")
    assert (rest.amount_minor, rest.refunded_total_minor, rest.remaining_minor) == (500, 1000, 0)
    assert await gateway.refund("p1.o1") == rest  # a full refund is idempotent
    with pytest.raises(InvalidPaymentRequest):
        await gateway.refund("p1.o1", 1)
    charge = stripe.charges[stripe.intents[auth.gateway_ref]["latest_charge"]]
    assert charge["amount_refunded"] == 1000 and len(stripe.refunds) == 3
    keys = [k for m, path, _, k in stripe.requests if path == "refunds"]
    assert keys == [f"livecart:p1.o1:refund:{n}" for n in ("1", "2", "3", "full", "full", "4")]
    assert (await gateway.status("p1.o1")).refunded_minor == 1000


async def test_a_lost_answer_is_a_timeout_and_the_retry_gets_the_same_payment_intent(
        rclient: redis.Redis, fake: tuple[StripeFake, str]) -> None:
    stripe, url = fake
    gateway = make_gateway(rclient, url, timeout_s=0.5 * UNIT)
    try:
        stripe.stall = asyncio.Event()
        with pytest.raises(GatewayTimeout):
            await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")
        # It happens, we never hear: on a busy machine our timeout can fire before the
        # server got to the request, so wait for the server rather than assume it.
        await eventually(lambda: len(stripe.intents) == 1, "Stripe to make the PaymentIntent")
        stripe.stall.set()
        stripe.stall = None
        auth = await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")
        assert auth.approved and list(stripe.intents) == [auth.gateway_ref]
        assert [key for _, key in creates(stripe)] == ["livecart:p1.o1:authorize"] * 2
    finally:
        await gateway.aclose()


async def test_a_void_after_a_lost_answer_finds_the_hold_and_cancels_it(
        rclient: redis.Redis, fake: tuple[StripeFake, str]) -> None:
    stripe, url = fake
    gateway = make_gateway(rclient, url, timeout_s=0.5 * UNIT)
    try:
        stripe.stall = asyncio.Event()
        with pytest.raises(GatewayTimeout):
            await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")
        stripe.stall.set()
        stripe.stall = None
        void = await gateway.void("p1.o1")
        [intent] = stripe.intents.values()
        assert void.gateway_ref == intent["id"] and intent["status"] == "canceled"
        # A retry of the authorization replays it (as the sandbox does); nothing to capture.
        assert (await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")).gateway_ref \
            == intent["id"]
        with pytest.raises(InvalidPaymentRequest):
            await gateway.capture("p1.o1")
        assert (await gateway.status("p1.o1")).state == "voided"
        assert await gateway.void("p1.o1") == void
    finally:
        await gateway.aclose()


async def test_the_same_key_with_another_body_is_stripes_idempotency_error(
        gateway: StripeGateway, stripe: StripeFake, rclient: redis.Redis) -> None:
    await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")
    await rclient.delete(gateway.order_key("p1.o1"))  # our record lost: only Stripe knows
    with pytest.raises(InvalidPaymentRequest, match="same parameters"):
        await gateway.authorize("p1.o1", 900, "USD", "pm_card_visa")
    assert len(stripe.intents) == 1


async def test_an_outage_is_a_timeout_a_rate_limit_unavailable_then_it_pays(
        gateway: StripeGateway, stripe: StripeFake) -> None:
    stripe.down = True
    with pytest.raises(GatewayTimeout):  # a 5xx: Stripe may have done it
        await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")
    stripe.down, stripe.rate_limited = False, True
    with pytest.raises(GatewayUnavailable):
        await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")
    stripe.rate_limited = False
    assert (await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")).approved
    assert len(stripe.intents) == 1


async def test_nobody_listening_is_a_timeout(rclient: redis.Redis) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = make_gateway(rclient, f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(GatewayTimeout):
            await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")
    finally:
        await gateway.aclose()


async def test_a_wrong_api_key_is_unavailable(rclient: redis.Redis,
                                              fake: tuple[StripeFake, str]) -> None:
    gateway = make_gateway(rclient, fake[1], api_key="sk_test_wrong")
    try:
        with pytest.raises(GatewayUnavailable):
            await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")
    finally:
        await gateway.aclose()


async def confirm_setup(url: str, setup_intent: str, method: str) -> None:
    """What Stripe.js does in the page: confirm the SetupIntent with the card."""
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{url}/v1/setup_intents/{setup_intent}/confirm",
                            data={"payment_method": method},
                            headers={"Authorization": "Bearer sk_test_livecart"})
        assert r.status_code == 200, r.text


async def test_a_card_saved_through_a_setup_intent_pays_with_its_customer(
        gateway: StripeGateway, fake: tuple[StripeFake, str]) -> None:
    stripe, url = fake
    setup = await gateway.setup_card("bob")
    assert setup.client_secret and setup.customer.startswith("cus_")
    assert stripe.setup_intents[setup.setup_intent]["usage"] == "off_session"
    with pytest.raises(InvalidPaymentRequest):  # not confirmed yet
        await gateway.saved_card("bob", setup.setup_intent)
    await confirm_setup(url, setup.setup_intent, "pm_card_chargeDeclinedInsufficientFunds")
    with pytest.raises(InvalidPaymentRequest):  # another buyer's
        await gateway.saved_card("eve", setup.setup_intent)
    token = await gateway.saved_card("bob", setup.setup_intent)
    assert token.startswith("pm_") and stripe.methods[token]["customer"] == setup.customer
    auth = await gateway.authorize("p1.o1", 700, "USD", token)
    assert auth.decline_code is DeclineCode.INSUFFICIENT_FUNDS
    assert creates(stripe)[0][0]["customer"] == setup.customer
    assert (await gateway.setup_card("bob")).customer == setup.customer  # one per buyer
    assert len(stripe.customers) == 1


def test_webhook_signatures(gateway: StripeGateway, stripe: StripeFake) -> None:
    payload = stripe.event("payment_intent.canceled", {"id": "pi_1", "object": "payment_intent"})
    event = gateway.verify_event(payload, sign(payload, SECRET))
    assert event.type == "payment_intent.canceled"
    for header in (sign(payload, "whsec_other"), sign(payload, SECRET, int(time.time()) - 3600),
                   "t=1,v1=00", "", None):
        with pytest.raises(WebhookRejected):
            gateway.verify_event(payload, header)
    with pytest.raises(WebhookRejected):
        gateway.verify_event(payload + b" ", sign(payload, SECRET))
    with pytest.raises(WebhookRejected):
        gateway.verify_event(b"\xff", sign(b"\xff", SECRET))


async def test_a_cancel_outside_livecart_reaches_the_record_by_webhook(
        gateway: StripeGateway, stripe: StripeFake) -> None:
    auth = await gateway.authorize("p1.o1", 700, "USD", "pm_card_visa")
    intent = stripe.cancel(stripe.intents[auth.gateway_ref])  # the dashboard, or 7 days
    payload = stripe.event("payment_intent.canceled", intent)
    assert await gateway.apply_event(gateway.verify_event(payload, sign(payload, SECRET)))
    with pytest.raises(InvalidPaymentRequest):
        await gateway.capture("p1.o1")
    assert not await gateway.apply_event(gateway.verify_event(payload, sign(payload, SECRET)))
