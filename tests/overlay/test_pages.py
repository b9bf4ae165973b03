"""The five pages in real Chromium against a real node and hub: viewer, host console, OBS
source, brand dashboard, creator page. Any console error or page exception fails a test
(the `new_page` fixture). Every wait is Playwright's auto-waiting `expect` with a timeout
that is a multiple of conftest.UNIT; nothing sleeps.

LIVECART_SCREENSHOTS=1 also saves one PNG per page into docs/screenshots/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect
from websockets.asyncio.client import connect

from conftest import UNIT, Live, PageErrors
from shop import buy, give_wallet, make_brand, make_live_stream, make_product

MS = 1000 * UNIT  # Playwright timeouts are in milliseconds
SHOTS = os.environ.get("LIVECART_SCREENSHOTS") == "1"
SHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}


async def shot(page: Page, name: str, **options: Any) -> None:
    if SHOTS:
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOT_DIR / f"{name}.png"), animations="disabled", **options)


async def shop(live: Live, *specs: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A brand, products (one per spec) and a live stream hosted by cleo selling them."""
    await make_brand(live)
    products = [await make_product(live, sku=f"SKU-{i}", **spec) for i, spec in enumerate(specs)]
    stream = await make_live_stream(live, [p["id"] for p in products], title="Trail gear drop")
    return stream, products


async def pin(live: Live, stream: dict[str, Any], product: dict[str, Any]) -> None:
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/pins",
                             json={"product_id": product["id"]}, headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text


async def start_deal(live: Live, stream: dict[str, Any], product: dict[str, Any], *,
                     quantity: int, countdown_s: int) -> None:
    """A $39.00 deal for two minutes, opening after `countdown_s`."""
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/deals", headers=live.auth("creator", "cleo"),
                             json={"product_id": product["id"], "price_minor": 3900, "quantity": quantity,
                                   "per_buyer_limit": 1, "countdown_s": countdown_s, "duration_s": 120})
    assert r.status_code == 201, r.text


async def others_buy(live: Live, stream: dict[str, Any], product: dict[str, Any], *buyers: str) -> None:
    for buyer in buyers:
        await give_wallet(live, buyer)
        r = await buy(live, buyer, product["id"], stream=stream["id"])
        assert r.status_code == 201, r.text


