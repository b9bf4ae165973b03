"""The wallet page of a node that pays through Stripe, in real Chromium: the card form is
Stripe.js's card Element (here the local stand-in, tests/stripe_fake.js, served with the
local Stripe API, tests/stripe_fake.py), loaded under the page's Content-Security-Policy;
the card goes from the page to Stripe only, in a SetupIntent confirmed in the page; the
saved card's token pays; a card Stripe refuses says why."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Live, PageErrors
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import Page, expect

from shop import buy, make_brand, make_live_stream, make_product
from stripe_fake import StripeFake, fake  # noqa: F401 - the fixture
from test_buyer_journey import fill_address, signed_in_page
from test_pages import MS

NUMBER = "4242424242424242"


@pytest.fixture
def node_settings(fake: tuple[StripeFake, str], smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    stripe, url = fake
    return {"payments": "stripe", "stripe_api_key": stripe.api_key,
            "stripe_publishable_key": stripe.publishable_key, "stripe_api_base": url,
            "stripe_js_url": f"{url}/v3/", "smtp_url": smtp.url}


async def fill_stripe_card(page: Page, number: str) -> None:
    await page.get_by_label("Credit or debit card number").fill(number)
    await page.get_by_label("Credit or debit card expiration date").fill("12 / 34")
    await page.get_by_label("Credit or debit card CVC").fill("123")


async def test_a_card_saved_through_stripe_js_pays(
        live: Live, new_page: Any, smtp: Inbox, fake: tuple[StripeFake, str],  # noqa: F811
        page_errors: PageErrors) -> None:
    stripe, stripe_url = fake
    page, session = await signed_in_page(live, new_page, smtp, "stripe@example.com")
    me = session["account"]["id"]
    sent: list[tuple[str, str]] = []
    page.on("request", lambda request: sent.append((request.url, request.post_data or "")))
    response = await page.goto(f"{live.url}/me/wallet")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert f"script-src 'self' {stripe_url};" in policy and stripe_url in policy.split(
        "connect-src")[1]

    await page.get_by_role("button", name="Add an address").click()
    await fill_address(page, "Stripe Buyer")
    await page.get_by_role("button", name="Save address").click()
    await expect(page.get_by_role("list", name="Shipping addresses").get_by_role(
        "listitem")).to_have_count(1, timeout=5 * MS)

    # A card Stripe refuses at once: its words, nothing saved.
    await page.get_by_role("button", name="Add a card").click()
    await fill_stripe_card(page, "4000000000000002")
    await page.get_by_role("button", name="Save card").click()
    await expect(page.get_by_role("alert")).to_have_text("Your card was declined.",
                                                          timeout=5 * MS)
    assert not stripe.methods
    refused = [e for e in page_errors if "status of 402" in e]  # Chromium logs the 402
    assert len(refused) == 1 == len(page_errors), page_errors
    page_errors.clear()

    # A good one: saved as Stripe's payment method, shown by brand and last four.
    await fill_stripe_card(page, NUMBER)
    await page.get_by_role("button", name="Save card").click()
    cards = page.get_by_role("list", name="Cards")
    await expect(cards).to_contain_text("Visa ending in 4242", timeout=5 * MS)
    [method] = stripe.methods.values()
    assert method["customer"] in stripe.customers
    # The number went from the page to Stripe, and nowhere else.
    carried = [url for url, body in sent if NUMBER in body]
    assert carried and all(url.startswith(f"{stripe_url}/v1/setup_intents/") for url in carried)

    # That card pays: one PaymentIntent on it, for the buyer's order.
    await make_brand(live)
    product = await make_product(live, price_minor=4200)
    stream = await make_live_stream(live, [product["id"]])
    r = await buy(live, me, product["id"], stream=stream["id"])
    assert r.status_code == 201, r.text
    [intent] = stripe.intents.values()
    assert (intent["payment_method"], intent["amount"]) == (method["id"], 4200)
