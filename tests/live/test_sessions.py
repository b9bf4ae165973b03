"""Page sessions against a real node: fixation, CSRF and Origin on every change a cookie
makes, sign-out, one buyer's session never reaching another's wallet or orders, acting as
another grant, and the hub ticket."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as redis
from conftest import UNIT, Live
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from shop import db_state, idem, make_brand, make_live_stream, make_product
from test_bad_input import assert_problem, state_diff
from websockets.asyncio.client import connect

from live.accounts.accounts import Grant
from live.accounts.keys import account_sessions_key
from live.accounts.auth import Role
from live.node.app import openapi_document
from live.settings import Settings

from test_signin import sign_in


def with_cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"lc_session={token}"}

DOC = openapi_document(Settings())
# Every change a cookie could authenticate: the protected /api/v1 ones and the session's own.
# Those of the session check the session after the body, so they get a well-formed one.
SESSION_BODIES = {"/auth/signout": b"{}", "/auth/act": b'{"grant": "buyer:x"}',
                  "/auth/ticket": b"{}",
                  "/auth/invitations/accept": b'{"token": "inv_%s.%s"}' % (b"0" * 24, b"a" * 43)}
CHANGES = sorted((method.upper(), path) for path, ops in DOC["paths"].items()
                 for method, op in ops.items()
                 if method != "get" and ("security" in op or path in SESSION_BODIES))
WALLET = {"shipping": {"name": "Ann", "line1": "1 St", "city": "X", "postal_code": "1",
                       "country": "US"}, "payment_token": "tok_visa"}


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url}


class Person:
    """A browser: its own cookie jar, signed in by email; sends the CSRF header on changes."""

    def __init__(self, client: httpx.AsyncClient, session: dict[str, Any]) -> None:
        self.http = client
        self.session = session

    @property
    def id(self) -> str:
        return str(self.session["account"]["id"])

    @property
    def csrf(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.session["csrf"]}

    @property
    def cookie(self) -> str:
        return str(self.session["cookie"])


@pytest.fixture
async def people(live: Live, smtp: Inbox) -> AsyncIterator[Callable[[str], Awaitable[Person]]]:  # noqa: F811
    clients: list[httpx.AsyncClient] = []

    async def person(email: str) -> Person:
        client = httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT)
        clients.append(client)
        return Person(client, await sign_in(client, smtp, email))

    yield person
    for client in clients:
        await client.aclose()


def fill(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: "p_x.00" if m.group(1) == "order" else "x", path)


# ---------------------------------------------------------------- fixation, sign-out


async def test_a_sign_in_never_keeps_the_session_id_it_found(live: Live, smtp: Inbox,  # noqa: F811
                                                             rclient: redis.Redis) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as browser:
        # An attacker plants a cookie of its choosing: it is not the signed-in one.
        planted = "A" * 43
        browser.cookies.set("lc_session", planted)
        first = await sign_in(browser, smtp, "fix@example.com")
        after = first["cookie"]
        assert after != planted
        browser.cookies.clear()
        browser.cookies.set("lc_session", after)
        # Signing in again (another account, same browser) rotates it again and ends the
        # session the browser had: the old cookie is dead.
        second = await sign_in(browser, smtp, "fix2@example.com")
        rotated = second["cookie"]
        assert rotated not in (after, planted) and second["csrf"] != first["csrf"]
        r = await live.http.get("/auth/session", headers=with_cookie(after))
        assert r.json() == {"signed_in": False}
        assert "lc_session=;" in r.headers["set-cookie"]  # and the dead cookie is dropped
        r = await live.http.get("/api/v1/me/wallet", headers=with_cookie(after))
        assert_problem(r, 401, "unauthorized")
        assert (await live.http.get("/auth/session", headers=with_cookie(rotated))).json()[
            "account"]["email"] == "fix2@example.com"
    # Valkey holds sessions under the token's hash, never the token.
    keys = b" ".join(await rclient.keys("*"))
    assert rotated.encode() not in keys and after.encode() not in keys


async def test_sign_out_revokes_the_session(live: Live, people: Any) -> None:
    ann = await people("out@example.com")
    cookie = ann.cookie
    assert (await ann.http.get("/auth/session")).json()["signed_in"] is True
    r = await ann.http.post("/auth/signout", headers=ann.csrf)
    assert r.status_code == 204
    assert "lc_session=;" in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    for method, path in (("GET", "/api/v1/me/wallet"), ("GET", "/api/v1/me/orders"),
                         ("POST", "/auth/ticket")):
        r = await live.http.request(method, path, headers={**with_cookie(cookie), **ann.csrf})
        assert_problem(r, 401, "unauthorized")
    r = await live.http.get("/auth/session", headers=with_cookie(cookie))
    assert r.json() == {"signed_in": False}
    # Signing out without a session is harmless.
    r = await live.http.post("/auth/signout")
    assert r.status_code == 204


async def test_sign_out_everywhere_ends_every_session_of_the_account_only(
        live: Live, people: Any, rclient: redis.Redis) -> None:
    """A lost phone: from one browser the buyer ends the sessions of all of them; another
    account's session lives on, and the call needs the session's CSRF token."""
    laptop, phone = await people("lost@example.com"), await people("lost@example.com")
    other = await people("other@example.com")
    assert laptop.id == phone.id != other.id
    r = await laptop.http.post("/auth/signout-everywhere")  # no CSRF token
    assert_problem(r, 403, "csrf-failed")
    assert_problem(await live.http.post("/auth/signout-everywhere"), 401, "unauthorized")
    r = await laptop.http.post("/auth/signout-everywhere", headers=laptop.csrf)
    assert r.status_code == 200 and r.json() == {"ended": 2}, r.text
    assert "lc_session=;" in r.headers["set-cookie"]
    for person in (laptop, phone):
        r = await live.http.get("/auth/session", headers=with_cookie(person.cookie))
        assert r.json() == {"signed_in": False}
        r = await live.http.get("/api/v1/me/orders", headers=with_cookie(person.cookie))
        assert_problem(r, 401, "unauthorized")
    assert (await other.http.get("/auth/session")).json()["signed_in"] is True
    assert await rclient.zcard(account_sessions_key(laptop.id)) == 0
    # Signing in again works as ever.
    again = await people("lost@example.com")
    assert (await again.http.get("/auth/session")).json()["signed_in"] is True


async def test_the_account_names_itself(live: Live, people: Any) -> None:
    ann = await people("named@example.com")
    r = await ann.http.patch("/auth/account", json={"display_name": "  Rene\u0301e Lee "},
                             headers=ann.csrf)
    assert r.status_code == 200, r.text
    assert r.json()["display_name"] == "Ren\u00e9e Lee"  # NFC, trimmed
    r = await ann.http.get("/auth/session")
    assert r.json()["account"]["display_name"] == "Ren\u00e9e Lee"
    for bad in ("x" * 81, "Ann\u202eeL", "Ann\nLee", "\u200bAnn"):
        r = await ann.http.patch("/auth/account", json={"display_name": bad}, headers=ann.csrf)
        assert_problem(r, 422, "invalid-display-name")
    assert_problem(await ann.http.patch("/auth/account", json={"display_name": "Evil"}),
                   403, "csrf-failed")
    assert_problem(await live.http.patch("/auth/account", json={"display_name": "Evil"}),
                   401, "unauthorized")
    r = await ann.http.patch("/auth/account", json={"display_name": ""}, headers=ann.csrf)
    assert r.status_code == 200 and r.json()["display_name"] == ""


# ---------------------------------------------------------------- CSRF and Origin


def unseen(state: dict[bytes, Any]) -> dict[bytes, Any]:
    """`state` without the sessions' last-seen time: reading a session refreshes it once a
    minute (sessions.py), refused request or not, and a slow run crosses that minute."""
    return {key: ({f: v for f, v in value.items() if f != b"seen_ms"}
                  if key.endswith(b":session") and isinstance(value, dict) else value)
            for key, value in state.items()}


async def test_every_change_by_cookie_needs_the_csrf_token_and_our_origin(
        live: Live, people: Any, rclient: redis.Redis) -> None:
    ann = await people("csrf@example.com")
    assert len(CHANGES) > 25
    assert ("PUT", "/api/v1/me/wallet") in CHANGES and ("POST", "/api/v1/buy") in CHANGES
    assert {("POST", "/api/v1/invitations"), ("DELETE", "/api/v1/invitations/{invitation}"),
            ("DELETE", "/api/v1/brands/{brand}/team/{account}"),
            ("DELETE", "/api/v1/creators/{creator}/moderators/{account}"),
            ("POST", "/auth/invitations/accept")} <= set(CHANGES)
    failures = []
    before = await db_state(rclient)
    # The session's token with its first character changed: always another token (writing
    # "x" over the first character left the real one, 1 time in 64, when it began with "x").
    token = ann.session["csrf"]
    wrong_csrf = ("y" if token[0] == "x" else "x") + token[1:]
    for method, path in CHANGES:
        for label, headers, kind in (
                ("no token", {}, "csrf-failed"),
                ("wrong token", {"X-CSRF-Token": wrong_csrf}, "csrf-failed"),
                ("another session's token", {"X-CSRF-Token": "A" * 43}, "csrf-failed"),
                ("foreign Origin", {**ann.csrf, "Origin": "https://evil.example"},
                 "origin-not-allowed"),
                ("null Origin", {**ann.csrf, "Origin": "null"}, "origin-not-allowed")):
            # A well-formed body where the check comes after the body's (the session's own
            # endpoints): either way nothing changes before the check.
            body = SESSION_BODIES.get(path, b"{}")
            r = await ann.http.request(method, fill(path), headers={
                **headers, "Content-Type": "application/json"}, content=body)
            if r.status_code != 403 or not r.json()["type"].endswith("/" + kind):
                failures.append(f"{method} {path} {label}: {r.status_code} {r.text[:100]}")
    assert failures == [], "\n".join(failures)
    assert state_diff(unseen(before), unseen(await db_state(rclient))) == []
    # With the token and our own Origin, the same cookie makes the change.
    r = await ann.http.put("/api/v1/me/wallet", json=WALLET,
                           headers={**ann.csrf, "Origin": live.url})
    assert r.status_code == 200, r.text
    # Reads need no token; a bearer token needs no CSRF (it is not ambient).
    assert (await ann.http.get("/api/v1/me/wallet")).status_code == 200
    r = await live.http.put("/api/v1/me/wallet", json=WALLET, headers=live.auth("buyer", ann.id))
    assert r.status_code == 200


async def test_sign_in_refuses_another_sites_origin(live: Live, smtp: Inbox) -> None:  # noqa: F811
    """No login CSRF: another site cannot start or finish a sign-in in someone's browser."""
    evil = {"Origin": "https://evil.example"}
    r = await live.http.post("/auth/email/start", json={"email": "x@example.com"}, headers=evil)
    assert_problem(r, 403, "origin-not-allowed")
    r = await live.http.post("/auth/email/start", json={"email": "x@example.com"},
                             headers={"Origin": live.url})
    assert r.status_code == 202
    code = (await smtp.next_mail("x@example.com")).code
    body = {"challenge": r.json()["challenge"], "code": code}
    r = await live.http.post("/auth/email/verify", json=body, headers=evil)
    assert_problem(r, 403, "origin-not-allowed")
    assert "set-cookie" not in r.headers


