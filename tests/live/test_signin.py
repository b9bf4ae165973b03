"""Email sign-in end to end against a real node, a real SMTP server (aiosmtpd) reading the
mail, and the real Valkey: the code and the link, one account per email, enumeration
safety, the attempt cap, expiry, single use, rate limits, a mail server that is down, the
log mailer, and bad input on every /auth body."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis.asyncio as redis
from conftest import UNIT, Live
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from shop import db_state
from test_bad_input import (ASSERTION_SHAPE, ATTESTATION_SHAPE, RAW_BODIES, assert_problem,
                            mutations, state_diff)

from live.accounts.emails import normalise_email
from live.accounts.keys import challenge_key
from live.node.app import build_auth_api
from live.web.auth_api import safe_next

AUTH_DOC = build_auth_api().openapi()


@pytest.fixture
def extra_settings() -> dict[str, Any]:
    """Parametrize to change the node's settings for one test."""
    return {}


@pytest.fixture
def node_settings(smtp: Inbox, extra_settings: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url, **extra_settings}


@pytest.fixture
async def browser_like(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    """A second client with its own cookie jar (a person's browser)."""
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as client:
        yield client


async def start(client: httpx.AsyncClient, email: str, **extra: Any) -> httpx.Response:
    return await client.post("/auth/email/start", json={"email": email, **extra})


def session_cookie(r: httpx.Response) -> str:
    """The session token a response sets."""
    match = re.match(r"lc_session=([^;]*);", r.headers.get("set-cookie", ""))
    assert match, r.headers
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, inbox: Inbox, email: str) -> dict[str, Any]:
    """Sign `client` in by email with the mailed code; returns the verify answer, with the
    session's token under "cookie"."""
    r = await start(client, email)
    assert r.status_code == 202, r.text
    mail = await inbox.next_mail(normalise_email(email))
    r = await client.post("/auth/email/verify",
                          json={"challenge": r.json()["challenge"], "code": mail.code})
    assert r.status_code == 200, r.text
    return {**r.json(), "cookie": session_cookie(r)}


# ---------------------------------------------------------------- the flow


async def test_the_mailed_code_signs_in_and_makes_one_account(live: Live, smtp: Inbox) -> None:
    r = await start(live.http, "  Ann@Example.COM ")
    assert r.status_code == 202, r.text
    assert set(r.json()) == {"challenge", "expires_in_s"} and r.json()["expires_in_s"] == 900
    mail = await smtp.next_mail("Ann@example.com")  # the domain lowercased, the rest kept
    assert mail.message["Subject"] == f"Your livecart sign-in code: {mail.code}"
    assert mail.message["From"] == live.services.settings.mail_from
    assert "15 minutes" in mail.text

    r = await live.http.post("/auth/email/verify",
                             json={"challenge": r.json()["challenge"], "code": mail.code})
    assert r.status_code == 200, r.text
    body = r.json()
    account = body["account"]
    assert account["id"].startswith("u_") and len(account["id"]) == 34
    assert account["email"] == "Ann@example.com" and body["new_account"] is True
    assert account["grants"] == [f"buyer:{account['id']}"]
    assert body["active"] == f"buyer:{account['id']}"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("lc_session=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", f"Max-Age={30 * 24 * 3600}"):
        assert attribute in cookie
    assert "Secure" not in cookie  # the node's URL is http here

    session = (await live.http.get("/auth/session")).json()
    assert session == {"signed_in": True, "account": account, "active": body["active"],
                       "csrf": body["csrf"], "buy_confirm": "none"}

    # The same person again, spelled otherwise (full-width letters fold under NFKC): the same
    # account, a new session.
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as other:
        again = await sign_in(other, smtp, "Ann@ＥＸＡＭＰＬＥ.com")
    assert again["account"]["id"] == account["id"] and again["new_account"] is False
    assert again["csrf"] != body["csrf"]


