"""Passkeys against a real node and Valkey, answered by a software authenticator
(tests/authenticator.py: real keys, real signatures): adding one after an email sign-in,
signing in with it alone (a new session, fixation-safe), single-use challenges, the origin
and RP ID, user verification, the signature counter (a copy going backwards is refused, two
answers with one count race to one), one account's passkeys out of another's reach, the
caps and rate limits; and a session's buy confirmed with one tap bound to that purchase."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as redis
from authenticator import SoftAuthenticator, b64
from conftest import UNIT, Live
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from shop import idem, make_brand, make_live_stream, make_product, stock_of
from test_bad_input import assert_problem
from test_chat_claims import claim
from test_hub import recv_until, room_url
from websockets.asyncio.client import connect
from webauthn.helpers import encode_cbor
from test_sessions import WALLET, Person, people  # noqa: F401 - the fixture
from test_signin import session_cookie

from live.accounts.passkeys import credential_hash
from live.accounts.keys import passkey_key


@pytest.fixture
def extra_settings() -> dict[str, Any]:
    """Parametrize to change the node's settings for one test."""
    return {}


@pytest.fixture
def node_settings(smtp: Inbox, extra_settings: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url, **extra_settings}


def authenticator(live: Live, **knobs: Any) -> SoftAuthenticator:
    """An authenticator for this node's relying party (the loopback address it serves)."""
    return SoftAuthenticator(origin=live.url, rp_id=urlsplit(live.url).hostname or "", **knobs)


