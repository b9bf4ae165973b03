"""The affiliate program page and the creator studio in real Chromium against a real node:
a brand admin sets a commission and approves a creator's application; the creator
schedules a show with the brand's product, goes live from the host console, ends it and
schedules another; a show's cover is uploaded with it, changed, refused, removed, and the
storefront shows it. Any console error fails a test (the `new_page` fixture)."""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

import pytest
from playwright.async_api import Page, expect

from conftest import UNIT, Live, PageErrors
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product, png
from test_pages import DESKTOP, shot

MS = 1000 * UNIT  # Playwright timeouts are in milliseconds


async def open_page(new_page: Any, url: str) -> Page:
    page: Page = await new_page()
    await page.set_viewport_size(DESKTOP)
    await page.goto(url)
    return page


async def test_a_brand_approves_a_creator_who_runs_shows_from_the_studio(
        live: Live, new_page: Any) -> None:
    await make_brand(live)
    product = await make_product(live, title="Trail Runner", price_minor=8900)
    brand = await open_page(new_page, f"{live.url}/brand/acme#token={live.token('brand', 'acme')}")
    await brand.get_by_role("link", name="Affiliate program").click()
    await expect(brand).to_have_url(f"{live.url}/brand/acme/program")
    await expect(brand.locator("#settings-note")).to_contain_text("No program yet")

    # The brand starts a program by approval at 12.5%, and pays 20% on the Trail Runner.
    await brand.get_by_label("Default commission (%)").fill("12.5")
    await brand.get_by_label("Who may sell your products").select_option("approval")
    await brand.get_by_role("button", name="Save program").click()
    await expect(brand.locator("#settings-status")).to_have_text(
        "Saved: 12.5% by default, creators you approve.")
    await brand.get_by_label("Commission for Trail Runner (%)").fill("20")
    await brand.get_by_label("Lowest deal price for Trail Runner (USD)").fill("70.00")
    await brand.get_by_role("button", name="Save terms of Trail Runner").click()
    await expect(brand.locator("#products-status")).to_have_text(
        "Trail Runner: 20% commission, deals down to $70.00.")
    stored = (await live.http.get(f"/api/v1/products/{product['id']}")).json()
    assert (stored["commission_bps"], stored["commission_mode"], stored["deal_floor_minor"]) == (
        2000, "invited", 7000)

    # The creator finds the program in the studio and applies.
    studio = await open_page(new_page, f"{live.url}/studio/cleo#token={live.token('creator', 'cleo')}")
    await expect(studio.locator("#lineup-empty")).to_be_visible()
    await studio.get_by_label("Your note to Acme").fill("Runner, 40k followers")
    await studio.get_by_role("button", name="Apply to Acme").click()
    await expect(studio.locator("#programs-status")).to_have_text(
        "Applied to Acme: you'll see its answer here.")
    await expect(studio.locator('.program-item[data-brand="acme"] .team-what')).to_have_text(
        "Waiting for the brand's answer")

    # The brand approves it.
    await brand.reload()
    application = brand.locator('.application[data-creator="cleo"]')
    await expect(application).to_contain_text("Runner, 40k followers")
    await shot(brand, "brand-program")
    await application.get_by_role("button", name="Approve cleo").click()
    await expect(brand.locator("#applications-status")).to_have_text("cleo approved.")
    await expect(brand.locator("#applications-empty")).to_be_visible()

    # The creator schedules a show with the Trail Runner in its lineup.
    await studio.reload()
    await expect(studio.locator('.program-item[data-brand="acme"] .team-what')).to_have_text(
        "Approved: you may sell")
    option = studio.get_by_label("Trail Runner · $89.00 · 20%")
    await option.check()
    await studio.get_by_label("Title").fill("Morning run drop")
    await studio.get_by_role("button", name="Schedule show").click()
    await expect(studio.locator("#show-status")).to_have_text("Scheduled “Morning run drop”.")
    show = studio.locator(".show-item").first
    await expect(show).to_have_attribute("data-state", "scheduled")
    await shot(studio, "studio")
    first = await show.get_attribute("data-stream")
    assert (await live.http.get(f"/api/v1/streams/{first}")).json()["lineup"] == [product["id"]]

    # OBS: the WHIP URL and a token of the creator's own.
    await show.get_by_role("button", name="Go live with OBS").click()
    await expect(studio.locator("#obs-url")).to_have_value(
        f"{live.url}/api/v1/streams/{first}/whip")
    token = await studio.locator("#obs-token").input_value()
    assert live.services.tokens.verify(token).subject == "cleo"

    # Live from the host console, then ended there: it offers the next one.
    await show.get_by_role("link", name="Go live with camera").click()
    await expect(studio).to_have_url(f"{live.url}/host/{first}")
    await studio.get_by_role("button", name="Go live", exact=True).click()
    await expect(studio.locator("#state-pill")).to_have_text("Live")
    end = studio.get_by_role("button", name="End stream")
    await end.click()
    await studio.get_by_role("button", name="Press again to end").click()
    await expect(studio.locator("#state-pill")).to_have_text("Ended")
    await studio.get_by_role("link", name="Schedule another").click()
    await expect(studio).to_have_url(f"{live.url}/studio/cleo?again={first}")
    await expect(studio.get_by_label("Title")).to_have_value("Morning run drop")
    await expect(option).to_be_checked()
    await studio.get_by_role("button", name="Schedule show").click()
    await expect(studio.locator('.show-item[data-state="scheduled"]')).to_have_count(1)
    await expect(studio.locator('.show-item[data-state="ended"]')).to_have_count(1)
    items = (await live.http.get("/api/v1/creators/cleo/streams",
                                 headers=live.auth("creator", "cleo"))).json()["items"]
    assert [(s["state"], s["lineup"]) for s in items] == [
        ("scheduled", [product["id"]]), ("ended", [product["id"]])]