async def test_the_mailed_link_signs_in_once(live: Live, smtp: Inbox) -> None:
    r = await start(live.http, "bob@example.com", next="/s/stream-1?x=1")
    mail = await smtp.next_mail("bob@example.com")
    link = urlsplit(mail.link)
    assert f"{link.scheme}://{link.netloc}" == live.url  # where the request came (loopback)
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert query["challenge"] == r.json()["challenge"] and query["next"] == "/s/stream-1?x=1"

    # Opening the link only serves the page (a mail scanner's fetch spends nothing)...
    page = await live.http.get(f"{link.path}?{link.query}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in page.headers
    # ... whose script posts the token: that signs in, once.
    answer = {"challenge": query["challenge"], "token": query["token"]}
    r = await live.http.post("/auth/email/verify", json=answer)
    assert r.status_code == 200, r.text
    assert r.json()["account"]["email"] == "bob@example.com"
    r = await live.http.post("/auth/email/verify", json=answer)
    assert_problem(r, 410, "signin-expired")
    # The code of a spent challenge is as dead as its link.
    r = await live.http.post("/auth/email/verify", json={"challenge": query["challenge"],
                                                         "code": mail.code})
    assert_problem(r, 410, "signin-expired")


async def test_start_answers_alike_for_known_and_unknown_emails(live: Live, smtp: Inbox,
                                                                rclient: redis.Redis) -> None:
    await sign_in(live.http, smtp, "known@example.com")
    known = await start(live.http, "known@example.com")
    unknown = await start(live.http, "nobody@example.com")
    for r in (known, unknown):
        assert r.status_code == 202
        assert r.headers["content-type"] == "application/json"
        assert "set-cookie" not in r.headers
    assert set(known.json()) == set(unknown.json())
    assert known.json()["expires_in_s"] == unknown.json()["expires_in_s"]
    assert len(known.content) == len(unknown.content)
    # Both get the same mail, but for the code and the link; starting makes no account.
    a, b = await smtp.next_mail("known@example.com"), await smtp.next_mail("nobody@example.com")

    def shape(text: str, mail: Any) -> str:
        return text.replace(mail.code, "CODE").replace(mail.link, "LINK")
    assert shape(a.text, a) == shape(b.text, b)
    assert await live.services.accounts.find("nobody@example.com") is None
    # What is stored for each challenge has the same fields (none says "known").
    fields = [sorted(await rclient.hkeys(challenge_key(r.json()["challenge"])))
              for r in (known, unknown)]
    assert fields[0] == fields[1]


async def test_codes_and_tokens_are_stored_hashed(live: Live, smtp: Inbox,
                                                  rclient: redis.Redis) -> None:
    r = await start(live.http, "hash@example.com")
    mail = await smtp.next_mail("hash@example.com")
    token = parse_qs(urlsplit(mail.link).query)["token"][0]
    everything = json.dumps({k.decode(): str(v) for k, v in (await db_state(rclient)).items()})
    assert mail.code not in everything and token not in everything
    assert "hash@example.com" in everything  # the challenge keeps the address to sign in
    assert "hash@example.com" not in "".join(k.decode() for k in await rclient.keys("*"))
    assert r.status_code == 202


# ---------------------------------------------------------------- refusals


async def test_wrong_codes_are_capped_per_challenge(live: Live, smtp: Inbox) -> None:
    r = await start(live.http, "cap@example.com")
    challenge = r.json()["challenge"]
    right = (await smtp.next_mail("cap@example.com")).code
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1, 0):
        r = await live.http.post("/auth/email/verify", json={"challenge": challenge, "code": wrong})
        assert_problem(r, 400, "wrong-code")
        assert r.json()["attempts_left"] == left
    # Locked: even the right code does not sign in now.
    r = await live.http.post("/auth/email/verify", json={"challenge": challenge, "code": right})
    assert_problem(r, 429, "too-many-attempts")
    assert "set-cookie" not in r.headers


async def test_expired_and_unknown_challenges_are_refused(live: Live, smtp: Inbox,
                                                          rclient: redis.Redis) -> None:
    r = await start(live.http, "late@example.com")
    challenge = r.json()["challenge"]
    code = (await smtp.next_mail("late@example.com")).code
    # Fifteen minutes pass (the challenge's own expiry, moved into the past).
    await rclient.hset(challenge_key(challenge), "expires_ms", 1)
    r = await live.http.post("/auth/email/verify", json={"challenge": challenge, "code": code})
    assert_problem(r, 410, "signin-expired")
    assert not await rclient.exists(challenge_key(challenge))
    r = await live.http.post("/auth/email/verify", json={"challenge": "c_" + "f" * 32,
                                                         "code": "000000"})
    assert_problem(r, 410, "signin-expired")


@pytest.mark.parametrize("extra_settings", [{"signin_per_email": 2, "signin_per_ip": 4,
                                             "signin_verify_per_challenge": 2}])
async def test_sign_in_is_rate_limited(live: Live, smtp: Inbox, rclient: redis.Redis) -> None:
    for _ in range(2):
        assert (await start(live.http, "rate@example.com")).status_code == 202
    r = await start(live.http, "RATE@example.com".lower())
    assert_problem(r, 429, "too-many-requests")
    window = live.services.settings.signin_limit_window_s
    assert 0 < int(r.headers["retry-after"]) <= window
    assert r.json()["retry_after_s"] == int(r.headers["retry-after"])
    # Per client address: 4 starts from here in the window, whatever the address.
    assert (await start(live.http, "other@example.com")).status_code == 202
    before = await db_state(rclient)
    r = await start(live.http, "third@example.com")
    assert_problem(r, 429, "too-many-requests")
    changed = state_diff(before, await db_state(rclient))
    assert all(b":{rl:" in k for k in changed), changed  # only the counters moved
    assert len(smtp.to("third@example.com")) == 0
    # Verify calls per challenge.
    challenge = (await rclient.keys("lc:{ch:*"))[0].decode().split(":")[2].rstrip("}")
    for status in (400, 400, 429):
        r = await live.http.post("/auth/email/verify",
                                 json={"challenge": challenge, "code": "999999"})
        assert r.status_code in ((status, 410) if status == 400 else (429,)), r.text
    assert r.json()["type"].endswith("too-many-requests") and "retry-after" in r.headers


