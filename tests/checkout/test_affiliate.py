"""Affiliate links, attribution (last click wins, signed, expiring) and the commission
ledger, which adds up to the cent: payout = captured - refunded - commission."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from conftest import UNIT, Live
from shop import buy, give_wallet, make_brand, make_live_stream, make_product



@pytest.fixture
async def browser(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    """A second client with a cookie jar of its own: one buyer's browser."""
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as client:
        yield client


async def make_link(live: Live, creator: str, product: str) -> dict[str, Any]:
    r = await live.http.post("/api/v1/links", json={"product_id": product},
                             headers=live.auth("creator", creator))
    assert r.status_code == 201, r.text
    link = dict(r.json())
    assert link["creator_id"] == creator and link["product_id"] == product
    assert link["url"].endswith(f"/l/{link['code']}")
    return link


async def click(client: httpx.AsyncClient, code: str) -> str:
    """Follow a link the way a browser does (without loading the page); returns the token."""
    r = await client.get(f"/l/{code}")
    assert r.status_code == 302, r.text
    location = httpx.URL(r.headers["location"])
    token = location.params["attr"]
    assert r.cookies["lc_attr"] == token
    return token


async def browser_buy(client: httpx.AsyncClient, live: Live, buyer: str, product: str,
                      key: str, **body: Any) -> httpx.Response:
    return await client.post("/api/v1/buy", json={"product_id": product, **body}, headers={
        **live.auth("buyer", buyer), "Idempotency-Key": key})


async def earnings(live: Live, creator: str) -> dict[str, Any]:
    await live.services.aggregator.drain(timeout_s=10 * UNIT)
    r = await live.http.get(f"/api/v1/creators/{creator}/earnings",
                            headers=live.auth("creator", creator))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def brand_report(live: Live, brand: str = "acme") -> dict[str, Any]:
    await live.services.aggregator.drain(timeout_s=10 * UNIT)
    r = await live.http.get(f"/api/v1/brands/{brand}/report", headers=live.auth("brand", brand))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def refund(live: Live, order_id: str) -> dict[str, Any]:
    r = await live.http.post(f"/api/v1/orders/{order_id}/refund",
                             headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_click_then_an_off_stream_buy_credits_the_link_creator(
        live: Live, browser: httpx.AsyncClient) -> None:
    await make_brand(live)
    product = await make_product(live, price_minor=4999, commission_bps=1250)
    link = await make_link(live, "dan", product["id"])
    token = await click(browser, link["code"])
    assert live.services.signer.verify(token) is not None
    await give_wallet(live, "bo")

    # The token in the body (what the product page sends from ?attr=...).
    r = await buy(live, "bo", product["id"], quantity=2, attribution=token)
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    assert (order["channel"], order["creator"], order["link"]) == ("link", "dan", link["code"])
    assert order["commission_bps"] == 1250
    assert order["commission_minor"] == 9998 * 1250 // 10000 == 1249
    # The first-party cookie alone does it too.
    r = await browser_buy(browser, live, "bo", product["id"], "cookie-only-1")
    assert r.status_code == 201, r.text
    assert (r.json()["order"]["creator"], r.json()["order"]["commission_minor"]) == ("dan", 624)

    got = await earnings(live, "dan")
    assert got["earned_minor"] == {"USD": 1249 + 624} and got["orders"] == 2
    assert sorted(e["commission_minor"] for e in got["ledger"]) == [624, 1249]
    assert {e["kind"] for e in got["ledger"]} == {"credit"}


async def test_the_last_click_wins(live: Live, browser: httpx.AsyncClient) -> None:
    await make_brand(live)
    product = await make_product(live, commission_bps=1000)
    cleo = await make_link(live, "cleo", product["id"])
    dan = await make_link(live, "dan", product["id"])
    await give_wallet(live, "lc")
    await click(browser, cleo["code"])
    await click(browser, dan["code"])  # the cookie now says dan
    r = await browser_buy(browser, live, "lc", product["id"], "last-click-1")
    assert r.status_code == 201 and r.json()["order"]["creator"] == "dan"
    await click(browser, cleo["code"])  # and back to cleo
    r = await browser_buy(browser, live, "lc", product["id"], "last-click-2")
    assert r.status_code == 201 and r.json()["order"]["creator"] == "cleo"
    # A token sent with the buy (the page's ?attr=) wins over an older cookie.
    dan_token = live.services.signer.sign("dan", product["id"], dan["code"])
    r = await browser_buy(browser, live, "lc", product["id"], "last-click-3",
                          attribution=dan_token)
    assert r.status_code == 201 and r.json()["order"]["creator"] == "dan"
    assert (await earnings(live, "dan"))["earned_minor"] == {"USD": 1000}
    assert (await earnings(live, "cleo"))["earned_minor"] == {"USD": 500}


async def test_expired_forged_or_foreign_attribution_credits_nobody(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, commission_bps=1500)
    other = await make_product(live, sku="OTHER", commission_bps=1500)
    link = await make_link(live, "dan", product["id"])
    signer = live.services.signer
    now = int(time.time())
    good = signer.sign("dan", product["id"], link["code"])
    header, payload, signature = good.split(".")
    tokens = {
        "expired": signer.sign("dan", product["id"], link["code"], now=now - signer.window_s - 60),
        "other-secret": jwt.encode({"aud": "livecart-attribution", "cr": "dan", "pr": product["id"],
                                    "lc": link["code"], "iat": now, "exp": now + 600},
                                   "not-the-server-secret-" + "y" * 30, algorithm="HS256"),
        "tampered": ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA"
                                                                  else "BBBB")]),
        "unsigned": jwt.encode({"aud": "livecart-attribution", "cr": "dan", "pr": product["id"],
                                "lc": link["code"], "iat": now, "exp": now + 600}, None,
                               algorithm="none"),
        "other-product": signer.sign("dan", other["id"], link["code"]),
        "garbage": "x" * 40,
    }
    await give_wallet(live, "nb")
    for name, token in tokens.items():
        r = await buy(live, "nb", product["id"], attribution=token)
        assert r.status_code == 201, (name, r.text)
        order = r.json()["order"]
        assert (order["channel"], order["creator"], order["commission_minor"]) == (
            "showcase", "", 0), name
    assert (await earnings(live, "dan"))["earned_minor"] == {}
    report = await brand_report(live)
    assert report["commission_minor"] == 0
    assert report["payout_minor"] == report["captured_minor"] == len(tokens) * 5000