async def test_the_studio_shows_earnings_and_downloads_a_statement(live: Live,
                                                                   new_page: Any) -> None:
    await make_brand(live)
    product = await make_product(live, title="Trail Runner", price_minor=3333,
                                 commission_bps=1000)
    stream = await make_live_stream(live, [product["id"]], title="Evening drop")
    await give_wallet(live, "bob")
    for _ in range(2):
        assert (await buy(live, "bob", product["id"], stream=stream["id"])).status_code == 201
    await live.services.aggregator.drain()
    studio = await open_page(new_page, f"{live.url}/studio/cleo#token={live.token('creator', 'cleo')}")
    await expect(studio.locator("#earned-total")).to_have_text("$6.66 earned, 2 orders")
    await expect(studio.locator("#by-show tr")).to_have_text(["Evening drop2$66.66$6.66"])
    await expect(studio.locator("#by-product tr")).to_have_text(["Trail Runner2$66.66$6.66"])
    await expect(studio.locator("#by-brand tr")).to_have_text(["acme2$66.66$6.66"])
    async with studio.expect_download() as waiting:
        await studio.get_by_role("button", name="Download CSV").click()
    download = await waiting.value
    month = time.strftime("%Y-%m", time.gmtime())
    assert download.suggested_filename == f"statement-cleo-{month}.csv"
    text = (await download.path()).read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["commission_minor"] for r in rows] == ["333", "333", "666"]
    await expect(studio.locator("#statement-status")).to_have_text(
        f"Statement for {month} downloaded.")
    # The creator page and the studio link to each other.
    await studio.get_by_role("link", name="Links and live earnings").click()
    await expect(studio).to_have_url(f"{live.url}/creator/cleo")
    await studio.get_by_role("link", name="Studio: shows, programs, earnings").click()
    await expect(studio).to_have_url(f"{live.url}/studio/cleo")
    await expect(studio.locator("#earned-total")).to_have_text("$6.66 earned, 2 orders")


COVER_SRC = re.compile(r"^/media/images/[0-9a-f]{64}\.png$")
NOT_AN_IMAGE = b'<svg xmlns="http://www.w3.org/2000/svg"></svg>'


def picture(data: bytes, name: str = "cover.png") -> dict[str, Any]:
    return {"name": name, "mimeType": "image/png", "buffer": data}


async def refused_in_console(page_errors: PageErrors, status: int) -> None:
    """Chromium logs a fetch answered 4xx as a console error: take the expected one."""
    def found() -> str | None:
        return next((e for e in page_errors if f"status of {status} " in e), None)
    page_errors.remove(await eventually(found, f"the {status} in the console"))