@pytest.mark.parametrize("extra_settings", [{"smtp_url": "smtp://127.0.0.1:9", "mail_timeout_s": 2}])
async def test_a_mail_server_that_is_down_is_a_503_problem(live: Live) -> None:
    r = await start(live.http, "down@example.com")
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/mail-unavailable") and r.headers["retry-after"] == "30"


@pytest.mark.parametrize("extra_settings", [{"smtp_url": None}])
async def test_without_smtp_the_mail_is_logged(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="live.accounts.mail"):
        r = await start(live.http, "local@example.com")
    assert r.status_code == 202
    [record] = [rec for rec in caplog.records if rec.name == "live.accounts.mail"]
    assert record.levelno == logging.INFO
    text = record.getMessage()
    assert "local@example.com" in text and "sign-in code is" in text
    assert f"{live.url}/auth/email/verify?challenge={r.json()['challenge']}&token=" in text


async def test_bad_email_addresses_are_422(live: Live, rclient: redis.Redis) -> None:
    before = await db_state(rclient)
    for bad in ("", "   ", "no-at-sign", "a@b", "a@@example.com", "<a@example.com>",
                "Ann <a@example.com>", "a@[127.0.0.1]", "a" * 250 + "@example.com",
                "a@example.com\r\nBcc: x@example.com", "\x00@example.com"):
        r = await start(live.http, bad)
        assert_problem(r, 422)
        assert r.json()["type"].rsplit("/", 1)[1] in ("invalid-email", "validation-error"), bad
    assert state_diff(before, await db_state(rclient)) == []


async def test_bad_bodies_on_every_auth_endpoint(live: Live, rclient: redis.Redis) -> None:
    """The sweep of tests/test_bad_input.py over the /auth bodies: 4xx problems, no change.
    The page session's own endpoints are called signed in (else they answer 401 first)."""
    valid = {"EmailStartIn": {"email": "bob@example.com", "next": "/"},
             "EmailVerifyIn": {"challenge": "c_" + "0" * 32, "code": "123456"},
             "ActIn": {"grant": "buyer:bob"}, "AccountIn": {"display_name": "Bob"},
             "PasskeyIn": {"credential": ATTESTATION_SHAPE, "name": "Phone"},
             "PasskeySignInIn": {"credential": ASSERTION_SHAPE},
             "AcceptIn": {"token": "inv_" + "0" * 24 + "." + "a" * 43}}
    schemas = AUTH_DOC["components"]["schemas"]
    failures = []
    account, _ = await live.services.accounts.sign_in("sweep@example.com")
    token, session = await live.services.sessions.create(account.id, account.buyer_grant)
    page = {"Cookie": f"lc_session={token}", "X-CSRF-Token": session.csrf}
    before = await db_state(rclient)
    for path, ops in AUTH_DOC["paths"].items():
        for method, op in ops.items():
            if "requestBody" not in op:
                continue
            name = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/")[-1]
            own = page if op.get("security") == [{"session": []}] else {}
            bodies = [(label, raw, status) for label, raw, status in RAW_BODIES]
            bodies += [(label, json.dumps(b).encode(), 422)
                       for label, b in mutations(schemas[name], valid[name])]
            for label, raw, status in bodies:
                r = await live.http.request(method.upper(), path, content=raw,
                                            headers={"Content-Type": "application/json", **own})
                if r.status_code != status or r.headers.get("content-type") != "application/problem+json":
                    failures.append(f"{method} {path} {label}: {r.status_code} {r.text[:120]}")
            r = await live.http.request(method.upper(), path, content=b"{}",
                                        headers={"Content-Type": "text/plain", **own})
            if r.status_code != 415:
                failures.append(f"{method} {path} text/plain: {r.status_code}")
    # Both a code and a token, or neither: one answer only.
    for body in ({"challenge": "c_" + "0" * 32}, {"challenge": "c_" + "0" * 32, "code": "123456",
                                                  "token": "a" * 43}):
        r = await live.http.post("/auth/email/verify", json=body)
        if r.status_code != 422:
            failures.append(f"verify {body}: {r.status_code}")
    assert failures == [], "\n".join(failures)
    assert state_diff(before, await db_state(rclient)) == []


def test_safe_next_keeps_only_paths_on_this_node() -> None:
    for good in ("/", "/s/abc", "/s/abc?x=1&y=%2F", "/signin#top"):
        assert safe_next(good) == good
    for bad in (None, "", "s/abc", "//evil.example/x", "/\\evil.example", "\\\\evil.example",
                "https://evil.example/", "javascript:alert(1)", "/\t/evil.example",
                "/\n/evil.example", "http:/evil.example", " /s/abc", "/s\x00/x"):
        assert safe_next(bad) == "/", bad
