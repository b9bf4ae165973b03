"""The role matrix over real HTTP: who may call what, and that a refusal changes nothing.

- Tokens that prove nothing (missing, garbage, expired, forged, `alg: none`, wrong audience
  or issuer, unknown role) get 401 on every protected endpoint the OpenAPI document lists.
- A valid token whose role the document does not name for an endpoint gets 403 there.
- Ownership: a brand acts only for itself, a creator only on its own streams and for
  products it may promote, a buyer sees only its own orders (404: we do not reveal them).
Every refusal is checked against the whole Valkey keyspace, before and after.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal, Self

import httpx
import jwt
import redis.asyncio as redis
from conftest import TEST_SECRET, UNIT, Live
from jwt.warnings import InsecureKeyLengthWarning
from websockets.asyncio.client import connect
from shop import db_state, give_wallet, idem, make_brand, make_product, png, stock_of

from live.node.app import build_api
from live.accounts.accounts import Grant
from live.accounts.auth import Role, TokenAuthority
from live.accounts.teams import Member
from live.web.problems import PROBLEM_BASE

DOC = build_api().openapi()
PROTECTED = sorted(
    (method.upper(), path, re.fullmatch(r"roles: (.+)", op["description"]).group(1).split(", "))
    for path, ops in DOC["paths"].items() for method, op in ops.items() if "security" in op)
SUBJECT = {"operator": "ops", "brand": "acme", "creator": "cleo", "buyer": "bob",
           "moderator": "cleo"}  # a moderator of cleo's streams


# ---------------------------------------------------------------- helpers


def assert_problem(r: httpx.Response, status: int, kind: str | None = None) -> None:
    where = f"{r.request.method} {r.request.url.path}"
    assert r.status_code == status, f"{where}: {r.status_code} {r.text[:300]}"
    assert r.headers["content-type"] == "application/problem+json", where
    body = r.json()
    assert body["status"] == status and body["type"].startswith(PROBLEM_BASE), (where, body)
    if kind is not None:
        assert body["type"] == PROBLEM_BASE + kind, (where, body)


class Unchanged:
    """`async with Unchanged(rclient):` fails if anything in Valkey changed inside."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.before: dict[bytes, Any] = {}

    async def __aenter__(self) -> Self:
        self.before = await db_state(self.client)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            after = await db_state(self.client)
            changed = sorted(k for k in self.before.keys() | after.keys()
                             if self.before.get(k) != after.get(k))
            assert changed == [], f"a refused call changed {changed}"


# The after-sale moves with a body (live/web/fulfil_api.py), each valid on bob's paid order.
AFTER_SALE_BODIES = [("/ship", {"carrier": "UPS", "tracking_number": "1Z1"}),
                     ("/refund", {"amount_minor": 100}), ("/return", {"approve": False})]


@dataclass
class World:
    a_open: str  # acme, open commission, in both streams' lineups
    a_invited: str  # acme, invite-only commission, invites nobody yet
    b_open: str  # bravo's product
    cleo_stream: str  # live
    dana_stream: str  # live
    bob_order: str  # bob's paid order of a_open, sold in cleo's stream


async def make_world(live: Live) -> World:
    await make_brand(live, "acme")
    await make_brand(live, "bravo")
    a_open = (await make_product(live, "acme"))["id"]
    a_invited = (await make_product(live, "acme", sku="INV", commission_mode="invited"))["id"]
    b_open = (await make_product(live, "bravo", sku="B-1"))["id"]
    streams = {}
    for creator in ("cleo", "dana"):
        auth = live.auth("creator", creator)
        r = await live.http.post("/api/v1/streams", headers=auth,
                                 json={"title": creator, "lineup": [a_open]})
        assert r.status_code == 201, r.text
        streams[creator] = r.json()["id"]
        r = await live.http.post(f"/api/v1/streams/{streams[creator]}/live", headers=auth)
        assert r.status_code == 200, r.text
    for buyer in ("bob", "eve"):
        await give_wallet(live, buyer)
    r = await live.http.post("/api/v1/buy", headers={**live.auth("buyer", "bob"),
                                                      "Idempotency-Key": idem()},
                             json={"product_id": a_open, "stream_id": streams["cleo"]})
    assert r.status_code == 201, r.text
    await live.services.aggregator.drain()
    return World(a_open, a_invited, b_open, streams["cleo"], streams["dana"],
                 r.json()["order"]["id"])


