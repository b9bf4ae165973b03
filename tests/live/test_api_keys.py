"""A brand's API keys against a real node and Valkey: made by the brand's admins (never by
a member or by a key), shown once and hashed at rest, acting as the brand within their
scopes only, their last use recorded, revoked at once, capped."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis
from conftest import Live
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from shop import db_state, make_brand, make_product
from test_bad_input import assert_problem
from test_invitations import accept, act, invited
from test_sessions import people  # noqa: F401 - the fixture


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url, "api_keys_per_brand": 3}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_key(live: Live, scopes: list[str], name: str = "Warehouse",
                   brand: str = "acme") -> dict[str, Any]:
    r = await live.http.post(f"/api/v1/brands/{brand}/keys", headers=live.auth("brand", brand),
                             json={"name": name, "scopes": scopes})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    return dict(r.json())


async def test_a_key_acts_as_its_brand_within_its_scopes(live: Live, rclient: redis.Redis) -> None:
    await make_brand(live)
    await make_brand(live, "bravo")
    mine = await make_product(live)
    theirs = await make_product(live, "bravo")
    made = await make_key(live, ["catalog:read", "orders:read"])
    key = made["key"]
    assert key.startswith(made["prefix"]) and made["last_used_ms"] is None
    # Hashed at rest: no key in Valkey holds the secret.
    assert key.split("_", 2)[2] not in repr(await db_state(rclient))

    r = await live.http.get(f"/api/v1/products/{mine['id']}/stock", headers=bearer(key))
    assert r.status_code == 200, r.text
    # Out of its scopes: refused, with the scope named; out of its brand: as a brand's token.
    r = await live.http.patch(f"/api/v1/products/{mine['id']}", headers=bearer(key),
                              json={"title": "Renamed"})
    assert_problem(r, 403, "scope-missing")
    assert r.json()["scope"] == "catalog:write"
    assert_problem(await live.http.get("/api/v1/brands/acme/report", headers=bearer(key)),
                   403, "scope-missing")
    r = await live.http.get(f"/api/v1/products/{theirs['id']}/stock", headers=bearer(key))
    assert r.status_code in (403, 404), r.text
    # A key never manages keys, nor the team.
    for method, path in (("GET", "/api/v1/brands/acme/keys"), ("POST", "/api/v1/invitations"),
                         ("DELETE", f"/api/v1/brands/acme/keys/{made['id']}")):
        r = await live.http.request(method, path, headers=bearer(key), json={})
        assert r.status_code == 403, (path, r.text)

    listed = (await live.http.get("/api/v1/brands/acme/keys",
                                  headers=live.auth("brand", "acme"))).json()["items"]
    assert [k["id"] for k in listed] == [made["id"]] and "key" not in listed[0]
    assert listed[0]["last_used_ms"] is not None
    assert (await live.http.get("/api/v1/brands/bravo/keys",
                                headers=live.auth("brand", "bravo"))).json()["items"] == []
    r = await live.http.delete(f"/api/v1/brands/bravo/keys/{made['id']}",
                               headers=live.auth("brand", "bravo"))
    assert_problem(r, 404, "not-found")  # bravo cannot revoke acme's key

    r = await live.http.delete(f"/api/v1/brands/acme/keys/{made['id']}",
                               headers=live.auth("brand", "acme"))
    assert r.status_code == 204
    r = await live.http.get(f"/api/v1/products/{mine['id']}/stock", headers=bearer(key))
    assert_problem(r, 401, "unauthorized")


async def test_bad_keys_and_bad_requests_are_4xx(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live)
    made = await make_key(live, ["catalog:read"])
    forged = made["key"][:-4] + ("AAAA" if not made["key"].endswith("AAAA") else "BBBB")
    for token in ("lck_", "lck_short_x", forged, made["prefix"] + "x" * 43):
        r = await live.http.get(f"/api/v1/products/{product['id']}/stock", headers=bearer(token))
        assert_problem(r, 401, "unauthorized")
    owner = live.auth("brand", "acme")
    for body in ({"name": "x", "scopes": ["keys:write"]}, {"name": "x", "scopes": []},
                 {"name": "", "scopes": ["catalog:read"]}, {"name": "x"},
                 {"name": "x", "scopes": ["catalog:read"] * 9}):
        r = await live.http.post("/api/v1/brands/acme/keys", headers=owner, json=body)
        assert r.status_code == 422, (body, r.text)
    await make_key(live, ["catalog:read"], "two")
    await make_key(live, ["catalog:read"], "three")
    r = await live.http.post("/api/v1/brands/acme/keys", headers=owner,
                             json={"name": "four", "scopes": ["catalog:read"]})
    assert_problem(r, 409, "too-many-api-keys")
    r = await live.http.post("/api/v1/brands/nobody/keys", headers=live.auth("operator", "ops"),
                             json={"name": "x", "scopes": ["catalog:read"]})
    assert_problem(r, 404, "not-found")


async def test_team_admins_make_keys_members_do_not(live: Live, smtp: Inbox,  # noqa: F811
                                                    people: Any) -> None:  # noqa: F811
    await make_brand(live)
    boss, mem = await people("kboss@example.com"), await people("kmem@example.com")
    await accept(boss, await invited(live, smtp, "kboss@example.com", "brand:acme",
                                     brand_role="admin"))
    await accept(mem, await invited(live, smtp, "kmem@example.com", "brand:acme",
                                    brand_role="member"))
    await act(boss, "brand:acme")
    await act(mem, "brand:acme")
    body = {"name": "ERP", "scopes": ["orders:read"]}
    r = await mem.http.post("/api/v1/brands/acme/keys", headers=mem.csrf, json=body)
    assert_problem(r, 403, "forbidden")
    r = await mem.http.get("/api/v1/brands/acme/keys")  # a member learns only that
    assert r.status_code == 200 and r.json() == {"items": [], "can_manage": False}
    r = await boss.http.post("/api/v1/brands/acme/keys", headers=boss.csrf, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["created_by"] == boss.id