async def creation_options(person: Person) -> dict[str, Any]:
    r = await person.http.post("/auth/passkeys/options", headers=person.csrf)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def add_passkey(person: Person, device: SoftAuthenticator, name: str = "Phone") -> dict[str, Any]:
    credential = device.create(await creation_options(person))
    r = await person.http.post("/auth/passkeys", json={"credential": credential, "name": name},
                               headers=person.csrf)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def signin_options(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.post("/auth/passkey/options")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def passkey_sign_in(client: httpx.AsyncClient, device: SoftAuthenticator,
                          **forge: Any) -> httpx.Response:
    credential = device.get(await signin_options(client), **forge)
    return await client.post("/auth/passkey/verify", json={"credential": credential})


# ---------------------------------------------------------------- add, sign in, list, remove


async def test_add_a_passkey_then_sign_in_with_it_alone(live: Live, people: Any,
                                                        rclient: redis.Redis) -> None:
    ann: Person = await people("ann@example.com")
    options = await creation_options(ann)
    assert options["rp"] == {"name": "livecart", "id": "127.0.0.1"}
    assert options["user"]["id"] == b64(ann.id.encode()) and options["user"]["name"] == "ann@example.com"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["excludeCredentials"] == [] and options["attestation"] == "none"
    assert options["timeout"] == 300_000

    phone = authenticator(live)
    r = await ann.http.post("/auth/passkeys", headers=ann.csrf,
                            json={"credential": phone.create(options), "name": "  Ann's phone "})
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["id"] == phone.id and added["name"] == "Ann's phone"
    assert added["transports"] == ["internal"] and added["last_used_ms"] is None
    assert (await ann.http.get("/auth/passkeys")).json() == {"items": [added]}
    # The same authenticator is not offered a second credential.
    again = await creation_options(ann)
    assert again["excludeCredentials"] == [{"id": phone.id, "type": "public-key",
                                            "transports": ["internal"]}]
    # A session of an account with a passkey confirms its buys with it.
    assert (await ann.http.get("/auth/session")).json()["buy_confirm"] == "passkey"

    # Another browser (with a cookie planted by someone else) signs in with the passkey alone.
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        planted = "A" * 43
        browser.cookies.set("lc_session", planted)
        options = await signin_options(browser)
        assert options["allowCredentials"] == [] and options["rpId"] == "127.0.0.1"
        assert options["userVerification"] == "required"
        r = await browser.post("/auth/passkey/verify", json={"credential": phone.get(options)})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["signed_in"] and body["account"]["id"] == ann.id and not body["new_account"]
        cookie = session_cookie(r)
        assert cookie != planted and "HttpOnly" in r.headers["set-cookie"]
        browser.cookies.clear()
        browser.cookies.set("lc_session", cookie)
        session = (await browser.get("/auth/session")).json()
        assert session["account"]["email"] == "ann@example.com" and session["csrf"] == body["csrf"]
    listed = (await ann.http.get("/auth/passkeys")).json()["items"]
    assert listed[0]["last_used_ms"] is not None
    stored = await rclient.hget(passkey_key(ann.id, credential_hash(phone.id)), "sign_count")
    assert stored == b"1"


async def test_remove_a_passkey_and_it_signs_in_no_more(live: Live, people: Any) -> None:
    ann: Person = await people("rm@example.com")
    phone, key = authenticator(live), authenticator(live)
    await add_passkey(ann, phone, "Phone")
    await add_passkey(ann, key, "Key")
    assert [p["name"] for p in (await ann.http.get("/auth/passkeys")).json()["items"]] == [
        "Phone", "Key"]
    r = await ann.http.delete(f"/auth/passkeys/{phone.id}", headers=ann.csrf)
    assert r.status_code == 204
    assert [p["id"] for p in (await ann.http.get("/auth/passkeys")).json()["items"]] == [key.id]
    assert_problem(await ann.http.delete(f"/auth/passkeys/{phone.id}", headers=ann.csrf),
                   404, "not-found")
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        assert_problem(await passkey_sign_in(browser, phone), 400, "passkey-rejected")
        assert (await passkey_sign_in(browser, key)).status_code == 200


async def test_one_account_never_reaches_anothers_passkeys(live: Live, people: Any) -> None:
    ann: Person = await people("ann2@example.com")
    bob: Person = await people("bob2@example.com")
    phone = authenticator(live)
    await add_passkey(ann, phone)
    # Bob cannot see, remove or take over Ann's passkey.
    assert (await bob.http.get("/auth/passkeys")).json() == {"items": []}
    assert_problem(await bob.http.delete(f"/auth/passkeys/{phone.id}", headers=bob.csrf),
                   404, "not-found")
    assert [p["id"] for p in (await ann.http.get("/auth/passkeys")).json()["items"]] == [phone.id]
    r = await bob.http.post("/auth/passkeys", headers=bob.csrf, json={
        "credential": phone.clone().create(await creation_options(bob))})
    assert_problem(r, 409, "passkey-exists")
    # Nor use his own challenge with it, nor answer Ann's registration from his session.
    ann_options = await creation_options(ann)
    r = await bob.http.post("/auth/passkeys", headers=bob.csrf, json={
        "credential": authenticator(live).create(ann_options)})
    assert_problem(r, 400, "passkey-rejected")
    # The passkey still signs Ann in, and only Ann.
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        r = await passkey_sign_in(browser, phone)
        assert r.status_code == 200 and r.json()["account"]["id"] == ann.id


async def test_the_passkey_endpoints_need_the_session(live: Live, people: Any) -> None:
    for method, path in (("POST", "/auth/passkeys/options"), ("GET", "/auth/passkeys"),
                         ("DELETE", "/auth/passkeys/AAAA")):
        assert_problem(await live.http.request(method, path), 401, "unauthorized")
    r = await live.http.post("/auth/passkeys", json={"credential": {}})
    assert_problem(r, 401, "unauthorized")  # before the body is read
    # Sign-in refuses another site's Origin (login CSRF), as the email sign-in does.
    evil = {"Origin": "https://evil.example"}
    assert_problem(await live.http.post("/auth/passkey/options", headers=evil), 403,
                   "origin-not-allowed")
    device = authenticator(live)
    ann: Person = await people("origin@example.com")
    await add_passkey(ann, device)
    credential = device.get(await signin_options(live.http))
    r = await live.http.post("/auth/passkey/verify", json={"credential": credential}, headers=evil)
    assert_problem(r, 403, "origin-not-allowed")
    assert "set-cookie" not in r.headers


# ---------------------------------------------------------------- what must not verify


async def test_a_replayed_answer_is_refused(live: Live, people: Any) -> None:
    ann: Person = await people("replay@example.com")
    device = authenticator(live)
    credential = device.create(await creation_options(ann))
    r = await ann.http.post("/auth/passkeys", json={"credential": credential}, headers=ann.csrf)
    assert r.status_code == 201, r.text
    r = await ann.http.post("/auth/passkeys", json={"credential": credential}, headers=ann.csrf)
    assert_problem(r, 410, "passkey-challenge-expired")
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        answer = device.get(await signin_options(browser))
        assert (await browser.post("/auth/passkey/verify", json={"credential": answer})).status_code == 200
        r = await browser.post("/auth/passkey/verify", json={"credential": answer})
        assert_problem(r, 410, "passkey-challenge-expired")
        assert "set-cookie" not in r.headers
        # A challenge made for signing in does not add a passkey, and the other way round.
        r = await ann.http.post("/auth/passkeys", headers=ann.csrf, json={
            "credential": authenticator(live).create(
                {"challenge": (await signin_options(browser))["challenge"],
                 "user": {"id": b64(ann.id.encode())}})})
        assert_problem(r, 400, "passkey-rejected")
        registration = await creation_options(ann)
        r = await browser.post("/auth/passkey/verify",
                               json={"credential": device.get(registration)})
        assert_problem(r, 400, "passkey-rejected")


@pytest.mark.parametrize("extra_settings", [{"passkey_challenge_ttl_s": 1}])
async def test_an_expired_challenge_is_refused(live: Live, people: Any,
                                               rclient: redis.Redis) -> None:
    ann: Person = await people("late@example.com")
    options = await creation_options(ann)
    keys = await rclient.keys("lc:{pc:*")
    assert len(keys) == 1 and 0 < await rclient.pttl(keys[0]) <= 1000
    await rclient.delete(keys[0])  # what its expiry does, without waiting for it
    r = await ann.http.post("/auth/passkeys", headers=ann.csrf,
                            json={"credential": authenticator(live).create(options)})
    assert_problem(r, 410, "passkey-challenge-expired")


@pytest.mark.parametrize("forge", [
    {"origin": "https://evil.example"}, {"origin": "http://localhost:1"},
    {"rp_id": "evil.example"}, {"rp_id": "localhost"}, {"verified": False}],
    ids=["foreign-origin", "other-port", "foreign-rp", "other-rp", "no-user-verification"])
async def test_registration_from_elsewhere_is_refused(live: Live, people: Any,
                                                      forge: dict[str, Any]) -> None:
    ann: Person = await people("where@example.com")
    credential = authenticator(live).create(await creation_options(ann), **forge)
    r = await ann.http.post("/auth/passkeys", json={"credential": credential}, headers=ann.csrf)
    assert_problem(r, 400, "passkey-rejected")
    assert (await ann.http.get("/auth/passkeys")).json() == {"items": []}


@pytest.mark.parametrize("forge", [
    {"origin": "https://evil.example"}, {"origin": "http://localhost:1"},
    {"rp_id": "evil.example"}, {"verified": False}, {"cross_origin": True}],
    ids=["foreign-origin", "other-port", "foreign-rp", "no-user-verification", "in-a-frame"])
async def test_sign_in_from_elsewhere_is_refused(live: Live, people: Any,
                                                 forge: dict[str, Any]) -> None:
    ann: Person = await people("where2@example.com")
    device = authenticator(live)
    await add_passkey(ann, device)
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        r = await passkey_sign_in(browser, device, **forge)
        assert_problem(r, 400, "passkey-rejected")
        assert "set-cookie" not in r.headers
        assert (await passkey_sign_in(browser, device)).status_code == 200  # it is the forgery


async def test_an_unknown_passkey_looks_like_a_bad_signature(live: Live, people: Any) -> None:
    """Nothing tells whether a credential is registered beyond what WebAuthn itself does."""
    ann: Person = await people("enum@example.com")
    device = authenticator(live)
    await add_passkey(ann, device)
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        unknown = await passkey_sign_in(browser, authenticator(live))
        credential = device.get(await signin_options(browser))
        credential["response"]["signature"] = b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")
        forged = await browser.post("/auth/passkey/verify", json={"credential": credential})
    assert_problem(unknown, 400, "passkey-rejected")
    assert unknown.json() == forged.json()


async def test_a_counter_that_goes_backwards_is_refused(live: Live, people: Any,
                                                        rclient: redis.Redis) -> None:
    ann: Person = await people("clone@example.com")
    device = authenticator(live)
    await add_passkey(ann, device)
    key = passkey_key(ann.id, credential_hash(device.id))
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        assert (await passkey_sign_in(browser, device, count=5)).status_code == 200
        copy = device.clone()
        for count in (3, 5):  # behind, and not ahead
            r = await passkey_sign_in(browser, copy, count=count)
            assert_problem(r, 403, "passkey-replayed")
            assert "set-cookie" not in r.headers
        assert await rclient.hget(key, "sign_count") == b"5"
        assert (await passkey_sign_in(browser, device, count=6)).status_code == 200
        # Two answers carrying the same count: checked and stored in one step, one passes.
        answers = [device.get(await signin_options(browser), count=9) for _ in range(2)]
        replies = await asyncio.gather(*[browser.post("/auth/passkey/verify", json={
            "credential": a}) for a in answers])
        assert sorted(r.status_code for r in replies) == [200, 403]
    assert await rclient.hget(key, "sign_count") == b"9"


async def test_an_authenticator_without_a_counter_signs_in_every_time(
        live: Live, people: Any, rclient: redis.Redis) -> None:
    ann: Person = await people("nocount@example.com")
    synced = authenticator(live, counts=False)  # as synced passkeys often do: always 0
    await add_passkey(ann, synced)
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        for _ in range(2):
            assert (await passkey_sign_in(browser, synced)).status_code == 200
    key = passkey_key(ann.id, credential_hash(synced.id))
    assert await rclient.hget(key, "sign_count") == b"0"


async def test_a_user_handle_of_another_account_is_refused(live: Live, people: Any) -> None:
    ann: Person = await people("handle@example.com")
    device = authenticator(live)
    await add_passkey(ann, device)
    device.user_handle = b"u_" + b"0" * 32
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        assert_problem(await passkey_sign_in(browser, device), 400, "passkey-rejected")


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize("extra_settings", [{"passkeys_per_account": 2}])
async def test_an_account_has_a_capped_number_of_passkeys(live: Live, people: Any) -> None:
    ann: Person = await people("cap@example.com")
    for _ in range(2):
        await add_passkey(ann, authenticator(live))
    r = await ann.http.post("/auth/passkeys", headers=ann.csrf, json={
        "credential": authenticator(live).create(await creation_options(ann))})
    assert_problem(r, 409, "passkeys-full")
    assert len((await ann.http.get("/auth/passkeys")).json()["items"]) == 2


@pytest.mark.parametrize("extra_settings", [{"passkey_signin_per_ip": 3,
                                             "passkey_options_per_account": 2}])
async def test_passkey_requests_are_rate_limited(live: Live, people: Any) -> None:
    for _ in range(3):
        assert (await live.http.post("/auth/passkey/options")).status_code == 200
    r = await live.http.post("/auth/passkey/options")
    assert_problem(r, 429, "too-many-requests")
    assert 0 < int(r.headers["Retry-After"]) <= 15 * 60
    ann: Person = await people("rate@example.com")
    for _ in range(2):
        await creation_options(ann)
    r = await ann.http.post("/auth/passkeys/options", headers=ann.csrf)
    assert_problem(r, 429, "too-many-requests")


@pytest.mark.parametrize("extra_settings", [{"public_url": "https://shop.example"}])
async def test_the_relying_party_is_the_public_url(live: Live) -> None:
    """Behind LIVECART_PUBLIC_URL the passkeys are the public host's, whatever address the
    request came to; an answer made for the address reached directly does not verify."""
    account, _ = await live.services.accounts.sign_in("public@example.com")
    token, session = await live.services.sessions.create(account.id, account.buyer_grant)
    page = {"Cookie": f"lc_session={token}", "X-CSRF-Token": session.csrf}
    r = await live.http.post("/auth/passkeys/options", headers=page)
    assert r.status_code == 200, r.text
    assert r.json()["rp"]["id"] == "shop.example"
    public = SoftAuthenticator(origin="https://shop.example", rp_id="shop.example")
    direct = authenticator(live)
    r = await live.http.post("/auth/passkeys", headers=page,
                             json={"credential": direct.create(r.json())})
    assert_problem(r, 400, "passkey-rejected")
    r = await live.http.post("/auth/passkeys/options", headers=page)
    r = await live.http.post("/auth/passkeys", headers=page,
                             json={"credential": public.create(r.json())})
    assert r.status_code == 201, r.text
    assert (await live.http.post("/auth/passkey/options")).json()["rpId"] == "shop.example"


# ---------------------------------------------------------------- a buy confirmed with a tap


async def buyer_with_passkey(live: Live, people: Any, email: str) -> tuple[Person, SoftAuthenticator]:
    person: Person = await people(email)
    r = await person.http.put("/api/v1/me/wallet", json=WALLET, headers=person.csrf)
    assert r.status_code == 200, r.text
    device = authenticator(live)
    await add_passkey(person, device)
    return person, device


async def confirm(person: Person, device: SoftAuthenticator, body: dict[str, Any],
                  key: str) -> dict[str, Any]:
    r = await person.http.post("/api/v1/buy/confirmation", json=body,
                               headers={**person.csrf, "Idempotency-Key": key})
    assert r.status_code == 200, r.text
    options = r.json()
    assert options["allowCredentials"] == [{"id": device.id, "type": "public-key",
                                            "transports": ["internal"]}]
    return device.get(options)


async def test_a_session_buy_needs_a_passkey_tap_bound_to_it(live: Live, people: Any) -> None:
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    ann, phone = await buyer_with_passkey(live, people, "tap@example.com")
    body = {"product_id": product["id"], "stream_id": stream["id"], "quantity": 1,
            "expected_unit_price_minor": product["price_minor"]}
    key = idem()

    async def buy(payload: dict[str, Any], buy_key: str = key, who: Person = ann) -> httpx.Response:
        return await who.http.post("/api/v1/buy", json=payload,
                                   headers={**who.csrf, "Idempotency-Key": buy_key})

    r = await buy(body)
    assert_problem(r, 403, "passkey-required")
    assert r.json()["options"] == "/api/v1/buy/confirmation"
    # An answer bound to another purchase pays for nothing: another quantity, another
    # price shown, another key. Each spends its challenge (the purchase it was made for,
    # sent under this key, is another request for the key: refused before any passkey).
    for other, other_key in (({**body, "quantity": 2}, key),
                             ({**body, "expected_unit_price_minor": 1}, key), (body, idem())):
        answer = await confirm(ann, phone, other, other_key)
        assert_problem(await buy({**body, "passkey": answer}), 400, "passkey-wrong-purchase")
        if other_key == key:
            assert_problem(await buy({**other, "passkey": answer}, other_key), 422,
                           "idempotency-key-reused")
        else:
            assert_problem(await buy({**other, "passkey": answer}, other_key), 410,
                           "passkey-challenge-expired")
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["sold"], levels["held"]) == (0, 0)

    # The answer for this purchase buys it.
    answer = await confirm(ann, phone, body, key)
    r = await buy({**body, "passkey": answer})
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    # A retry of the same buy (same body, same key) needs no new tap: it replays.
    r = await buy(body)
    assert r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true"
    assert r.json()["order"]["id"] == order["id"]
    # A new buy does.
    assert_problem(await buy(body, idem()), 403, "passkey-required")
    # Bob cannot spend Ann's answer on his own buy.
    bob, _ = await buyer_with_passkey(live, people, "tap-bob@example.com")
    bob_key = idem()
    answer = await confirm(ann, phone, body, bob_key)
    assert_problem(await buy({**body, "passkey": answer}, bob_key, bob), 400, "passkey-rejected")
    # A bearer token (an API client) is not asked.
    r = await live.http.post("/api/v1/buy", json=body, headers={
        **live.auth("buyer", ann.id), "Idempotency-Key": idem()})
    assert r.status_code == 201, r.text