def fill(path: str, world: World) -> str:
    values = {"brand": "acme", "product": world.a_open, "variant": "default",
              "stream": world.cleo_stream, "order": world.bob_order, "creator": "cleo",
              "item": "ci_000000000000", "session": "no-such-session",
              "address": "ad_000000000000", "card": "cd_000000000000",
              "invitation": "inv_" + "0" * 24, "account": "u_" + "0" * 32, "key": "0" * 16,
              "endpoint": "we_" + "0" * 16, "delivery": "dl_0", "image": "0" * 64,
              "message": "1-0", "held": "h1", "user": "buyer:bob",
              "auction": "a_000000000000"}
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _hs512(claims: dict[str, Any]) -> str:
    """Right secret, wrong algorithm: the pinned HS256 must refuse it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # our secret is HS256-sized
        return jwt.encode(claims, TEST_SECRET, algorithm="HS512")


def bad_credentials(live: Live) -> list[tuple[str, str | None]]:
    """(label, Authorization header) pairs that must all be 401; each claims operator."""
    now = int(time.time())
    claims = {"iss": "livecart", "aud": "livecart-api", "sub": "ops", "role": "operator",
              "iat": now, "nbf": now, "exp": now + 3600, "jti": "j1"}
    good = live.token("operator", "ops")
    return [
        ("missing", None),
        ("empty", ""),
        ("scheme only", "Bearer"),
        ("garbage", "Bearer garbage"),
        ("three dots", "Bearer a.b.c"),
        ("basic auth", "Basic " + base64.b64encode(b"ops:secret").decode()),
        ("token without scheme", good),
        ("two tokens", f"Bearer {good} {good}"),
        ("tampered payload", "Bearer " + ".".join(
            [good.split(".")[0], _b64({**claims, "sub": "someone-else"}), good.split(".")[2]])),
        ("expired", "Bearer " + live.services.tokens.mint(Role.OPERATOR, "ops", ttl_s=1,
                                                          now=now - 3600)),
        ("not yet valid", "Bearer " + live.services.tokens.mint(Role.OPERATOR, "ops",
                                                                ttl_s=7200, now=now + 3600)),
        ("forged", "Bearer " + TokenAuthority("y" * 40).mint(Role.OPERATOR, "ops", ttl_s=3600)),
        ("alg none", f"Bearer {_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."),
        ("alg none, no dot", f"Bearer {_b64({'alg': 'none'})}.{_b64(claims)}"),
        ("HS512", "Bearer " + _hs512(claims)),
        ("wrong audience", "Bearer " + TokenAuthority(TEST_SECRET, audience="other").mint(
            Role.OPERATOR, "ops", ttl_s=3600)),
        ("wrong issuer", "Bearer " + TokenAuthority(TEST_SECRET, issuer="evil").mint(
            Role.OPERATOR, "ops", ttl_s=3600)),
        ("unknown role", "Bearer " + jwt.encode({**claims, "role": "admin"}, TEST_SECRET,
                                                algorithm="HS256")),
        ("no jti", "Bearer " + jwt.encode({k: v for k, v in claims.items() if k != "jti"},
                                          TEST_SECRET, algorithm="HS256")),
        ("string exp", "Bearer " + jwt.encode({**claims, "exp": str(now + 3600)}, TEST_SECRET,
                                              algorithm="HS256")),
        ("bad subject", "Bearer " + jwt.encode({**claims, "sub": "../ops"}, TEST_SECRET,
                                               algorithm="HS256")),
        ("oversized", "Bearer " + "a" * 5000),
    ]


# ---------------------------------------------------------------- 401 and 403 from the document


async def test_bad_tokens_are_401_on_every_protected_endpoint(live: Live,
                                                              rclient: redis.Redis) -> None:
    world = await make_world(live)
    assert len(PROTECTED) > 25
    credentials = bad_credentials(live)
    failures = []
    async with Unchanged(rclient):
        for method, path, _ in PROTECTED:
            for label, value in credentials:
                headers = {} if value is None else {"Authorization": value}
                r = await live.http.request(method, fill(path, world), headers=headers)
                body = r.json() if r.headers.get("content-type") == "application/problem+json" \
                    else {}
                if r.status_code != 401 or body.get("type") != PROBLEM_BASE + "unauthorized":
                    failures.append(f"{method} {path} {label}: {r.status_code} {r.text[:120]}")
    assert failures == [], "\n".join(failures)


async def test_401_carries_a_bearer_challenge(live: Live) -> None:
    r = await live.http.get("/api/v1/me/wallet")
    assert_problem(r, 401, "unauthorized")
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")


async def test_roles_the_document_does_not_name_are_403(live: Live, rclient: redis.Redis) -> None:
    world = await make_world(live)
    failures = []
    checked = 0
    async with Unchanged(rclient):
        for method, path, roles in PROTECTED:
            for role in set(SUBJECT) - set(roles):
                checked += 1
                r = await live.http.request(method, fill(path, world),
                                            headers=live.auth(role, SUBJECT[role]))
                body = r.json() if r.status_code == 403 else {}
                if body.get("type") != PROBLEM_BASE + "forbidden":
                    failures.append(f"{method} {path} as {role}: {r.status_code} {r.text[:120]}")
    assert failures == [], "\n".join(failures)
    assert checked > 40


# ---------------------------------------------------------------- ownership, by hand


async def test_a_buyer_cannot_run_a_shop_or_a_stream(live: Live, rclient: redis.Redis) -> None:
    world = await make_world(live)
    bob = live.auth("buyer", "bob")
    product = {"title": "T", "price_minor": 100, "currency": "USD", "sku": "S"}
    deal = {"product_id": world.a_open, "price_minor": 100, "quantity": 1, "countdown_s": 10,
            "duration_s": 60}
    async with Unchanged(rclient):
        for method, url, body in [
            ("POST", "/api/v1/brands", {"id": "bobco", "name": "B", "currency": "USD"}),
            ("POST", "/api/v1/brands/acme/products", product),
            ("PATCH", f"/api/v1/products/{world.a_open}", {"price_minor": 1}),
            ("PUT", f"/api/v1/products/{world.a_open}/variants/default/stock",
             {"set": 1000, "reason": "free stuff"}),
            ("POST", f"/api/v1/streams/{world.cleo_stream}/pins", {"product_id": world.a_open}),
            ("POST", f"/api/v1/streams/{world.cleo_stream}/deals", deal),
            ("POST", f"/api/v1/streams/{world.cleo_stream}/end", None),
            ("POST", f"/api/v1/streams/{world.cleo_stream}/cover", None),
            ("DELETE", f"/api/v1/streams/{world.cleo_stream}/cover", None),
            ("POST", f"/api/v1/orders/{world.bob_order}/refund", None),
            ("GET", "/api/v1/brands/acme/report", None),
            ("GET", "/api/v1/brands/acme/products?status=archived", None),
            ("POST", f"/api/v1/products/{world.a_open}/variants", {"id": "free", "name": "F"}),
            ("POST", f"/api/v1/products/{world.a_open}/images", None),
        ]:
            r = await live.http.request(method, url, headers=bob, json=body)
            assert_problem(r, 403, "forbidden")


async def test_a_brand_acts_only_for_itself(live: Live, rclient: redis.Redis) -> None:
    world = await make_world(live)
    bravo = live.auth("brand", "bravo")
    product = {"title": "T", "price_minor": 100, "currency": "USD", "sku": "S"}
    async with Unchanged(rclient):
        for method, url, body in [
            ("POST", "/api/v1/brands/acme/products", product),
            ("PATCH", f"/api/v1/products/{world.a_open}", {"price_minor": 1}),
            ("POST", f"/api/v1/products/{world.a_open}/archive", None),
            ("PUT", f"/api/v1/products/{world.a_open}/variants/default/stock",
             {"set": 0, "reason": "sabotage"}),
            ("PUT", f"/api/v1/products/{world.a_open}/variants/default/stock",
             {"adjust": -5, "reason": "sabotage"}),
            ("GET", f"/api/v1/products/{world.a_open}/stock", None),
            ("GET", f"/api/v1/products/{world.a_open}/stock/audit", None),
            ("POST", f"/api/v1/products/{world.a_open}/invites", {"creator_id": "dana"}),
            ("GET", "/api/v1/brands/acme/report", None),
            ("GET", "/api/v1/brands/acme/orders", None),
            # the catalog console's (docs/catalog.md)
            ("GET", "/api/v1/brands/acme/products?status=all", None),
            ("GET", "/api/v1/brands/acme/products?status=archived", None),
            ("GET", f"/api/v1/brands/acme/products/{world.a_open}", None),
            ("POST", f"/api/v1/products/{world.a_open}/unarchive", None),
            ("POST", f"/api/v1/products/{world.a_open}/variants", {"id": "x", "name": "X"}),
            ("PATCH", f"/api/v1/products/{world.a_open}/variants/default", {"name": "Mine"}),
            ("POST", f"/api/v1/products/{world.a_open}/images", None),
            ("PUT", f"/api/v1/products/{world.a_open}/images", {"order": []}),
            ("DELETE", f"/api/v1/products/{world.a_open}/images/{'0' * 64}", None),
        ]:
            assert_problem(await live.http.request(method, url, headers=bravo, json=body), 403,
                           "forbidden")
        # bravo's own list and product path never show acme's product.
        r = await live.http.get(f"/api/v1/brands/bravo/products/{world.a_open}", headers=bravo)
        assert_problem(r, 404, "not-found")
        r = await live.http.get("/api/v1/brands/bravo/products?status=all", headers=bravo)
        assert [p["id"] for p in r.json()["items"]] == [world.b_open]
        # Another brand's orders are hidden, exactly like orders that do not exist.
        unknown = await live.http.get("/api/v1/orders/p_000000000000.00", headers=bravo)
        assert_problem(unknown, 404, "not-found")
        for action in ("", "/capture", "/void", "/refund", "/deliver", "/cancel"):
            method = "GET" if not action else "POST"
            r = await live.http.request(method, f"/api/v1/orders/{world.bob_order}{action}",
                                        headers=bravo)
            assert_problem(r, 404, "not-found")
            assert r.json() == unknown.json()
        # The order's moves that take a body: valid bodies, refused for the owner alone.
        for action, body in AFTER_SALE_BODIES:
            r = await live.http.post(f"/api/v1/orders/{world.bob_order}{action}", json=body,
                                     headers={**bravo, "Idempotency-Key": idem()})
            assert_problem(r, 404, "not-found")
            assert r.json() == unknown.json()
        for query in ("", "?state=paid", f"?stream={world.cleo_stream}"):
            r = await live.http.get(f"/api/v1/brands/acme/orders{query}", headers=bravo)
            assert_problem(r, 403, "forbidden")
    # The owner and an operator may (the refusals above were about ownership).
    assert (await live.http.get("/api/v1/brands/acme/report",
                                headers=live.auth("brand", "acme"))).status_code == 200
    assert (await live.http.get("/api/v1/brands/bravo/report",
                                headers=live.auth("operator", "ops"))).status_code == 200
    r = await live.http.get("/api/v1/brands/acme/orders", headers=live.auth("brand", "acme"))
    assert [o["id"] for o in r.json()["items"]] == [world.bob_order]
    r = await live.http.get(f"/api/v1/orders/{world.bob_order}", headers=live.auth("brand", "acme"))
    assert r.status_code == 200 and r.json()["state"] == "paid"
    assert (await stock_of(live, world.a_open))["default"]["available"] == 9


async def test_a_brand_manages_only_its_own_webhooks(live: Live, rclient: redis.Redis) -> None:
    """Another brand's webhook endpoint is 404 to every call, like one that does not exist;
    another brand's list and registration are 403; the operator's own are operator-only."""
    await make_world(live)
    acme, bravo = live.auth("brand", "acme"), live.auth("brand", "bravo")
    hook = {"url": "https://93.184.215.14/hooks", "events": ["order.paid"]}
    r = await live.http.post("/api/v1/brands/acme/webhooks", headers=acme, json=hook)
    assert r.status_code == 201, r.text
    mine = r.json()["id"]
    r = await live.http.post("/api/v1/webhooks", headers=live.auth("operator", "ops"), json=hook)
    assert r.status_code == 201, r.text
    ops = r.json()["id"]
    async with Unchanged(rclient):
        unknown = await live.http.get("/api/v1/webhooks/we_0000000000000000", headers=bravo)
        assert_problem(unknown, 404, "not-found")
        for endpoint in (mine, ops):
            for method, action, body in [
                    ("GET", "", None), ("PATCH", "", {"description": "mine now"}),
                    ("DELETE", "", None), ("POST", "/secret", None), ("POST", "/enable", None),
                    ("GET", "/deliveries", None), ("POST", "/deliveries/dl_1/resend", None)]:
                r = await live.http.request(method, f"/api/v1/webhooks/{endpoint}{action}",
                                            headers=bravo, json=body)
                assert_problem(r, 404, "not-found")
                assert r.json() == unknown.json()
        for method, url, body in [("GET", "/api/v1/brands/acme/webhooks", None),
                                  ("POST", "/api/v1/brands/acme/webhooks", hook),
                                  ("GET", "/api/v1/webhooks", None),
                                  ("POST", "/api/v1/webhooks", hook)]:
            r = await live.http.request(method, url, headers=bravo, json=body)
            assert_problem(r, 403, "forbidden")
    r = await live.http.get("/api/v1/brands/bravo/webhooks", headers=bravo)
    assert r.status_code == 200 and r.json()["items"] == []
    r = await live.http.get(f"/api/v1/webhooks/{mine}", headers=live.auth("operator", "ops"))
    assert r.status_code == 200 and r.json()["owner"] == "brand:acme"


async def test_a_creator_runs_only_its_own_streams(live: Live, rclient: redis.Redis) -> None:
    world = await make_world(live)
    cleo = live.auth("creator", "cleo")
    r = await live.http.post(f"/api/v1/streams/{world.cleo_stream}/pins", headers=cleo,
                             json={"product_id": world.a_open})
    assert r.status_code == 200, r.text
    dana = live.auth("creator", "dana")
    s = f"/api/v1/streams/{world.cleo_stream}"
    deal = {"product_id": world.a_open, "price_minor": 100, "quantity": 1, "countdown_s": 10,
            "duration_s": 60}
    async with Unchanged(rclient):
        for method, url, body in [
            ("POST", f"{s}/pins", {"product_id": world.a_open}),
            ("DELETE", f"{s}/pins/{world.a_open}", None),
            ("POST", f"{s}/deals", deal),
            ("DELETE", f"{s}/deals/{world.a_open}", None),
            ("PUT", f"{s}/lineup", {"lineup": []}),
            ("POST", f"{s}/end", None),
            ("POST", f"{s}/live", None),
            ("POST", f"{s}/cancel", None),
            ("POST", f"{s}/cover", png()),
            ("DELETE", f"{s}/cover", None),
            ("GET", "/api/v1/creators/cleo/earnings", None),
        ]:
            sent: dict[str, Any] = {"content": body, "headers": {
                **dana, "Content-Type": "image/png"}} if isinstance(body, bytes) else {
                "json": body, "headers": dana}
            assert_problem(await live.http.request(method, url, **sent), 403, "forbidden")
        # cleo's moderator moderates the room, it does not dress the show.
        for method in ("POST", "DELETE"):
            r = await live.http.request(method, f"{s}/cover", content=png(),
                                        headers={**live.auth("moderator", "cleo"),
                                                 "Content-Type": "image/png"})
            assert_problem(r, 403, "forbidden")
    stream = (await live.http.get(s)).json()
    assert stream["state"] == "live" and stream["pinned"] == [world.a_open]
    assert "cover_url" not in stream
    # The host and an operator may.
    for role, subject in (("creator", "cleo"), ("operator", "ops")):
        r = await live.http.post(f"{s}/cover", content=png(), headers={
            **live.auth(role, subject), "Content-Type": "image/png"})
        assert r.status_code == 201, r.text
        r = await live.http.delete(f"{s}/cover", headers=live.auth(role, subject))
        assert r.status_code == 200, r.text


async def test_invite_only_products_need_an_invite(live: Live, rclient: redis.Redis) -> None:
    world = await make_world(live)
    cleo = live.auth("creator", "cleo")
    s = f"/api/v1/streams/{world.cleo_stream}"
    async with Unchanged(rclient):
        for method, url, headers, body in [
            ("POST", "/api/v1/streams", cleo, {"title": "x", "lineup": [world.a_invited]}),
            ("PUT", f"{s}/lineup", cleo, {"lineup": [world.a_open, world.a_invited]}),
            ("POST", "/api/v1/links", cleo, {"product_id": world.a_invited}),
            # An operator editing cleo's lineup is held to cleo's invitations.
            ("PUT", f"{s}/lineup", live.auth("operator", "ops"), {"lineup": [world.a_invited]}),
        ]:
            r = await live.http.request(method, url, headers=headers, json=body)
            assert_problem(r, 403, "not-invited")
        # Inviting someone else, or a brand inviting for a product it does not own, opens
        # nothing for cleo.
        r = await live.http.post(f"/api/v1/products/{world.a_invited}/invites",
                                 headers=live.auth("brand", "bravo"), json={"creator_id": "cleo"})
        assert_problem(r, 403, "forbidden")
    r = await live.http.post(f"/api/v1/products/{world.a_invited}/invites",
                             headers=live.auth("brand", "acme"), json={"creator_id": "dana"})
    assert r.status_code == 201, r.text
    r = await live.http.post("/api/v1/links", headers=cleo, json={"product_id": world.a_invited})
    assert_problem(r, 403, "not-invited")
    # Once invited, cleo may.
    r = await live.http.post(f"/api/v1/products/{world.a_invited}/invites",
                             headers=live.auth("brand", "acme"), json={"creator_id": "cleo"})
    assert r.status_code == 201, r.text
    r = await live.http.put(f"{s}/lineup", headers=cleo,
                            json={"lineup": [world.a_open, world.a_invited]})
    assert r.status_code == 200 and r.json()["lineup"] == [world.a_open, world.a_invited]
    r = await live.http.post("/api/v1/links", headers=cleo, json={"product_id": world.a_invited})
    assert r.status_code == 201, r.text


async def test_a_buyer_sees_only_its_own_orders(live: Live, rclient: redis.Redis) -> None:
    world = await make_world(live)
    eve = live.auth("buyer", "eve")
    async with Unchanged(rclient):
        unknown = await live.http.get("/api/v1/orders/p_000000000000.00", headers=eve)
        assert_problem(unknown, 404, "not-found")
        for method, action in (("GET", ""), ("POST", "/pay")):
            r = await live.http.request(method, f"/api/v1/orders/{world.bob_order}{action}",
                                        headers=eve)
            assert_problem(r, 404, "not-found")
            assert r.json() == unknown.json()
        for action, body in (("cancel", None), ("return", {"reason": "mine now"})):
            r = await live.http.post(f"/api/v1/me/orders/{world.bob_order}/{action}",
                                     headers=eve, json=body)
            assert_problem(r, 404, "not-found")
            assert r.json() == unknown.json()
        # A creator selling the order in its stream sees neither it nor its buyer.
        r = await live.http.get("/api/v1/brands/acme/orders", headers=live.auth("creator", "cleo"))
        assert_problem(r, 403, "forbidden")
        r = await live.http.get("/api/v1/me/orders", headers=eve)
        assert r.status_code == 200 and r.json()["items"] == []
        r = await live.http.get(f"/api/v1/orders/{world.bob_order}",
                                headers=live.auth("creator", "cleo"))
        assert_problem(r, 403, "forbidden")
    r = await live.http.get(f"/api/v1/orders/{world.bob_order}", headers=live.auth("buyer", "bob"))
    assert r.status_code == 200 and r.json()["buyer"] == "bob"
    r = await live.http.get("/api/v1/me/orders", headers=live.auth("buyer", "bob"))
    assert [o["id"] for o in r.json()["items"]] == [world.bob_order]


async def test_an_idempotency_key_never_replays_another_buyers_order(live: Live) -> None:
    world = await make_world(live)
    key = idem()
    body = {"product_id": world.a_open, "stream_id": world.cleo_stream}
    bob = await live.http.post("/api/v1/buy", json=body,
                               headers={**live.auth("buyer", "bob"), "Idempotency-Key": key})
    eve = await live.http.post("/api/v1/buy", json=body,
                               headers={**live.auth("buyer", "eve"), "Idempotency-Key": key})
    assert bob.status_code == eve.status_code == 201, (bob.text, eve.text)
    assert "idempotent-replayed" not in eve.headers
    assert eve.json()["order"]["buyer"] == "eve"
    assert eve.json()["order"]["id"] != bob.json()["order"]["id"]


async def test_a_moderator_reads_its_creators_streams_and_changes_nothing(
        live: Live, rclient: redis.Redis) -> None:
    """docs/api.md: a moderator of a creator reads what the host console reads (the room, the
    video stats, the creator's streams and moderators); every change stays the host's, over
    HTTP and over the room's socket."""
    world = await make_world(live)
    mod = live.auth("moderator", "cleo")
    for path in (f"/api/v1/streams/{world.cleo_stream}/video", "/api/v1/creators/cleo/streams",
                 "/api/v1/creators/cleo/moderators"):
        r = await live.http.get(path, headers=mod)
        assert r.status_code == 200, (path, r.text)
    items = (await live.http.get("/api/v1/creators/cleo/streams", headers=mod)).json()["items"]
    assert [s["id"] for s in items] == [world.cleo_stream]
    s = f"/api/v1/streams/{world.cleo_stream}"
    async with Unchanged(rclient):
        for path in (f"/api/v1/streams/{world.dana_stream}/video", "/api/v1/creators/dana/streams",
                     "/api/v1/creators/dana/moderators"):
            assert_problem(await live.http.get(path, headers=mod), 403, "forbidden")
        for method, url, body in [
                ("POST", f"{s}/pins", {"product_id": world.a_open}),
                ("POST", f"{s}/end", None),
                ("DELETE", f"/api/v1/creators/cleo/moderators/u_{'0' * 32}", None),
                ("POST", "/api/v1/invitations", {"email": "x@example.com",
                                                 "grant": "moderator:cleo"})]:
            r = await live.http.request(method, url, headers=mod, json=body)
            assert_problem(r, 403, "forbidden")
    async with connect(f"{live.ws_url}/ws/streams/{world.cleo_stream}?access_token="
                       f"{live.token('moderator', 'cleo')}") as ws:  # joining counts a viewer
        assert json.loads(await ws.recv())["type"] == "snapshot"
        for message in ({"type": "pin", "product_id": world.a_open, "ref": "m1"},
                        {"type": "stream.end", "ref": "m2"}):
            await ws.send(json.dumps(message))
            async with asyncio.timeout(5 * UNIT):
                while (refused := json.loads(await ws.recv()))["type"] != "error":
                    pass  # state ticks (the viewer count) may come first
            assert (refused["code"], refused["ref"]) == ("forbidden", message["ref"])
    stream = (await live.http.get(s)).json()
    assert stream["state"] == "live" and stream["pinned"] == []


# ---------------------------------------------------------------- affiliate programs, the studio


async def brand_session(live: Live, email: str, brand: str,
                        brand_role: Literal["admin", "member"]) -> dict[str, str]:
    """Cookie and CSRF header of a page signed in as a member of `brand`'s team."""
    account, _ = await live.services.accounts.sign_in(email)
    grant = Grant(Role.BRAND, brand)
    await live.services.accounts.grant(account.id, grant)
    await live.services.teams.add(grant, Member(account.id, brand_role, int(time.time() * 1000),
                                                "inv_test"))
    token, session = await live.services.sessions.create(account.id, grant)
    return {"Cookie": f"lc_session={token}", "X-CSRF-Token": session.csrf}


async def test_brand_members_ship_and_only_admins_give_money_back(
        live: Live, rclient: redis.Redis) -> None:
    """The role matrix of the after-sale endpoints, by hand: operator and brand admin do
    all of it; a member lists and ships but refunds, cancels and decides returns never;
    another brand, a creator, a buyer and nobody are refused (tests above, by the document)."""
    world = await make_world(live)
    member = await brand_session(live, "mem@example.com", "acme", "member")
    admin = await brand_session(live, "adm@example.com", "acme", "admin")
    order = f"/api/v1/orders/{world.bob_order}"
    r = await live.http.get("/api/v1/brands/acme/orders", headers=member)
    assert r.status_code == 200 and [o["id"] for o in r.json()["items"]] == [world.bob_order]
    async with Unchanged(rclient):
        for action, body in (("/refund", {"amount_minor": 100}), ("/cancel", None),
                             ("/return", {"approve": True})):
            r = await live.http.post(f"{order}{action}", json=body,
                                     headers={**member, "Idempotency-Key": idem()})
            assert_problem(r, 403, "brand-admin-required")
    r = await live.http.post(f"{order}/ship", headers=member,
                             json={"carrier": "UPS", "tracking_number": "1Z1"})
    assert r.status_code == 200 and r.json()["state"] == "shipped", r.text
    r = await live.http.post(f"{order}/refund", json={"amount_minor": 100},
                             headers={**admin, "Idempotency-Key": idem()})
    assert r.status_code == 200 and r.json()["refunded_minor"] == 100, r.text
    r = await live.http.post(f"{order}/refund", json={"amount_minor": 100},
                             headers={**live.auth("operator", "ops"), "Idempotency-Key": idem()})
    assert r.status_code == 200 and r.json()["refunded_minor"] == 200, r.text
    r = await live.http.get("/api/v1/brands/acme/orders?state=shipped",
                            headers=live.auth("operator", "ops"))
    assert [o["id"] for o in r.json()["items"]] == [world.bob_order]
    # Without the session's CSRF token a member's change is refused before anything.
    r = await live.http.post(f"{order}/deliver", headers={"Cookie": member["Cookie"]})
    assert_problem(r, 403, "csrf-failed")


async def test_programs_and_earnings_belong_to_their_owners(live: Live,
                                                            rclient: redis.Redis) -> None:
    """A brand reads and runs only its own program (its members read, its admins change);
    a creator reads only its own applications, earnings, statements and publish token."""
    world = await make_world(live)
    acme, cleo = live.auth("brand", "acme"), live.auth("creator", "cleo")
    program = "/api/v1/brands/acme/program"
    r = await live.http.put(program, headers=acme, json={"default_commission_bps": 1500,
                                                         "mode": "approval"})
    assert r.status_code == 200, r.text
    r = await live.http.post(f"{program}/applications", headers=cleo, json={"message": "hi"})
    assert r.status_code == 201, r.text
    member = await brand_session(live, "mem@example.com", "acme", "member")
    admin = await brand_session(live, "boss@example.com", "acme", "admin")
    settings = {"default_commission_bps": 100, "mode": "open"}
    terms = {"commission_bps": 8000, "deal_floor_minor": 1}
    changes = [("PUT", program, settings), ("PUT", f"{program}/products/{world.a_open}", terms),
               *[("POST", f"{program}/applications/cleo/{action}", None)
                 for action in ("approve", "reject")]]
    async with Unchanged(rclient):
        for method, url, body in [*changes, ("GET", program, None),
                                  ("GET", f"{program}/products", None),
                                  ("GET", f"{program}/applications", None)]:
            r = await live.http.request(method, url, headers=live.auth("brand", "bravo"), json=body)
            assert_problem(r, 403, "forbidden")
        for method, url, body in changes:  # a member reads, and changes nothing
            assert_problem(await live.http.request(method, url, headers=member, json=body), 403,
                           "forbidden")
        for path in ("/api/v1/creators/cleo/earnings/breakdown",
                     "/api/v1/creators/cleo/statement?month=2026-01"):
            assert_problem(await live.http.get(path, headers=live.auth("creator", "dana")), 403,
                           "forbidden")
        r = await live.http.post("/api/v1/creators/cleo/publish-token",
                                 headers=live.auth("creator", "dana"))
        assert_problem(r, 403, "forbidden")
        # Nobody but the brand's side lists its applications; a creator sees only its own.
        assert_problem(await live.http.get(f"{program}/applications", headers=cleo), 403,
                       "forbidden")
        dana = await live.http.get("/api/v1/me/programs", headers=live.auth("creator", "dana"))
        assert dana.status_code == 200 and dana.json()["items"] == []
    r = await live.http.get(f"{program}/applications", headers=member)
    assert [a["creator_id"] for a in r.json()["items"]] == ["cleo"]
    assert (await live.http.get(program, headers=member)).json()["default_commission_bps"] == 1500
    r = await live.http.post(f"{program}/applications/cleo/approve", headers=admin)
    assert r.status_code == 200 and r.json()["decided_by"] == "brand:acme", r.text
    r = await live.http.put(program, headers=admin, json=settings)
    assert r.status_code == 200 and r.json()["mode"] == "open", r.text
    mine = (await live.http.get("/api/v1/me/programs", headers=cleo)).json()["items"]
    assert [(a["brand_id"], a["state"]) for a in mine] == [("acme", "approved")]
    # The publish token is the creator's own, for OBS.
    r = await live.http.post("/api/v1/creators/cleo/publish-token", headers=cleo)
    assert r.status_code == 201, r.text
    assert live.services.tokens.verify(r.json()["token"]).subject == "cleo"


# ---------------------------------------------------------------- a brand's shows and their funnel


async def test_every_role_on_a_brands_shows_and_their_funnel(live: Live,
                                                             rclient: redis.Redis) -> None:
    """The role matrix of the shows endpoints, by hand: the brand (token, API key with
    reports:read, its team's admins and members) and operators read; another brand, a
    creator (even the host of the show), a moderator and a buyer get 403, nobody 401; and
    nothing read changes anything."""
    world = await make_world(live)
    paths = ["/api/v1/brands/acme/shows",
             f"/api/v1/brands/acme/shows/{world.cleo_stream}/products"]
    r = await live.http.post("/api/v1/brands/acme/keys", headers=live.auth("brand", "acme"),
                             json={"name": "BI", "scopes": ["reports:read"]})
    assert r.status_code == 201, r.text
    key = {"Authorization": f"Bearer {r.json()['key']}"}
    r = await live.http.post("/api/v1/brands/acme/keys", headers=live.auth("brand", "acme"),
                             json={"name": "Stock", "scopes": ["catalog:read"]})
    other_scope = {"Authorization": f"Bearer {r.json()['key']}"}
    readers = {"operator": live.auth("operator", "ops"), "brand": live.auth("brand", "acme"),
               "api key": key,
               "team admin": await brand_session(live, "adm@example.com", "acme", "admin"),
               "team member": await brand_session(live, "mem@example.com", "acme", "member")}
    refused = {"another brand": (live.auth("brand", "bravo"), 403, "forbidden"),
               "the show's creator": (live.auth("creator", "cleo"), 403, "forbidden"),
               "moderator": (live.auth("moderator", "cleo"), 403, "forbidden"),
               "buyer": (live.auth("buyer", "bob"), 403, "forbidden"),
               "key of another scope": (other_scope, 403, "scope-missing"),
               "nobody": ({}, 401, "unauthorized")}

    async def sweep() -> None:
        for path in paths:
            for who, headers in readers.items():
                r = await live.http.get(path, headers=headers)
                assert r.status_code == 200, (path, who, r.text)
            for who, (headers, status, kind) in refused.items():
                r = await live.http.get(path, headers=headers)
                assert (r.status_code, r.json().get("type")) == (status, PROBLEM_BASE + kind), (
                    path, who, r.text)

    await sweep()  # a session's or a key's first use is recorded (once a minute)
    async with Unchanged(rclient):
        await sweep()
    listed = await live.http.get(paths[0], headers=readers["team member"])
    assert {s["id"] for s in listed.json()["items"]} == {world.dana_stream, world.cleo_stream}
    [row] = (await live.http.get(paths[1], headers=key)).json()["items"]
    assert (row["product_id"], row["orders"], row["units"]) == (world.a_open, 1, 1)