async def change_cover(studio: Page, title: str, data: bytes, word: str = "Change cover") -> None:
    async with studio.expect_file_chooser() as chooser:
        await studio.get_by_role("button", name=f"{word} of {title}").click()
    await (await chooser.value).set_files(files=[picture(data)])


@pytest.mark.parametrize("node_settings", [{"image_max_bytes": 4096}])
async def test_a_show_gets_its_cover_from_the_studio_and_the_storefront_shows_it(
        live: Live, new_page: Any, page_errors: PageErrors) -> None:
    studio = await open_page(new_page, f"{live.url}/studio/cleo#token={live.token('creator', 'cleo')}")
    status = studio.locator("#show-status")
    # Scheduled with a cover file: uploaded once the show exists, its row shows it.
    await studio.get_by_label("Title").fill("Sunset drop")
    await studio.get_by_label("Cover image").set_input_files(files=[picture(png("#2563eb", (120, 90)))])
    await studio.get_by_role("button", name="Schedule show").click()
    await expect(status).to_have_text("Scheduled “Sunset drop” with its cover.")
    row = studio.locator(".show-item", has_text="Sunset drop")
    thumb = row.get_by_role("img", name="Cover of Sunset drop")
    await expect(thumb).to_have_attribute("src", COVER_SRC)
    await expect(thumb).to_have_js_property("naturalWidth", 120)
    cover = await thumb.get_attribute("src")
    stream = await row.get_attribute("data-stream")
    assert (await live.http.get(f"/api/v1/streams/{stream}")).json()["cover_url"] == cover
    await shot(studio, "studio-cover")

    # The storefront lists the show with that picture (same origin: the page's CSP admits it).
    home = await new_page()
    await home.goto(f"{live.url}/")
    card = home.locator("#upcoming-list li.show-card", has=home.get_by_role("heading", name="Sunset drop"))
    await expect(card.locator(".cover-img")).to_have_attribute("src", cover or "", timeout=5 * MS)
    await expect(card.locator(".cover-img")).to_have_attribute("data-loaded", "true")

    # Refusals are said in the page, from the problem's detail; the cover stays.
    await change_cover(studio, "Sunset drop", NOT_AN_IMAGE)
    await expect(status).to_have_text("The cover of “Sunset drop” was not changed: send a JPEG, "
                                      "PNG or WebP image (SVG and other formats are refused)")
    await refused_in_console(page_errors, 415)
    await change_cover(studio, "Sunset drop", b"\x89PNG\r\n\x1a\n" + bytes(4096))
    await expect(status).to_have_text("The cover of “Sunset drop” was not changed: an image is "
                                      "at most 4096 bytes")
    await refused_in_console(page_errors, 413)
    await expect(thumb).to_have_attribute("src", cover or "")

    # Changed, then removed: the storefront follows.
    await change_cover(studio, "Sunset drop", png("#e11d48"))
    await expect(status).to_have_text("New cover for “Sunset drop”.")
    await expect(thumb).not_to_have_attribute("src", cover or "")
    await expect(thumb).to_have_attribute("src", COVER_SRC)
    await row.get_by_role("button", name="Remove cover of Sunset drop").click()
    await expect(status).to_have_text(
        "Cover of “Sunset drop” removed: its first product's picture shows instead.")
    await expect(row.locator(".show-thumb")).to_have_text("No cover")
    await home.reload()
    await expect(card).to_be_visible(timeout=5 * MS)
    await expect(card.locator(".cover-img")).to_have_count(0)

    # A cover the server refuses leaves the show scheduled without one, to add again.
    await studio.get_by_label("Title").fill("Rainy day")
    await studio.get_by_label("Cover image").set_input_files(files=[picture(NOT_AN_IMAGE)])
    await studio.get_by_role("button", name="Schedule show").click()
    await expect(status).to_have_text("Scheduled “Rainy day”, but not its cover: send a JPEG, "
                                      "PNG or WebP image (SVG and other formats are refused)")
    await refused_in_console(page_errors, 415)
    await change_cover(studio, "Rainy day", png("#16a34a"), word="Add cover")
    await expect(status).to_have_text("New cover for “Rainy day”.")
    await expect(studio.get_by_role("img", name="Cover of Rainy day")).to_have_attribute(
        "src", COVER_SRC)
