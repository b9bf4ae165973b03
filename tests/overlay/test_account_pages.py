"""A buyer's own pages in real Chromium against a real node: the wallet page (addresses and
cards added, edited, made default, removed; the card number reaching no log and no Valkey
key on the way), the orders page and a receipt (cancel before shipment), and that signed
out each sends the browser to sign in, and no buyer sees another's."""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from conftest import UNIT, Live, PageErrors
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import Page, expect

from shop import buy, db_state, give_wallet
from test_buyer_journey import fill_address, fill_card, signed_in_page
from test_pages import MS, pin, shop, shot

YY = (datetime.date.today().year + 1) % 100
SECRET_NUMBER = "4000000000009995"


@pytest.fixture
def extra() -> dict[str, Any]:
    return {}


@pytest.fixture
def node_settings(smtp: Inbox, extra: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url, **extra}


async def test_signed_out_the_pages_send_you_to_sign_in_and_back(live: Live,
                                                                 new_page: Any) -> None:
    for path in ("/me/wallet", "/me/orders", "/me/orders/p_x.00"):
        r = await live.http.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=%2Fme%2F")
    page: Page = await new_page()
    await page.goto(f"{live.url}/me/wallet")
    await expect(page).to_have_url(f"{live.url}/signin?next=%2Fme%2Fwallet")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    r = await live.http.get("/me/orders/not-an-order")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_the_wallet_page_keeps_addresses_and_cards_and_never_the_number(
        live: Live, new_page: Any, smtp: Inbox, rclient: redis.Redis,  # noqa: F811
        every_log: pytest.LogCaptureFixture) -> None:
    page, session = await signed_in_page(live, new_page, smtp, "wes@example.com")
    sent: list[tuple[str, str]] = []
    page.on("request", lambda request: sent.append((request.url, request.post_data or "")))
    await page.goto(f"{live.url}/me/wallet")
    await expect(page.get_by_text("No address yet.")).to_be_visible(timeout=5 * MS)
    await expect(page.get_by_text("No card yet.")).to_be_visible()

    addresses = page.get_by_role("list", name="Shipping addresses")
    await page.get_by_role("button", name="Add an address").click()
    await fill_address(page, "Wes Home")
    await page.get_by_role("button", name="Save address").click()
    await expect(addresses.get_by_role("listitem")).to_have_count(1, timeout=5 * MS)
    await expect(addresses.get_by_role("listitem")).to_contain_text("Default")
    await page.get_by_role("button", name="Add an address").click()
    await fill_address(page, "Wes Work")
    await page.get_by_role("button", name="Save address").click()
    await expect(addresses.get_by_role("listitem")).to_have_count(2, timeout=5 * MS)
    work = addresses.get_by_role("listitem").filter(has_text="Wes Work")
    await work.get_by_role("button", name="Make default").click()
    await expect(work).to_contain_text("Default", timeout=5 * MS)
    # Edit in place.
    await work.get_by_role("button", name="Edit").click()
    await page.get_by_label("Street address").fill("99 Pier St")
    await page.get_by_role("button", name="Save changes").click()
    await expect(work).to_contain_text("Wes Work, 99 Pier St", timeout=5 * MS)
    await addresses.get_by_role("listitem").filter(has_text="Wes Home").get_by_role(
        "button", name="Remove").click()
    await expect(addresses.get_by_role("listitem")).to_have_count(1, timeout=5 * MS)

    cards = page.get_by_role("list", name="Cards")
    for number in ("4242 4242 4242 4242", SECRET_NUMBER):
        await page.get_by_role("button", name="Add a card").click()
        await fill_card(page, number)
        await page.get_by_role("button", name="Save card").click()
        await expect(cards).to_contain_text(f"Visa ending in {number[-4:]}, expires 12/{YY:02d}",
                                            timeout=5 * MS)
    await expect(cards.get_by_role("listitem")).to_have_count(2)
    # The last card added is the default; the first one can be made default again.
    first = cards.get_by_role("listitem").filter(has_text="ending in 4242")
    await first.get_by_role("button", name="Make default").click()
    await expect(first).to_contain_text("Default", timeout=5 * MS)
    await shot(page, "wallet", full_page=True)
    await cards.get_by_role("listitem").filter(has_text="ending in 9995").get_by_role(
        "button", name="Remove").click()
    await expect(cards.get_by_role("listitem")).to_have_count(1, timeout=5 * MS)

    # What the server keeps: the summary; the number went to the tokenizer and nowhere else.
    r = await live.http.get("/api/v1/me/wallet",
                            headers=live.auth("buyer", session["account"]["id"]))
    assert r.json()["shipping"]["line1"] == "99 Pier St"
    assert [c["last4"] for c in r.json()["cards"]] == ["4242"]
    carried = [url for url, body in sent if "0000 9995" in body or SECRET_NUMBER in body]
    assert carried == [f"{live.url}/sandbox/tokens"]
    assert every_log.records  # the capture works: the node logged this test's requests
    for record in every_log.records:
        text = record.getMessage() + (every_log.handler.format(record) if record.exc_info else "")
        assert SECRET_NUMBER not in text and SECRET_NUMBER[-8:] not in text, text
    stored = repr(await db_state(rclient))
    assert SECRET_NUMBER not in stored and SECRET_NUMBER[-8:] not in stored