# ---------------------------------------------------------------- one buyer, one wallet


async def test_a_buyers_session_never_reaches_another_buyers_wallet_or_orders(
        live: Live, people: Any) -> None:
    ann, bob = await people("ann@example.com"), await people("bob@example.com")
    assert ann.id != bob.id
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    r = await ann.http.put("/api/v1/me/wallet", json=WALLET, headers=ann.csrf)
    assert r.status_code == 200, r.text
    r = await ann.http.post("/api/v1/buy", headers={**ann.csrf, "Idempotency-Key": idem()},
                            json={"product_id": product["id"], "stream_id": stream["id"]})
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    assert order["buyer"] == ann.id

    assert_problem(await bob.http.get("/api/v1/me/wallet"), 409, "wallet-missing")
    assert (await bob.http.get("/api/v1/me/orders")).json()["items"] == []
    assert_problem(await bob.http.get(f"/api/v1/orders/{order['id']}"), 404, "not-found")
    r = await bob.http.post(f"/api/v1/orders/{order['id']}/pay", headers=bob.csrf)
    assert_problem(r, 404, "not-found")
    await live.services.aggregator.drain()  # the buyer's order list follows the outbox
    assert (await bob.http.get("/api/v1/me/orders")).json()["items"] == []
    mine = (await ann.http.get("/api/v1/me/orders")).json()["items"]
    assert [o["id"] for o in mine] == [order["id"]]
    assert (await ann.http.get(f"/api/v1/orders/{order['id']}")).status_code == 200
    # A session acts as its own buyer only: the role matrix still holds.
    r = await ann.http.post("/api/v1/brands", headers=ann.csrf,
                            json={"id": "annco", "name": "AnnCo", "currency": "USD"})
    assert_problem(r, 403, "forbidden")


