"""overlay/static/card_form.js in real Chromium against a real node: the form tokenizes in
the page, the number goes to /sandbox/tokens only, the token buys, errors show by field.

The test serves a bare page (intercepted by Playwright, on the node's origin) that mounts
the module alone; the wallet page and the buy sheet that hold it are tested in
test_account_pages.py and test_buyer_journey.py.
"""

from __future__ import annotations

import datetime
from typing import Any

import orjson
from playwright.async_api import Page, Request, Route, expect

from conftest import UNIT, Live, PageErrors
from shop import buy, give_wallet, make_brand, make_live_stream, make_product

MS = 1000 * UNIT
YY = (datetime.date.today().year + 1) % 100
HOST_PAGE = """<!doctype html><meta charset=utf-8><title>card form</title><div id=slot></div>
<script type=module>
import { mountCardForm } from "/static/card_form.js";
mountCardForm(document.getElementById("slot"), {
  onToken: (card) => { window.savedCard = card; document.body.dataset.saved = "yes"; },
});
</script>"""


async def open_form(live: Live, new_page: Any) -> tuple[Page, list[tuple[str, str]]]:
    """The form on the node's origin, and every request the page sends (url, body)."""
    page: Page = await new_page()
    sent: list[tuple[str, str]] = []

    def record(request: Request) -> None:
        sent.append((request.url, request.post_data or ""))

    async def serve(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=HOST_PAGE)

    page.on("request", record)
    await page.route(f"{live.url}/card-form-test", serve)
    await page.goto(f"{live.url}/card-form-test")
    return page, sent


async def test_the_form_tokenizes_in_the_page_and_the_token_buys_with_its_decline(
        live: Live, new_page: Any) -> None:
    page, sent = await open_form(live, new_page)
    await page.get_by_label("Card number").fill("4000000000009995")
    await expect(page.get_by_label("Card number")).to_have_value("4000 0000 0000 9995")
    await page.get_by_label("Expiry").fill(f"12/{YY:02d}")
    await page.get_by_label("CVC").fill("987")
    await page.get_by_role("button", name="Save card").click()
    await expect(page.locator("body")).to_have_attribute("data-saved", "yes", timeout=10 * MS)
    await expect(page.get_by_role("alert")).to_have_text("visa ending in 9995 saved.")
    await expect(page.get_by_label("Card number")).to_have_value("")
    await expect(page.get_by_label("CVC")).to_have_value("")
    card = await page.evaluate("window.savedCard")
    assert card["last4"] == "9995" and card["token"].startswith("tok_sandbox_")
    carried = [url for url, body in sent if "0000 9995" in body or "00009995" in body]
    assert carried == [f"{live.url}/sandbox/tokens"]  # the number went there, nowhere else
    assert orjson.loads([b for u, b in sent if u.endswith("/sandbox/tokens")][0])["exp_year"] \
        == 2000 + YY

    await give_wallet(live, "dee", token=card["token"])
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    r = await buy(live, "dee", product["id"], stream=stream["id"])
    assert r.status_code == 402 and r.json()["decline_code"] == "insufficient_funds"


async def test_the_form_shows_each_refused_field(live: Live, new_page: Any,
                                                page_errors: PageErrors) -> None:
    page, _ = await open_form(live, new_page)
    await page.get_by_label("Card number").fill("4242 4242 4242 4241")
    await page.get_by_label("Expiry").fill("01/20")
    await page.get_by_label("CVC").fill("12")
    await page.get_by_role("button", name="Save card").click()
    await expect(page.get_by_role("alert")).to_have_text("Check the card's details.",
                                                          timeout=10 * MS)
    await expect(page.locator("#card-number-error")).to_have_text(
        "is not a valid card number (check digit)")
    await expect(page.locator("#card-exp-error")).not_to_be_empty()
    await expect(page.locator("#card-cvc-error")).to_have_text("must be 3 digits")
    await expect(page.get_by_label("CVC")).to_have_attribute("aria-invalid", "true")
    await page.get_by_label("Expiry").fill("soon")
    await page.get_by_role("button", name="Save card").click()
    await expect(page.locator("#card-exp-error")).to_have_text("use MM/YY")
    assert await page.evaluate("window.savedCard === undefined")
    refused = [e for e in page_errors if "status of 422" in e]  # Chromium logs the 422
    assert len(refused) == 1 == len(page_errors), page_errors
    page_errors.clear()
