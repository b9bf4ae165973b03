"""The sandbox's card form path over real HTTP: tokenize a test number, save the token,
buy; the decline's reason in the problem; the number and CVC nowhere but the request."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import redis.asyncio as redis

from conftest import Live
from shop import buy, db_state, give_wallet, make_brand, make_live_stream, make_product

NEXT_YEAR = datetime.date.today().year + 1


async def tokenize(live: Live, number: str, **fields: Any) -> Any:
    body = {"number": number, "exp_month": 12, "exp_year": NEXT_YEAR, "cvc": "123", **fields}
    return await live.http.post("/sandbox/tokens", json=body)


async def buy_with_card(live: Live, buyer: str, number: str) -> Any:
    r = await tokenize(live, number)
    assert r.status_code == 201, r.text
    await give_wallet(live, buyer, token=r.json()["token"])
    await make_brand(live)
    product = await make_product(live, stock=3)
    stream = await make_live_stream(live, [product["id"]])
    return await buy(live, buyer, product["id"], stream=stream["id"])


async def test_tokenizing_a_test_number_answers_a_token_and_the_cards_summary(
        live: Live) -> None:
    r = await tokenize(live, "4242 4242 4242 4242")
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    card = r.json()
    assert card.pop("token").startswith("tok_sandbox_")
    assert card == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": NEXT_YEAR}


async def test_4242_buys(live: Live) -> None:
    r = await buy_with_card(live, "ann", "4242424242424242")
    assert r.status_code == 201, r.text
    assert r.json()["order"]["state"] == "paid"


@pytest.mark.parametrize(("number", "code", "detail"), [
    ("4000 0000 0000 0002", "card_declined", "Your card was declined."),
    ("4000 0000 0000 9995", "insufficient_funds", "Your card has insufficient funds."),
])
async def test_a_declining_number_answers_its_reason(live: Live, number: str, code: str,
                                                     detail: str) -> None:
    r = await buy_with_card(live, "dee", number)
    assert r.status_code == 402, r.text
    problem = r.json()
    assert problem["type"].endswith("/payment-declined")
    assert (problem["decline_code"], problem["detail"]) == (code, detail)
    assert problem["order"]["state"] == "declined" and problem["order"]["reason"] == code


async def test_a_token_the_sandbox_never_issued_is_refused_and_a_lost_one_declines(
        live: Live, rclient: redis.Redis) -> None:
    # Saving one the sandbox never issued is refused, and writes nothing.
    before = await db_state(rclient)
    r = await live.http.put("/api/v1/me/wallet", headers=live.auth("buyer", "eve"), json={
        "shipping": {"name": "E", "line1": "1 St", "city": "X", "postal_code": "1",
                     "country": "US"}, "payment_token": "tok_sandbox_" + "0" * 24})
    assert r.status_code == 422 and r.json()["type"].endswith("/unknown-payment-token"), r.text
    assert await db_state(rclient) == before
    # One the sandbox forgot after it was saved: the buy declines with the reason.
    token = (await tokenize(live, "4242424242424242")).json()["token"]
    await give_wallet(live, "eve", token=token)
    await rclient.delete(live.services.gateway.token_key(token))  # type: ignore[attr-defined]
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    r = await buy(live, "eve", product["id"], stream=stream["id"])
    assert r.status_code == 402
    assert r.json()["decline_code"] == "invalid_payment_method"
    assert r.json()["detail"] == "Your saved card can't be used. Add another card and try again."


@pytest.mark.parametrize(("fields", "errors"), [
    ({"number": "4242 4242 4242 4241"}, ["number"]),
    ({"exp_year": NEXT_YEAR - 2}, ["exp_year"]),
    ({"exp_month": 13}, ["exp_month"]),
    ({"cvc": "12"}, ["cvc"]),
    ({"cvc": "12a"}, ["cvc"]),
    ({"number": "4242424242424241", "cvc": "1"}, ["number", "cvc"]),
])
async def test_a_bad_card_is_422_with_its_fields(live: Live, rclient: redis.Redis,
                                                 fields: dict[str, Any],
                                                 errors: list[str]) -> None:
    before = await db_state(rclient)
    r = await tokenize(live, **{"number": "4242424242424242", **fields})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == errors
    assert "4242424242424241" not in r.text and "4242 4242 4242 4241" not in r.text
    assert await db_state(rclient) == before


@pytest.mark.parametrize("body", [
    {"number": 4242424242424241, "exp_month": 1, "exp_year": 2030, "cvc": "123"},
    {"number": "4242424242424241" * 3, "exp_month": 1, "exp_year": 2030, "cvc": "123"},
    {"number": "4242424242424241", "exp_month": "01", "exp_year": 2030, "cvc": "123"},
    {"number": "4242424242424241", "exp_month": 1, "exp_year": 2030, "cvc": "123", "x": 1},
])
async def test_a_malformed_body_is_422_and_never_echoes_the_number(live: Live,
                                                                  body: dict[str, Any]) -> None:
    r = await live.http.post("/sandbox/tokens", json=body)
    assert r.status_code == 422, r.text
    assert "4242424242424241" not in r.text


@pytest.mark.parametrize("node_settings", [{"sandbox_max_tokens": 1}])
async def test_past_the_token_cap_tokenizing_is_503(live: Live) -> None:
    assert (await tokenize(live, "4242424242424242")).status_code == 201
    r = await tokenize(live, "4242424242424242")
    assert r.status_code == 503 and r.json()["type"].endswith("/sandbox-full")


SECRET_NUMBER = "4000000000009995"
SECRET_CVC = "987"


async def test_the_number_and_cvc_reach_no_log_and_no_valkey_key(
        live: Live, rclient: redis.Redis, every_log: pytest.LogCaptureFixture) -> None:
    r = await live.http.post("/sandbox/tokens", json={
        "number": SECRET_NUMBER, "exp_month": 12, "exp_year": NEXT_YEAR, "cvc": SECRET_CVC})
    assert r.status_code == 201
    await give_wallet(live, "dee", token=r.json()["token"])
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    assert (await buy(live, "dee", product["id"], stream=stream["id"])).status_code == 402
    for bad in ({"number": SECRET_NUMBER, "exp_month": 12, "exp_year": 2001, "cvc": SECRET_CVC},
                {"number": int(SECRET_NUMBER), "exp_month": 1, "exp_year": 1, "cvc": 987}):
        assert (await live.http.post("/sandbox/tokens", json=bad)).status_code == 422
    assert every_log.records  # the capture works: the node logged this test's requests
    for record in every_log.records:
        text = record.getMessage() + (every_log.handler.format(record) if record.exc_info else "")
        assert SECRET_NUMBER not in text and SECRET_NUMBER[-8:] not in text, text
    stored = repr(await db_state(rclient))
    assert SECRET_NUMBER not in stored and SECRET_NUMBER[-8:] not in stored
    token_hash = await rclient.hgetall(live.services.gateway.token_key(r.json()["token"]))
    assert SECRET_CVC.encode() not in token_hash.values()