async def cart_item(person: Person, stream: dict[str, Any], product: dict[str, Any]) -> dict[str, Any]:
    r = await person.http.post("/api/v1/cart/items", json={
        "product_id": product["id"], "stream_id": stream["id"]},
        headers={**person.csrf, "Idempotency-Key": idem()})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def asked(person: Person, device: SoftAuthenticator, path: str,
                body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answer to the options `path` gives for paying this way."""
    r = await person.http.post(path, json=body or {}, headers=person.csrf)
    assert r.status_code == 200, r.text
    return device.get(r.json())


async def test_cart_checkout_needs_a_tap_bound_to_the_cart_as_it_is(live: Live, people: Any) -> None:
    """The cart pays only with the tap too (a stolen session cookie buys nothing), and a
    tap pays for the cart it was asked for: after a line is added it pays nothing."""
    await make_brand(live)
    product = await make_product(live, stock=5, max_per_buyer=0)
    stream = await make_live_stream(live, [product["id"]], purchase_mode="cart_hold")
    ann, phone = await buyer_with_passkey(live, people, "cart@example.com")
    first = await cart_item(ann, stream, product)
    checkout = "/api/v1/cart/checkout"

    r = await ann.http.post(checkout, headers=ann.csrf)  # no body at all: the defaults
    assert_problem(r, 403, "passkey-required")
    assert r.json()["options"] == "/api/v1/cart/checkout/confirmation"
    answer = await asked(ann, phone, "/api/v1/cart/checkout/confirmation")
    second = await cart_item(ann, stream, product)  # the cart changed after the tap
    assert_problem(await ann.http.post(checkout, json={"passkey": answer}, headers=ann.csrf),
                   400, "passkey-wrong-purchase")
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["sold"], levels["held"]) == (0, 2)

    answer = await asked(ann, phone, "/api/v1/cart/checkout/confirmation")
    r = await ann.http.post(checkout, json={"passkey": answer}, headers=ann.csrf)
    assert r.status_code == 200, r.text
    outcomes = r.json()["items"]
    assert sorted(o["item"]["id"] for o in outcomes) == sorted([first["id"], second["id"]])
    assert {o["result"] for o in outcomes} == {"settled"}
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["sold"], levels["held"]) == (2, 0)
    # An empty cart has nothing to pay or confirm.
    assert (await ann.http.post(checkout, headers=ann.csrf)).json() == {"items": []}
    assert_problem(await ann.http.post("/api/v1/cart/checkout/confirmation", headers=ann.csrf),
                   409, "cart-empty")


async def test_paying_a_held_order_needs_a_tap_bound_to_that_order(live: Live, people: Any) -> None:
    await make_brand(live)
    product = await make_product(live, stock=5, max_per_buyer=0)
    stream = await make_live_stream(live, [product["id"]], purchase_mode="cart_hold")
    ann, phone = await buyer_with_passkey(live, people, "held@example.com")
    one, two = await cart_item(ann, stream, product), await cart_item(ann, stream, product)
    pay_one, pay_two = (f"/api/v1/orders/{item['order_id']}/pay" for item in (one, two))

    r = await ann.http.post(pay_one, headers=ann.csrf)
    assert_problem(r, 403, "passkey-required")
    assert r.json()["options"] == f"{pay_one}/confirmation"
    # The answer for order two does not pay order one, and is spent trying.
    answer = await asked(ann, phone, f"{pay_two}/confirmation")
    assert_problem(await ann.http.post(pay_one, json={"passkey": answer}, headers=ann.csrf),
                   400, "passkey-wrong-purchase")
    assert_problem(await ann.http.post(pay_two, json={"passkey": answer}, headers=ann.csrf),
                   410, "passkey-challenge-expired")
    answer = await asked(ann, phone, f"{pay_one}/confirmation")
    r = await ann.http.post(pay_one, json={"passkey": answer}, headers=ann.csrf)
    assert r.status_code == 201, r.text
    assert r.json()["order"]["state"] in ("paid", "authorized")
    # Order two is still held and still asks; a bearer token (an API client) is not asked.
    assert_problem(await ann.http.post(pay_two, headers=ann.csrf), 403, "passkey-required")
    r = await live.http.post(pay_two, headers=live.auth("buyer", ann.id))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("extra_settings", [{"buy_confirm": "none"}])
async def test_buy_confirm_none_asks_no_passkey(live: Live, people: Any) -> None:
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    ann, _ = await buyer_with_passkey(live, people, "none@example.com")
    assert (await ann.http.get("/auth/session")).json()["buy_confirm"] == "none"
    r = await ann.http.post("/api/v1/buy", json={"product_id": product["id"],
                                                 "stream_id": stream["id"]},
                            headers={**ann.csrf, "Idempotency-Key": idem()})
    assert r.status_code == 201, r.text


async def test_a_comment_gives_no_passkey_so_a_buy_claim_is_held_in_the_cart(
        live: Live, people: Any) -> None:
    """Comment-to-buy in `buy` mode pays at once, but not for a buyer whose purchases need
    the passkey: the claim is held in the cart, paid (and confirmed) there (docs/chat.md)."""
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    r = await live.http.patch(f"/api/v1/streams/{stream['id']}/chat/settings",
                              json={"claim_mode": "buy"}, headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    ann, _ = await buyer_with_passkey(live, people, "claim@example.com")
    async with connect(room_url(live, stream["id"], live.token("buyer", ann.id))) as ws:
        await recv_until(ws, "snapshot")
        notice = await claim(ws, "SOLD 1")
    assert notice["code"] == "claim.claimed", notice
    assert notice["data"]["mode"] == "cart" and notice["data"]["held"] is True
    levels = (await stock_of(live, product["id"]))["default"]
    assert (levels["sold"], levels["held"]) == (0, 1)


# ---------------------------------------------------------------- bad input


GARBAGE = ["A", "AA", "_-_-", b64(b"\xff\xfe\x00"), b64(b"[]"), b64(b'"x"'), b64(b"null"),
           b64(b'{"type": 1, "challenge": [], "origin": {}}'),
           b64(b'{"type": "webauthn.get", "challenge": "!!", "origin": "x"}'),
           b64(encode_cbor({"fmt": "none"})), b64(encode_cbor([1, 2])), b64(b"\xa1" * 40),
           b64(b"\x00" * 37), b64(b"\x00" * 36), b64(secrets.token_bytes(300))]


@pytest.mark.parametrize("extra_settings", [{"passkey_signin_per_ip": 1000,
                                             "passkey_options_per_account": 1000}])
async def test_garbage_answers_are_4xx_problems_never_500(live: Live, people: Any,
                                                          rclient: redis.Redis) -> None:
    """Each byte field of a well-shaped answer replaced by something that is not what it
    should be (not base64, not JSON, not CBOR, truncated): a 4xx problem, nothing stored."""
    ann: Person = await people("garbage@example.com")
    device = authenticator(live)
    await add_passkey(ann, device)
    failures: list[str] = []

    async def check(label: str, r: httpx.Response) -> None:
        if not 400 <= r.status_code < 500 or r.headers.get("content-type") != "application/problem+json":
            failures.append(f"{label}: {r.status_code} {r.text[:120]}")

    for field in ("clientDataJSON", "attestationObject"):
        for value in GARBAGE:
            credential = authenticator(live).create(await creation_options(ann))
            credential["response"][field] = value
            await check(f"register {field}={value[:12]}", await ann.http.post(
                "/auth/passkeys", json={"credential": credential}, headers=ann.csrf))
    for field in ("clientDataJSON", "authenticatorData", "signature", "userHandle"):
        for value in GARBAGE:
            credential = device.get(await signin_options(live.http))
            credential["response"][field] = value
            await check(f"sign in {field}={value[:12]}", await live.http.post(
                "/auth/passkey/verify", json={"credential": credential}))
    for value in ("A" * 1400, "AAAA"):
        credential = device.get(await signin_options(live.http))
        credential["id"] = credential["rawId"] = value
        await check(f"sign in id={value[:12]}", await live.http.post(
            "/auth/passkey/verify", json={"credential": credential}))
    assert failures == [], "\n".join(failures)
    assert [p.id for p in await live.services.passkeys.store.list(ann.id)] == [device.id]
    assert len(await rclient.keys("lc:{pk:*")) == 1