# ---------------------------------------------------------------- grants and tickets


async def test_act_switches_among_the_accounts_own_grants(live: Live, people: Any) -> None:
    cleo = await people("cleo@example.com")
    r = await cleo.http.post("/auth/act", json={"grant": "creator:cleo"}, headers=cleo.csrf)
    assert_problem(r, 403, "grant-not-held")
    await live.services.accounts.grant(cleo.id, Grant(Role.CREATOR, "cleo"))
    r = await cleo.http.post("/auth/act", json={"grant": "creator:cleo"}, headers=cleo.csrf)
    assert r.status_code == 200, r.text
    assert r.json()["active"] == "creator:cleo"
    assert sorted(r.json()["account"]["grants"]) == sorted([f"buyer:{cleo.id}", "creator:cleo"])
    await make_brand(live)
    product = await make_product(live)
    r = await cleo.http.post("/api/v1/streams", headers=cleo.csrf,
                             json={"title": "Mine", "lineup": [product["id"]]})
    assert r.status_code == 201, r.text
    assert r.json()["creator_id"] == "cleo"
    for grant in ("brand:acme", "operator:ops", f"buyer:{'u_' + '0' * 32}"):
        r = await cleo.http.post("/auth/act", json={"grant": grant}, headers=cleo.csrf)
        assert_problem(r, 403, "grant-not-held")
    r = await cleo.http.post("/auth/act", json={"grant": "wizard:cleo"}, headers=cleo.csrf)
    assert_problem(r, 422, "unknown-grant")
    # A revoked grant stops at once, in the session acting with it.
    await live.services.accounts.revoke(cleo.id, Grant(Role.CREATOR, "cleo"))
    assert (await cleo.http.get("/auth/session")).json()["active"] == f"buyer:{cleo.id}"
    r = await cleo.http.post("/api/v1/streams", headers=cleo.csrf,
                             json={"title": "Mine", "lineup": [product["id"]]})
    assert_problem(r, 403, "forbidden")