async def open_viewer(live: Live, new_page: Any, stream: dict[str, Any], buyer: str | None = "bob") -> Page:
    page = await new_page()
    fragment = f"#token={live.token('buyer', buyer)}" if buyer else ""
    await page.goto(f"{live.url}/s/{stream['id']}{fragment}")
    await expect(page.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    return page


def card(page: Page, title: str, where: str = "#pinned") -> Any:
    return page.locator(where).locator("article.card", has=page.get_by_role("heading", name=title))


async def test_host_pin_reaches_the_viewer_within_a_second(live: Live, new_page: Any) -> None:
    stream, (_shoe, jacket) = await shop(live, {"title": "Trail Runner", "stock": 30},
                                        {"title": "Rain Jacket", "price_minor": 12900, "stock": 8})
    host = await new_page()
    await host.set_viewport_size(DESKTOP)
    await host.goto(f"{live.url}/host/{stream['id']}#token={live.token('creator', 'cleo')}")
    viewer = await open_viewer(live, new_page, stream)
    await expect(card(viewer, "Trail Runner")).to_have_count(0)

    button = host.get_by_role("button", name="Pin Trail Runner")
    await expect(button).to_be_enabled(timeout=5 * MS)
    await button.click()
    # The viewer's page shows the card within a second of the host's press.
    await expect(card(viewer, "Trail Runner")).to_be_visible(timeout=1 * MS)
    await expect(card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner")).to_be_enabled()
    # The host console shows the pinned state from the hub, and its preview has the card.
    unpin = host.get_by_role("button", name="Unpin Trail Runner")
    await expect(unpin).to_have_attribute("aria-pressed", "true")
    await expect(host.locator("#preview-cards .card")).to_have_count(1)

    # Unpin goes the same way.
    await unpin.click()
    await expect(card(viewer, "Trail Runner")).to_have_count(0, timeout=1 * MS)

    # A viewer's likes reach the host's counters.
    await expect(host.locator("#c-likes")).to_have_text("0")
    like = viewer.get_by_role("button", name="Like")
    await like.click()
    await like.click()
    await expect(host.locator("#c-likes")).to_have_text("2", timeout=3 * MS)

    if SHOTS:  # a console with something going on: two pins, a deal form filled in, a sale
        await host.get_by_role("button", name="Pin Trail Runner").click()
        await host.get_by_role("button", name="Pin Rain Jacket").click()
        await others_buy(live, stream, jacket, "ann", "max")
        await expect(host.locator("#c-units")).to_have_text("2", timeout=5 * MS)
        await host.locator("#deal-price").fill("35")
        await host.get_by_role("button", name="Start deal").click()
        await expect(host.locator("#deal-status")).to_contain_text("opens in", timeout=5 * MS)
        await shot(host, "host-console", full_page=True)


async def test_stock_badge_and_deal_countdown_follow_the_room(live: Live, new_page: Any) -> None:
    stream, (shoe, jacket) = await shop(live, {"title": "Trail Runner", "stock": 5},
                                        {"title": "Rain Jacket", "price_minor": 12900, "stock": 40})
    await pin(live, stream, shoe)
    viewer = await open_viewer(live, new_page, stream)
    badge = card(viewer, "Trail Runner").locator(".card-badge")
    await expect(badge).to_have_text("5 left")

    await others_buy(live, stream, shoe, "ann", "max")
    await expect(badge).to_have_text("only 3 left", timeout=2 * MS)
    await others_buy(live, stream, shoe, "kim")
    await expect(badge).to_have_text("only 2 left", timeout=2 * MS)
    await expect(viewer.locator("#ticker li").first).to_contain_text("bought Trail Runner", timeout=5 * MS)

    # A flash deal: the countdown runs on server time and ticks down each second.
    await start_deal(live, stream, shoe, quantity=2, countdown_s=10)
    deal = card(viewer, "Trail Runner").locator(".card-deal")
    await expect(deal).to_have_text(re.compile(r"^Deal \$39\.00 in 0:(10|0\d)$"), timeout=2 * MS)
    first = await deal.text_content()
    await expect(deal).not_to_have_text(first or "", timeout=3 * MS)

    if SHOTS:  # the deal open: deal price beside the struck original, its own countdown
        await pin(live, stream, jacket)
        await expect(card(viewer, "Trail Runner")).to_have_class(re.compile("is-deal"), timeout=12 * MS)
        await expect(card(viewer, "Trail Runner").locator(".price-was")).to_be_visible()
        await shot(viewer, "viewer")


async def test_one_tap_buy_then_pay_confirms_a_real_order(live: Live, new_page: Any) -> None:
    stream, (shoe, hoodie) = await shop(live, {"title": "Trail Runner", "stock": 10}, {
        "title": "Hoodie", "price_minor": 4500,
        "variants": [{"id": "s", "name": "Small", "stock": 0}, {"id": "m", "name": "Medium", "stock": 2},
                     {"id": "l", "name": "Large", "stock": 5}]})
    await pin(live, stream, shoe)
    await give_wallet(live, "bob")
    viewer = await open_viewer(live, new_page, stream)

    await card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    await expect(sheet).to_be_visible()
    # The saved wallet: its address, and its card by brand and last four, never the token.
    await expect(sheet.get_by_label("Ship to")).to_contain_text("B, 1 St, 1 X, US", timeout=5 * MS)
    await expect(sheet.get_by_label("Pay with")).to_contain_text("Visa ending in 4242")
    pay = sheet.get_by_role("button", name="Pay $50.00")
    await expect(pay).to_be_focused()
    await pay.click()

    await expect(sheet.get_by_role("status")).to_contain_text("Order confirmed", timeout=5 * MS)
    order_id = (await sheet.locator("#order-id").text_content() or "").strip()
    r = await live.http.get(f"/api/v1/orders/{order_id}", headers=live.auth("buyer", "bob"))
    assert r.status_code == 200, r.text
    order = r.json()
    assert (order["buyer"], order["product"], order["stream"]) == ("bob", shoe["id"], stream["id"])
    assert order["state"] == "paid"
    # The room hears about it too: the stock badge moved from 10 to 9.
    await expect(card(viewer, "Trail Runner").locator(".card-badge")).to_have_text("9 left", timeout=2 * MS)
    await sheet.get_by_role("button", name="Done").click()
    await expect(sheet).to_be_hidden()

    # From the tray, a product with variants: the picker shows what is left of each.
    await viewer.locator("#tray summary").click()
    await card(viewer, "Hoodie", "#tray-list").get_by_role("button", name="Buy Hoodie").click()
    sheet = viewer.get_by_role("dialog", name="Hoodie")
    await expect(sheet.get_by_role("radio", name="Small · sold out")).to_be_disabled(timeout=5 * MS)
    await expect(sheet.get_by_role("radio", name="Medium · only 2 left")).to_be_checked()
    await sheet.get_by_role("radio", name="Large").check()
    await sheet.get_by_role("button", name="Pay $45.00").click()
    await expect(sheet.get_by_role("status")).to_contain_text("Order confirmed", timeout=5 * MS)
    order_id = (await sheet.locator("#order-id").text_content() or "").strip()
    r = await live.http.get(f"/api/v1/orders/{order_id}", headers=live.auth("buyer", "bob"))
    assert (r.json()["product"], r.json()["variant"]) == (hoodie["id"], "l")


async def test_sold_out_card_disables_its_buy_button(live: Live, new_page: Any) -> None:
    stream, (shoe,) = await shop(live, {"title": "Trail Runner", "stock": 1})
    await pin(live, stream, shoe)
    viewer = await open_viewer(live, new_page, stream)
    button = card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner")
    await expect(button).to_be_enabled()

    await others_buy(live, stream, shoe, "ann")  # the last one goes to someone else
    sold_out = card(viewer, "Trail Runner").get_by_role("button", name="Sold out Trail Runner")
    await expect(sold_out).to_be_disabled(timeout=2 * MS)
    await expect(card(viewer, "Trail Runner").locator(".card-badge")).to_have_text("sold out")
    # The tray says the same.
    await viewer.locator("#tray summary").click()
    await expect(card(viewer, "Trail Runner", "#tray-list").get_by_role("button")).to_be_disabled()


async def test_sheet_without_token_or_wallet_says_so(live: Live, new_page: Any,
                                                     page_errors: PageErrors) -> None:
    stream, (shoe,) = await shop(live, {"title": "Trail Runner", "stock": 3})
    await pin(live, stream, shoe)

    # No token: keyboard only. Tab to Buy, Enter opens the sheet, Escape gives focus back.
    anonymous = await open_viewer(live, new_page, stream, buyer=None)
    button = card(anonymous, "Trail Runner").get_by_role("button", name="Buy Trail Runner")
    await button.focus()
    await anonymous.keyboard.press("Enter")
    sheet = anonymous.get_by_role("dialog", name="Trail Runner")
    await expect(sheet.get_by_role("status")).to_contain_text("Sign in to buy")
    await expect(sheet.get_by_role("button", name=re.compile("^Pay"))).to_be_hidden()
    await anonymous.keyboard.press("Escape")
    await expect(sheet).to_be_hidden()
    await expect(button).to_be_focused()

    # A buyer with an empty wallet: the sheet asks for an address and a card, no Pay yet.
    walletless = await open_viewer(live, new_page, stream, buyer="newbie")
    await card(walletless, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    sheet = walletless.get_by_role("dialog", name="Trail Runner")
    setup = sheet.get_by_role("region", name="Where to, and how to pay")
    await expect(setup).to_be_visible(timeout=5 * MS)
    await expect(setup.get_by_label("Full name")).to_be_focused()
    await expect(setup.get_by_label("Card number")).to_be_visible()
    await expect(sheet.get_by_role("button", name=re.compile("^Pay"))).to_be_hidden()


async def test_obs_source_is_transparent_with_no_buttons(live: Live, new_page: Any) -> None:
    stream, (shoe, jacket) = await shop(live, {"title": "Trail Runner", "stock": 6},
                                        {"title": "Rain Jacket", "price_minor": 12900, "stock": 40})
    await pin(live, stream, shoe)
    page = await new_page()
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await page.goto(f"{live.url}/obs/{stream['id']}")
    await expect(card(page, "Trail Runner", "#cards")).to_be_visible(timeout=5 * MS)
    await expect(card(page, "Trail Runner", "#cards").locator(".card-badge")).to_have_text("6 left")
    backgrounds = await page.evaluate("""() => [document.documentElement, document.body]
        .map((el) => getComputedStyle(el).backgroundColor)""")
    assert backgrounds == ["rgba(0, 0, 0, 0)", "rgba(0, 0, 0, 0)"]
    assert await page.get_by_role("button").count() == 0

    if SHOTS:  # over a dark, video-like backdrop (set only now, after the check above)
        await pin(live, stream, jacket)
        await start_deal(live, stream, shoe, quantity=20, countdown_s=30)
        await others_buy(live, stream, jacket, "ann")
        await expect(page.locator("#ticker li")).to_have_count(1, timeout=5 * MS)
        await expect(card(page, "Trail Runner", "#cards").locator(".card-deal")).to_be_visible()
        await page.evaluate("""() => { document.documentElement.style.background =
            'linear-gradient(135deg, #0f172a, #3b0764 55%, #111827)'; }""")
        await shot(page, "obs")


async def test_brand_dashboard_counter_rises_after_a_purchase(live: Live, new_page: Any) -> None:
    stream, (shoe, jacket) = await shop(live, {"title": "Trail Runner", "stock": 20},
                                        {"title": "Rain Jacket", "price_minor": 12900, "stock": 20})
    page = await new_page()
    await page.set_viewport_size(DESKTOP)
    await page.goto(f"{live.url}/brand/acme#token={live.token('brand', 'acme')}")
    await expect(page.locator("#conn")).to_have_attribute("data-status", "live", timeout=5 * MS)
    await expect(page.locator("#t-units")).to_have_text("0", timeout=5 * MS)

    await others_buy(live, stream, shoe, "ann")
    await expect(page.locator("#t-units")).to_have_text("1", timeout=5 * MS)
    await expect(page.locator("#t-gmv")).to_have_text("$50.00")
    await expect(page.locator("#products")).to_contain_text("Trail Runner")
    await expect(page.locator("#streams")).to_contain_text("Trail gear drop", timeout=5 * MS)

    # CSV export, built in the browser from the feed.
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Products").click()
    download = await info.value
    text = Path(await download.path()).read_text("utf-8")
    assert text.splitlines()[0] == "product_id,title,units,gmv_minor,currency"
    assert f"{shoe['id']},Trail Runner,1,5000,USD" in text.splitlines()

    # Orders with their commission, paged from the API with the brand's token.
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Orders").click()
    lines = Path(await (await info.value).path()).read_text("utf-8").splitlines()
    assert lines[0].startswith("id,created_ms,state,product,variant,qty,unit_price_minor,amount_minor")
    assert len(lines) == 2 and ",paid," in lines[1] and f",{shoe['id']}," in lines[1]
    assert lines[1].endswith(",a***")  # the buyer is masked

    if SHOTS:  # a room of 15 viewers of whom 6 buy, for a believable conversion column
        for name in ["ann", "max", "kim", "lea", "sam", "joe", *(f"viewer{i}" for i in range(9))]:
            async with connect(f"{live.ws_url}/ws/streams/{stream['id']}?access_token="
                               f"{live.token('buyer', name)}") as ws:
                await ws.recv()  # the snapshot: this viewer has joined
        await others_buy(live, stream, jacket, "max", "kim")
        await others_buy(live, stream, shoe, "lea", "sam", "joe")
        await expect(page.locator("#t-units")).to_have_text("6", timeout=5 * MS)
        await shot(page, "brand-dashboard", full_page=True)


async def test_creator_page_lists_links_and_copies_one(live: Live, new_page: Any) -> None:
    stream, (shoe, jacket) = await shop(live, {"title": "Trail Runner", "stock": 20},
                                        {"title": "Rain Jacket", "price_minor": 12900, "stock": 20})
    r = await live.http.post("/api/v1/links", json={"product_id": shoe["id"]},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 201, r.text
    url = r.json()["url"]

    page = await new_page()
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    await page.goto(f"{live.url}/creator/cleo#token={live.token('creator', 'cleo')}")
    link = page.locator("#links li", has_text="Trail Runner")
    await expect(link).to_contain_text(url, timeout=5 * MS)
    copy = link.get_by_role("button", name="Copy link for Trail Runner")
    await copy.click()
    await expect(link.get_by_role("button", name="Copied link for Trail Runner")).to_be_visible()
    await expect(page.locator("#link-status")).to_have_text(f"Copied {url}")
    assert await page.evaluate("navigator.clipboard.readText()") == url

    # Make a link for a product id from the page itself.
    await page.get_by_label("Product id").fill(jacket["id"])
    await page.get_by_role("button", name="Make link").click()
    await expect(page.locator("#links li").first).to_contain_text("Rain Jacket", timeout=5 * MS)
    await expect(page.locator("#links li")).to_have_count(2)

    # The earnings ticker: a paid order in cleo's stream credits her commission (10%).
    await others_buy(live, stream, jacket, "ann")
    await expect(page.locator("#earned")).to_have_text("$12.90", timeout=5 * MS)
    await expect(page.locator("#ledger li").first).to_contain_text("+$12.90")
    await shot(page, "creator")
