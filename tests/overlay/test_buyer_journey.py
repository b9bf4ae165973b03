"""The buyer's journey in real Chromium against a real node, with a real SMTP server reading
the mail: a stranger opens a live stream signed out, taps Buy, signs up by email, adds an
address and the 4242 card right in the sheet, confirms, and finds the order and its receipt;
a returning buyer buys in two taps; a decline says why and another card pays; a deal's
countdown says which price applies, and a price the sheet did not show is never charged.

Taps are counted: every click a person makes goes through `Taps.tap`.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import httpx
import pytest
from conftest import UNIT, Live, PageErrors
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import Locator, Page, expect

from test_pages import MS, card, pin, shop, shot, start_deal

YY = (datetime.date.today().year + 1) % 100


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url}


class Taps:
    """Counts the taps a person makes (typing is not a tap; picking from a list is)."""

    def __init__(self) -> None:
        self.count = 0

    async def tap(self, target: Locator) -> None:
        self.count += 1
        await target.click()


def expected(page_errors: PageErrors, *statuses: int) -> None:
    """Chromium logs every 4xx answer as a console error; these ones the page shows."""
    page_errors[:] = [e for e in page_errors
                      if not any(f"status of {s}" in e for s in statuses)]


async def fill_address(scope: Locator | Page, name: str = "Sam Stranger") -> None:
    await scope.get_by_label("Full name").fill(name)
    await scope.get_by_label("Street address").fill("12 Harbour Rd")
    await scope.get_by_label("City").fill("Portland")
    await scope.get_by_label("Postal code").fill("97201")
    await scope.get_by_label("Country code").fill("us")


async def fill_card(scope: Locator | Page, number: str) -> None:
    await scope.get_by_label("Card number").fill(number)
    await scope.get_by_label("Expiry").fill(f"12/{YY:02d}")
    await scope.get_by_label("CVC").fill("123")


async def signed_in_page(live: Live, new_page: Any, smtp: Inbox,  # noqa: F811
                         email: str) -> tuple[Page, dict[str, Any]]:
    """A page whose browser holds a session of `email` (signed in by the mailed code)."""
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as client:
        r = await client.post("/auth/email/start", json={"email": email})
        assert r.status_code == 202, r.text
        code = (await smtp.next_mail(email)).code
        r = await client.post("/auth/email/verify",
                              json={"challenge": r.json()["challenge"], "code": code})
        assert r.status_code == 200, r.text
        cookie = client.cookies["lc_session"]
    page: Page = await new_page()
    await page.context.add_cookies([{"name": "lc_session", "value": cookie, "url": live.url}])
    return page, r.json()


async def test_a_stranger_signs_up_and_buys_in_the_sheet_then_buys_again_in_two_taps(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    stream, (shoe,) = await shop(live, {"title": "Trail Runner", "stock": 5})
    await pin(live, stream, shoe)
    viewer: Page = await new_page()
    await viewer.goto(f"{live.url}/s/{stream['id']}")
    await expect(viewer.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    first = Taps()

    # Buy, signed out: the sheet says sign in, and the way in comes back to this product.
    await first.tap(card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner"))
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    await expect(sheet.get_by_role("status")).to_contain_text("Sign in to buy")
    await first.tap(sheet.get_by_role("link", name="Sign in"))
    await expect(viewer).to_have_url(re.compile(r"/signin\?next="))
    email = viewer.get_by_role("textbox", name="Email", exact=True)
    await email.fill("sam@example.com")
    await first.tap(viewer.get_by_role("button", name="Email me a code"))
    mail = await smtp.next_mail("sam@example.com")
    await viewer.get_by_label("6-digit code").fill(mail.code)
    await first.tap(viewer.get_by_role("button", name="Sign in"))

    # Back on the stream, the sheet opens again by itself: the wallet is empty, so the
    # address and the card go in right here, the card tokenized in the page.
    await expect(viewer).to_have_url(f"{live.url}/s/{stream['id']}", timeout=5 * MS)
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    setup = sheet.get_by_role("region", name="Where to, and how to pay")
    await expect(setup).to_be_visible(timeout=5 * MS)
    await expect(setup.get_by_label("Full name")).to_be_focused()
    await fill_address(setup)
    await fill_card(setup, "4242 4242 4242 4242")
    await shot(viewer, "buy-sheet-setup")
    await first.tap(setup.get_by_role("button", name="Save and continue"))
    pay = sheet.get_by_role("button", name="Pay $50.00")
    await expect(pay).to_be_focused(timeout=5 * MS)
    await expect(sheet.get_by_label("Ship to")).to_contain_text("Sam Stranger, 12 Harbour Rd")
    await expect(sheet.get_by_label("Pay with")).to_contain_text(f"Visa ending in 4242, expires 12/{YY:02d}")
    await first.tap(pay)
    await expect(sheet.get_by_role("status")).to_contain_text("Order confirmed", timeout=5 * MS)
    await expect(sheet.get_by_role("status")).to_contain_text("$50.00 · ships to Sam Stranger")
    order_id = (await sheet.locator("#order-id").text_content() or "").strip()
    assert first.count == 6, first.count  # Buy, Sign in, Email me a code, Sign in, Save, Pay

    account = await live.services.accounts.find("sam@example.com")
    assert account is not None
    r = await live.http.get(f"/api/v1/orders/{order_id}", headers=live.auth("buyer", account.id))
    order = r.json()
    assert (order["state"], order["amount_minor"], order["stream"]) == ("paid", 5000, stream["id"])
    assert order["ship_to"]["city"] == "Portland" and order["card"]["last4"] == "4242"

    # The receipt, then every order.
    await sheet.get_by_role("link", name="View receipt").click()
    await expect(viewer).to_have_url(f"{live.url}/me/orders/{order_id}")
    receipt = viewer.get_by_role("region", name="Trail Runner")
    await expect(receipt).to_contain_text("Paid", timeout=5 * MS)
    await expect(receipt.locator("#r-line")).to_have_text("1 × $50.00")
    await expect(receipt.locator("#r-total")).to_have_text("$50.00")
    await expect(receipt.locator("#r-ship")).to_have_text("Sam Stranger, 12 Harbour Rd, 97201 Portland, US")
    await expect(receipt.locator("#r-card")).to_have_text("Visa ending in 4242")
    await expect(receipt.get_by_role("button", name="Cancel order")).to_be_hidden()  # paid
    await live.services.aggregator.drain()  # the list of a buyer's orders follows the outbox
    await viewer.get_by_role("link", name="All orders").click()
    orders = viewer.get_by_role("list", name="Your orders")
    await expect(orders.get_by_role("listitem")).to_have_count(1, timeout=5 * MS)
    await expect(orders.get_by_role("listitem")).to_contain_text("Trail Runner")
    await expect(orders.get_by_role("listitem")).to_contain_text("1 × $50.00 · $50.00")
    await expect(orders.get_by_role("listitem").locator(".state")).to_have_text("Paid, awaiting shipment")

    # A returning buyer: Buy, Pay.
    again = Taps()
    await viewer.goto(f"{live.url}/s/{stream['id']}")
    await again.tap(card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner"))
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    await again.tap(sheet.get_by_role("button", name="Pay $50.00"))
    await expect(sheet.get_by_role("status")).to_contain_text("Order confirmed", timeout=5 * MS)
    assert again.count == 2
    await shot(viewer, "buy-sheet-confirmed")


async def test_a_decline_says_why_and_another_card_pays(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    stream, (shoe,) = await shop(live, {"title": "Trail Runner", "stock": 5})
    await pin(live, stream, shoe)
    viewer, session = await signed_in_page(live, new_page, smtp, "dee@example.com")
    # Dee's wallet: an address, the 4242 card, then the 9995 one as the default.
    await viewer.goto(f"{live.url}/me/wallet")
    await viewer.get_by_role("button", name="Add an address").click()
    await fill_address(viewer, "Dee Decline")
    await viewer.get_by_role("button", name="Save address").click()
    await expect(viewer.get_by_role("list", name="Shipping addresses")).to_contain_text(
        "Dee Decline", timeout=5 * MS)
    for number in ("4242 4242 4242 4242", "4000 0000 0000 9995"):
        await viewer.get_by_role("button", name="Add a card").click()
        await fill_card(viewer, number)
        await viewer.get_by_role("button", name="Save card").click()
        await expect(viewer.get_by_role("list", name="Cards")).to_contain_text(
            f"ending in {number[-4:]}", timeout=5 * MS)

    await viewer.goto(f"{live.url}/s/{stream['id']}")
    await expect(viewer.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    await card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    await expect(sheet.get_by_label("Pay with")).to_contain_text("Visa ending in 9995", timeout=5 * MS)
    await sheet.get_by_role("button", name="Pay $50.00").click()
    status = sheet.get_by_role("status")
    await expect(status).to_contain_text("Payment declined", timeout=5 * MS)
    await expect(status).to_contain_text("Your card has insufficient funds.")
    expected(page_errors, 402)
    picker = sheet.get_by_label("Pay with")
    await expect(picker).to_be_focused()
    await picker.select_option(label=f"Visa ending in 4242, expires 12/{YY:02d}")
    await sheet.get_by_role("button", name="Pay $50.00").click()
    await expect(status).to_contain_text("Order confirmed", timeout=5 * MS)
    order_id = (await sheet.locator("#order-id").text_content() or "").strip()
    r = await live.http.get(f"/api/v1/orders/{order_id}",
                            headers=live.auth("buyer", session["account"]["id"]))
    assert r.json()["card"] == {"brand": "visa", "last4": "4242"} and r.json()["state"] == "paid"


async def test_the_sheet_shows_the_price_that_applies_and_charges_no_other(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    stream, (shoe,) = await shop(live, {"title": "Trail Runner", "stock": 9})
    await pin(live, stream, shoe)
    viewer, session = await signed_in_page(live, new_page, smtp, "pat@example.com")
    buyer = live.auth("buyer", session["account"]["id"])
    r = await live.http.put("/api/v1/me/wallet", headers=buyer, json={
        "shipping": {"name": "Pat", "line1": "1 St", "city": "X", "postal_code": "1",
                     "country": "US"}, "payment_token": "tok_visa"})
    assert r.status_code == 200, r.text

    # During the countdown the regular price applies, and the sheet says so.
    await start_deal(live, stream, shoe, quantity=5, countdown_s=60)
    await viewer.goto(f"{live.url}/s/{stream['id']}")
    await expect(viewer.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    await card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    await expect(sheet.locator("#sheet-price")).to_have_text("$50.00")
    await expect(sheet.locator("#sheet-deal")).to_have_text(re.compile(
        r"^\$50\.00 now · the deal price \$39\.00 applies when the deal opens, in (1:00|0:[0-5]\d)$"))
    await shot(viewer, "buy-sheet-countdown")
    await sheet.get_by_role("button", name="Pay $50.00").click()
    await expect(sheet.get_by_role("status")).to_contain_text("Order confirmed", timeout=5 * MS)
    order_id = (await sheet.locator("#order-id").text_content() or "").strip()
    r = await live.http.get(f"/api/v1/orders/{order_id}", headers=buyer)
    assert (r.json()["unit_price_minor"], r.json()["amount_minor"]) == (5000, 5000)
    await sheet.get_by_role("button", name="Done").click()

    # The brand changes the price while the sheet shows the old one: the tap is refused,
    # nothing is charged, the sheet shows the new price, and the next tap pays that.
    await card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    pay = sheet.get_by_role("button", name="Pay $50.00")
    await expect(pay).to_be_focused(timeout=5 * MS)
    r = await live.http.patch(f"/api/v1/products/{shoe['id']}", json={"price_minor": 4500},
                              headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    authorized = await live.services.gateway.authorizations_count()  # type: ignore[attr-defined]
    await pay.click()
    status = sheet.get_by_role("status")
    await expect(status).to_contain_text("The price just changed", timeout=5 * MS)
    await expect(status).to_contain_text("It's $45.00 now. You were not charged")
    expected(page_errors, 409)
    assert await live.services.gateway.authorizations_count() == authorized  # type: ignore[attr-defined]
    await expect(sheet.locator("#sheet-price")).to_have_text("$45.00")
    await sheet.get_by_role("button", name="Pay $45.00").click()
    await expect(status).to_contain_text("Order confirmed", timeout=5 * MS)
    order_id = (await sheet.locator("#order-id").text_content() or "").strip()
    r = await live.http.get(f"/api/v1/orders/{order_id}", headers=buyer)
    assert r.json()["amount_minor"] == 4500