async def test_a_ticket_opens_the_hub_as_the_session(live: Live, people: Any) -> None:
    ann = await people("ticket@example.com")
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    assert_problem(await ann.http.post("/auth/ticket"), 403, "csrf-failed")
    r = await ann.http.post("/auth/ticket", headers=ann.csrf)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["role"], body["subject"], body["expires_in_s"]) == ("buyer", ann.id, 60)
    principal = live.services.tokens.verify(body["ticket"])
    assert (principal.role, principal.subject) == (Role.BUYER, ann.id)
    url = f"{live.ws_url}/ws/streams/{stream['id']}?access_token={body['ticket']}"
    async with connect(url, origin=live.url) as socket:  # type: ignore[arg-type]
        first = orjson.loads(await socket.recv())
        assert first["type"] == "snapshot"


async def test_garbage_cookies_are_4xx_never_500(live: Live) -> None:
    for cookie in ("", "x", "A" * 42, "A" * 44, "%C3%A9" * 8, "A" * 4000, "%00" * 20, "a;b",
                   '"' + "A" * 43 + '"'):
        for method, path in (("GET", "/auth/session"), ("GET", "/api/v1/me/wallet"),
                             ("POST", "/auth/ticket"), ("POST", "/auth/signout"),
                             ("PUT", "/api/v1/me/wallet")):
            r = await live.http.request(method, path, headers={"Cookie": f"lc_session={cookie}"},
                                        json=WALLET if method == "PUT" else None)
            assert r.status_code < 500, (cookie, path, r.text)
            if path == "/auth/session":
                assert r.json() == {"signed_in": False}
            elif path != "/auth/signout":
                assert_problem(r, 401, "unauthorized")