@pytest.mark.parametrize("extra", [{"capture_mode": "on_shipment"}])
async def test_orders_page_lists_and_cancels_before_shipment(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    stream, (shoe, jacket) = await shop(live, {"title": "Trail Runner", "stock": 5},
                                        {"title": "Rain Jacket", "price_minor": 12900, "stock": 5})
    await pin(live, stream, shoe)
    page, session = await signed_in_page(live, new_page, smtp, "olive@example.com")
    me = session["account"]["id"]
    await give_wallet(live, me)
    bought = []
    for product in (shoe, jacket):
        r = await buy(live, me, product["id"], stream=stream["id"])
        assert r.status_code == 201 and r.json()["order"]["state"] == "authorized", r.text
        bought.append(r.json()["order"])
    # Someone else's order: never on olive's pages.
    await give_wallet(live, "someone")
    other = (await buy(live, "someone", shoe["id"], stream=stream["id"])).json()["order"]
    await live.services.aggregator.drain()  # the buyer's list follows the outbox

    await page.goto(f"{live.url}/me/orders")
    orders = page.get_by_role("list", name="Your orders")
    await expect(orders.get_by_role("listitem")).to_have_count(2, timeout=5 * MS)
    await expect(orders.get_by_role("listitem").first).to_contain_text("Rain Jacket")  # newest
    await expect(orders.get_by_role("listitem").nth(1)).to_contain_text("Trail Runner")
    for item in (orders.get_by_role("listitem").first, orders.get_by_role("listitem").nth(1)):
        await expect(item.locator(".state")).to_have_text("Awaiting shipment")
    await shot(page, "orders")
    await orders.get_by_role("button", name="Cancel Rain Jacket").click()
    jacket_row = orders.get_by_role("listitem").filter(has_text="Rain Jacket")
    await expect(jacket_row.locator(".state")).to_have_text("Cancelled by you", timeout=5 * MS)
    await expect(jacket_row.get_by_role("button", name="Cancel Rain Jacket")).to_have_count(0)
    r = await live.http.get(f"/api/v1/orders/{bought[1]['id']}", headers=live.auth("buyer", me))
    assert r.json()["state"] == "voided"
    assert (await live.services.gateway.status(bought[1]["id"])).state == "voided"

    # The receipt of the other order: cancel it from there.
    await orders.get_by_role("link", name="Trail Runner, $50.00, Awaiting shipment: receipt").click()
    await expect(page).to_have_url(f"{live.url}/me/orders/{bought[0]['id']}")
    await expect(page.locator("#receipt-state")).to_have_text("Awaiting shipment", timeout=5 * MS)
    await expect(page.locator("#r-ship")).to_have_text("B, 1 St, 1 X, US")
    await page.get_by_role("button", name="Cancel order").click()
    await expect(page.get_by_role("status")).to_have_text("Order cancelled. You won't be charged.",
                                                          timeout=5 * MS)
    await expect(page.locator("#receipt-state")).to_have_text("Cancelled by you")
    await expect(page.get_by_role("button", name="Cancel order")).to_be_hidden()

    # Another buyer's receipt is not found, exactly like an order that does not exist.
    await page.goto(f"{live.url}/me/orders/{other['id']}")
    await expect(page.get_by_role("status")).to_have_text("No such order among yours.",
                                                          timeout=5 * MS)
    await expect(page.locator("#receipt")).to_be_hidden()
    page_errors[:] = [e for e in page_errors if "status of 404" not in e]
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT,
                                 cookies={"lc_session": page_cookie(await page.context.cookies())}) as as_olive:
        r = await as_olive.post(f"/api/v1/me/orders/{other['id']}/cancel",
                                headers={"X-CSRF-Token": session["csrf"]})
        assert r.status_code == 404 and r.json()["type"].endswith("/not-found")


def page_cookie(cookies: list[Any]) -> str:
    return str(next(c["value"] for c in cookies if c["name"] == "lc_session"))