async def test_invite_only_products_credit_invited_creators_only(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, commission_bps=2000, commission_mode="invited")
    r = await live.http.post("/api/v1/links", json={"product_id": product["id"]},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 403 and r.json()["type"].endswith("/not-invited")
    r = await live.http.post(f"/api/v1/products/{product['id']}/invites",
                             json={"creator_id": "cleo"}, headers=live.auth("brand", "acme"))
    assert r.status_code == 201, r.text
    link = await make_link(live, "cleo", product["id"])
    await give_wallet(live, "iv")
    token = live.services.signer.sign("cleo", product["id"], link["code"])
    r = await buy(live, "iv", product["id"], attribution=token)
    assert r.status_code == 201
    assert (r.json()["order"]["creator"], r.json()["order"]["commission_minor"]) == ("cleo", 1000)

    # An open product whose brand later makes it invite-only: an old link of an uninvited
    # creator still sells, but earns nothing.
    opened = await make_product(live, sku="OPEN", commission_bps=2000)
    dan_link = await make_link(live, "dan", opened["id"])
    r = await live.http.patch(f"/api/v1/products/{opened['id']}",
                              json={"commission_mode": "invited"},
                              headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    token = live.services.signer.sign("dan", opened["id"], dan_link["code"])
    r = await buy(live, "iv", opened["id"], attribution=token)
    assert r.status_code == 201
    assert (r.json()["order"]["commission_bps"], r.json()["order"]["commission_minor"]) == (0, 0)
    assert (await earnings(live, "cleo"))["earned_minor"] == {"USD": 1000}
    assert (await earnings(live, "dan"))["earned_minor"].get("USD", 0) == 0
    assert (await brand_report(live))["commission_minor"] == 1000


async def test_a_refund_reverses_the_commission(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, price_minor=2500, commission_bps=1000)
    link = await make_link(live, "dan", product["id"])
    await give_wallet(live, "rf")
    token = live.services.signer.sign("dan", product["id"], link["code"])
    order = (await buy(live, "rf", product["id"], quantity=3, attribution=token)).json()["order"]
    assert order["commission_minor"] == 750
    assert (await earnings(live, "dan"))["earned_minor"] == {"USD": 750}

    refunded = await refund(live, order["id"])
    assert refunded["state"] == "refunded"
    again = await refund(live, order["id"])  # a retried refund changes nothing
    assert again["state"] == "refunded"
    got = await earnings(live, "dan")
    assert got["earned_minor"] == {"USD": 0} and got["orders"] == 0
    assert sorted((e["kind"], e["commission_minor"], e["amount_minor"]) for e in got["ledger"]) == [
        ("credit", 750, 7500), ("reversal", -750, -7500)]
    report = await brand_report(live)
    assert (report["captured_minor"], report["refunded_minor"], report["commission_minor"],
            report["payout_minor"]) == (7500, 7500, 0, 0)
    charge = await live.services.gateway.charges(order["id"])
    assert (charge["captured_minor"], charge["refunded_minor"]) == ("7500", "7500")


async def test_the_ledger_adds_up_to_the_cent(live: Live) -> None:
    """Odd amounts (333 minor units at 12.5 %: 41.625 a unit) over many orders, three
    channels and some refunds: every total is exactly the sum of its orders."""
    await make_brand(live)
    product = await make_product(live, price_minor=333, commission_bps=1250, stock=1000)
    stream = await make_live_stream(live, [product["id"]], creator="cleo")
    link = await make_link(live, "dan", product["id"])
    token = live.services.signer.sign("dan", product["id"], link["code"])
    await give_wallet(live, "ledger")
    orders: list[dict[str, Any]] = []
    for i in range(30):
        qty = 1 + (i * 7) % 5
        channel = ("stream", "link", "showcase")[i % 3]
        extra: dict[str, Any] = {"stream": stream["id"]} if channel == "stream" else {}
        if channel == "link":
            extra["attribution"] = token
        r = await buy(live, "ledger", product["id"], quantity=qty, **extra)
        assert r.status_code == 201, r.text
        order = r.json()["order"]
        assert order["amount_minor"] == 333 * qty
        assert order["commission_minor"] == (333 * qty * 1250 // 10000 if channel != "showcase"
                                             else 0)
        orders.append(order)
    refunded = {o["id"] for o in orders[::4]}
    for order_id in refunded:
        await refund(live, order_id)

    kept = [o for o in orders if o["id"] not in refunded]
    captured = sum(o["amount_minor"] for o in orders)
    refunds = sum(o["amount_minor"] for o in orders if o["id"] in refunded)
    commission = sum(o["commission_minor"] for o in kept)
    report = await brand_report(live)
    assert report["units"] == sum(o["qty"] for o in orders)
    assert report["orders"] == len(orders)
    assert report["gmv_minor"] == report["captured_minor"] == captured
    assert report["refunded_minor"] == refunds
    assert report["commission_minor"] == commission
    assert report["payout_minor"] == captured - refunds - commission == sum(
        o["amount_minor"] - o["commission_minor"] for o in kept)
    for creator in ("cleo", "dan"):
        mine = [o for o in kept if o["creator"] == creator]
        got = await earnings(live, creator)
        assert got["earned_minor"] == {"USD": sum(o["commission_minor"] for o in mine)}
        assert got["orders"] == len(mine)
        assert sum(e["commission_minor"] for e in got["ledger"]) == got["earned_minor"]["USD"]
    earned = [(await earnings(live, c))["earned_minor"]["USD"] for c in ("cleo", "dan")]
    assert report["commission_minor"] == sum(earned)
