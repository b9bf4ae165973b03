"""The brand's catalog console in real Chromium against a real node: a brand admin (invited,
signed in by email, on the page session: no token anywhere) creates a product with two
variants made from an option, each with its SKU and stock, uploads an image, changes the
stock with a reason and reads the audit, and the product page, the viewer's card and the
list show it; then archives it. Any console error or page exception fails the test."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from conftest import UNIT, Live, PageErrors
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import Page, expect
from shop import eventually, make_brand, make_live_stream, png

from test_invite_pages import link_of, signed_in_cookie
from test_pages import DESKTOP, MS, shot


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url}


async def brand_admin_cookie(live: Live, inbox: Inbox, email: str) -> str:
    """A session of `email`, invited as an admin of acme by an operator and accepted."""
    r = await live.http.post("/api/v1/invitations", headers=live.auth("operator", "ops"),
                             json={"email": email, "grant": "brand:acme", "brand_role": "admin"})
    assert r.status_code == 201, r.text
    token = link_of(await inbox.next_mail(email)).rsplit("/", 1)[1]
    cookie = await signed_in_cookie(live, inbox, email)
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT,
                                 cookies={"lc_session": cookie}) as client:
        csrf = (await client.get("/auth/session")).json()["csrf"]
        r = await client.post("/auth/invitations/accept", json={"token": token},
                              headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
    return cookie


async def open_as(browser: Any, live: Live, page_errors: PageErrors, cookie: str) -> Page:
    context = await browser.new_context(viewport=DESKTOP)
    await context.add_cookies([{"name": "lc_session", "value": cookie, "url": live.url}])
    page = await context.new_page()
    page.on("console", lambda m: page_errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: page_errors.append(f"pageerror: {e}"))
    return page


async def test_a_brand_admin_creates_a_product_with_two_variants_and_an_image(
        live: Live, smtp: Inbox, browser: Any, page_errors: PageErrors) -> None:  # noqa: F811
    await make_brand(live)
    page = await open_as(browser, live, page_errors,
                         await brand_admin_cookie(live, smtp, "ann@example.com"))
    try:
        await run_the_console(live, page, page_errors)
    finally:
        await page.context.close()
    assert not page_errors, page_errors


async def run_the_console(live: Live, page: Page, page_errors: PageErrors) -> None:
    # From the dashboard's header to the catalog.
    await page.goto(f"{live.url}/brand/acme")
    await page.get_by_role("link", name="Catalog").click()
    await expect(page).to_have_url(f"{live.url}/brand/acme/catalog")
    await expect(page.locator("#brand-name")).to_have_text("Acme", timeout=5 * MS)
    await expect(page.locator("#products-empty")).to_be_visible(timeout=5 * MS)

    await page.get_by_role("button", name="New product").click()
    await page.get_by_label("Title").fill("Trail Tee")
    await page.get_by_label("Description").fill("Soft cotton.\n\nWashes well.")
    await page.get_by_label("Price").fill("25.00")
    await page.get_by_label("SKU", exact=True).fill("TEE")
    await page.get_by_role("button", name="Add an option").click()
    await page.get_by_label("Option 1 name").fill("Size")
    await page.get_by_label("Option 1 values").fill("S, M")
    await page.get_by_role("button", name="Make variants from the options").click()
    await page.get_by_label("SKU of S").fill("TEE-S")
    await page.get_by_label("Stock of S").fill("6")
    await page.get_by_label("SKU of M").fill("TEE-M")
    await page.get_by_label("Stock of M").fill("5")
    await page.get_by_role("button", name="Save product").click()
    await expect(page.locator("#form-status")).to_have_text("Saved.", timeout=5 * MS)
    await expect(page.get_by_role("button", name="Edit Trail Tee")).to_be_visible()

    # An image: uploaded as the file's bytes, checked by the server, the product's picture.
    await page.get_by_label("Add images").set_input_files(
        files=[{"name": "tee.png", "mimeType": "image/png", "buffer": png("#2563eb", (120, 90))}])
    await expect(page.locator("#images-status")).to_have_text("tee.png added.", timeout=5 * MS)
    image = page.locator("#images img")
    await expect(image).to_have_attribute("src", re.compile(r"^/media/images/[0-9a-f]{64}\.png$"))
    src = await image.get_attribute("src")
    assert await image.evaluate("(img) => img.decode().then(() => img.naturalWidth)") == 120

    # A stock change with its reason, in the audit with who made it.
    await expect(page.locator("#stock tr")).to_have_count(2)
    await page.locator("#s-variant").select_option(label="M")
    await page.locator("#s-kind").select_option("damaged")
    await page.get_by_label("Change by").fill("-1")
    await page.get_by_label("Note").fill("torn seam")
    await page.get_by_role("button", name="Adjust stock").click()
    await expect(page.locator("#stock-status")).to_have_text("M: 4 available.", timeout=5 * MS)
    first = page.locator("#audit tr").first
    await expect(first).to_contain_text("damaged: torn seam")
    await expect(first).to_contain_text("-1")
    await expect(first).to_contain_text("brand:acme (ann@example.com)")
    # Below zero is refused, and says so.
    await page.get_by_label("Change by").fill("-9")
    await page.get_by_role("button", name="Adjust stock").click()
    await expect(page.locator("#stock-status")).to_have_text(
        "That would take the stock below zero.", timeout=5 * MS)
    # Chromium logs a fetch answered 4xx as a console error: this refusal is the expected one.
    refused = ("console error: Failed to load resource: the server responded with a status "
               "of 409 (Conflict)")
    await eventually(lambda: refused in page_errors, "the 409 in the console")
    page_errors.remove(refused)
    await shot(page, "brand-catalog", full_page=True)

    # The product page shows it: the image, both variants with their stock, the description.
    product_path = await page.locator("#view-product").get_attribute("href")
    assert product_path and product_path.startswith("/p/p_")
    product_id = product_path.removeprefix("/p/")
    shop = await page.context.new_page()
    await shop.goto(f"{live.url}{product_path}")
    await expect(shop.get_by_role("heading", name="Trail Tee")).to_be_visible()
    picture = shop.locator("img.product-img")
    await expect(picture).to_have_attribute("src", src or "")
    assert await picture.evaluate("(img) => img.decode().then(() => img.naturalWidth)") == 120
    await expect(shop.locator(".variant")).to_have_text(["S · in stock", "M · in stock"])
    await expect(shop.locator(".product-description p")).to_have_text(["Soft cotton.", "Washes well."])
    await expect(shop.locator("#price")).to_have_attribute("value", "2500")

    # A live stream's card shows the same first image.
    stream = await make_live_stream(live, [product_id])
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/pins", json={"product_id": product_id},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    await shop.goto(f"{live.url}/s/{stream['id']}")
    card_image = shop.locator(".card--pinned .card-img")
    await expect(card_image).to_have_attribute("src", src or "", timeout=5 * MS)
    await expect(card_image).to_be_visible(timeout=5 * MS)  # shown once it loaded
    await shop.close()

    # Archived: off sale, listed under Archived only.
    await page.get_by_role("button", name="Archive").click()
    await expect(page.locator("#banner")).to_have_text("Trail Tee archived.", timeout=5 * MS)
    await expect(page.locator("#products-empty")).to_be_visible()
    await page.get_by_role("combobox", name="Show").select_option("archived")
    await expect(page.get_by_role("button", name="Edit Trail Tee")).to_be_visible(timeout=5 * MS)
    assert (await live.http.get(product_path)).status_code == 404
