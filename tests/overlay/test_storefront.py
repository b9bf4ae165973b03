"""The storefront in real Chromium against a real node and hub: the home page (live now with
its viewers, upcoming with a countdown, creators), a creator's page (shows, past count, the
Shop tab through the creator's links) and the product page (variants with stock, price, the
Buy link for a signed-out visitor, a buy with the creator's attribution). Any console error
or page exception fails a test (`new_page`); waits are Playwright's `expect`, in UNITs.
"""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.async_api import Page, expect
from websockets.asyncio.client import connect

from conftest import Live
from shop import eventually, give_wallet, make_brand, make_live_stream, make_product, make_stream
from test_pages import DESKTOP, MS, shot


def now_ms() -> int:
    return int(time.time() * 1000)


def image(live: Live) -> str:
    """A picture the node serves itself (the test has no other network)."""
    return f"{live.url}/static/favicon.svg"


async def link_for(live: Live, creator: str, product: dict[str, Any]) -> dict[str, Any]:
    r = await live.http.post("/api/v1/links", json={"product_id": product["id"]},
                             headers=live.auth("creator", creator))
    assert r.status_code == 201, r.text
    return dict(r.json())


def show_card(page: Page, list_id: str, title: str) -> Any:
    return page.locator(f"#{list_id} li.show-card", has=page.get_by_role("heading", name=title))


async def test_home_lists_live_upcoming_and_creators(live: Live, new_page: Any) -> None:
    await make_brand(live)
    shoe = await make_product(live, title="Trail Runner", image_url=image(live))
    on_air = await make_live_stream(live, [shoe["id"]], title="Trail gear drop")
    coming = await make_stream(live, [shoe["id"]], creator="dana", title="Sunday hike kit",
                               scheduled_at_ms=now_ms() + 10 * 60_000)
    async with connect(f"{live.ws_url}/ws/streams/{on_air['id']}") as viewer:
        await viewer.recv()  # in the room
        await live.services.hub.heartbeat()
        page = await new_page()
        await page.goto(f"{live.url}/")

        live_card = show_card(page, "live-list", "Trail gear drop")
        await expect(live_card).to_be_visible(timeout=5 * MS)
        await expect(live_card.locator(".live-badge")).to_have_text("Live")
        await expect(live_card.locator(".show-viewers")).to_have_text("1 watching")
        await expect(live_card.locator(".cover-img")).to_have_attribute(  # the product's picture
            "data-loaded", "true")
        await expect(live_card.get_by_role("link", name="cleo")).to_have_attribute("href", "/c/cleo")

        soon = show_card(page, "upcoming-list", "Sunday hike kit")
        countdown = soon.get_by_role("timer")
        await expect(countdown).to_have_text(re.compile(r"^Starts in (10:00|9:[0-5]\d)$"))
        first = await countdown.text_content()
        await expect(countdown).not_to_have_text(first or "", timeout=3 * MS)  # it ticks
        await expect(show_card(page, "live-list", "Sunday hike kit")).to_have_count(0)

        creators = page.locator("#creator-list")
        await expect(creators.get_by_role("link", name=re.compile("^cleo.*Live now"))).to_be_visible()
        await expect(creators.get_by_role("link", name=re.compile(r"^dana.*Next show in \d+:\d\d"))
                     ).to_have_attribute("href", "/c/dana")
        await expect(page.get_by_role("link", name="API (OpenAPI 3.1)")).to_be_visible()
        await shot(page, "home", full_page=True)

        # A show's card opens its viewer page.
        await live_card.get_by_role("link", name=re.compile("Trail gear drop")).click()
        await expect(page).to_have_url(f"{live.url}/s/{on_air['id']}")
        await expect(page.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    assert coming["state"] == "scheduled"


async def test_home_pages_a_long_list(live: Live, new_page: Any) -> None:
    for i in range(3):
        await make_stream(live, [], title=f"Show {i}", scheduled_at_ms=now_ms() + (i + 1) * 3_600_000)
    page = await new_page()  # the page asks for pages of 2 (the node allows up to 100)
    await page.route("**/api/v1/shows?state=upcoming*", lambda route: route.continue_(
        url=route.request.url.replace("state=upcoming", "state=upcoming&limit=2")))
    await page.goto(f"{live.url}/")
    cards = page.locator("#upcoming-list li.show-card")
    await expect(cards).to_have_count(2, timeout=5 * MS)
    more = page.get_by_role("button", name="More upcoming shows")
    await more.click()
    await expect(cards).to_have_count(3)
    await expect(cards.nth(2)).to_contain_text("Show 2")
    await expect(more).to_be_hidden()
    await expect(page.locator("#live-empty")).to_have_text(re.compile("Nobody is live"))


async def test_creator_page_shows_and_shop_with_attribution(live: Live, new_page: Any) -> None:
    await make_brand(live)
    shoe = await make_product(live, title="Trail Runner", price_minor=8900)
    jacket = await make_product(live, title="Rain Jacket", price_minor=12900, sku="SKU-2")
    on_air = await make_live_stream(live, [shoe["id"]], title="Trail gear drop")
    await make_stream(live, [], title="Next week", scheduled_at_ms=now_ms() + 7 * 86_400_000)
    done = await make_live_stream(live, [], title="Last week")
    r = await live.http.post(f"/api/v1/streams/{done['id']}/end", headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    link = await link_for(live, "cleo", jacket)
    await link_for(live, "cleo", shoe)

    page = await new_page()
    await page.goto(f"{live.url}/c/cleo")
    await expect(page.get_by_role("heading", name="cleo", level=1)).to_be_visible()
    shows = page.get_by_role("tabpanel", name="Shows")
    await expect(show_card(page, "live-list", "Trail gear drop")).to_be_visible(timeout=5 * MS)
    await expect(show_card(page, "live-list", "Trail gear drop").get_by_role("link")).to_have_attribute(
        "href", f"/s/{on_air['id']}")
    await expect(show_card(page, "upcoming-list", "Next week").get_by_role("timer")
                 ).to_have_text(re.compile(r"^Starts in [67]d \d+h$"))
    await expect(page.locator("#stats")).to_have_text("0 followers · 1 past show · 1 coming up")
    await expect(shows).to_be_visible()

    # The Shop tab, by keyboard: the arrow moves to it.
    await page.get_by_role("tab", name="Shows").focus()
    await page.keyboard.press("ArrowRight")
    shop_tab = page.get_by_role("tab", name="Shop")
    await expect(shop_tab).to_have_attribute("aria-selected", "true")
    await expect(shows).to_be_hidden()
    products = page.get_by_role("tabpanel", name="Shop")
    jacket_link = products.get_by_role("link", name=re.compile("Rain Jacket"))
    await expect(jacket_link).to_contain_text("$129.00", timeout=5 * MS)
    await expect(jacket_link).to_have_attribute("href", f"/l/{link['code']}")
    await expect(products.get_by_role("link")).to_have_count(2)
    await shot(page, "creator-profile")

    # A product from the shop lands on its page with cleo's attribution (the /l/ flow).
    await jacket_link.click()
    await expect(page).to_have_url(re.compile(rf"/p/{jacket['id']}\?attr="))
    await expect(page.get_by_role("heading", name="Rain Jacket", level=1)).to_be_visible()
    cookies = {c["name"]: c for c in await page.context.cookies(live.url)}
    assert live.services.signer.verify(cookies["lc_attr"]["value"]).creator == "cleo"  # type: ignore[union-attr]


async def test_a_creator_without_shows_or_products_says_so(live: Live, new_page: Any) -> None:
    page = await new_page()
    await page.goto(f"{live.url}/c/nobody#shop")
    await expect(page.get_by_role("tab", name="Shop")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#shop-empty")).to_have_text("Nothing in this shop yet.", timeout=5 * MS)
    await page.get_by_role("tab", name="Shows").click()
    await expect(page.locator("#live-empty")).to_be_visible()
    await expect(page.locator("#upcoming-empty")).to_be_visible()
    await expect(page.locator("#stats")).to_have_text("0 followers · 0 past shows · 0 coming up")


async def test_product_page_signed_out_then_a_buy_with_the_creators_attribution(
        live: Live, new_page: Any) -> None:
    await make_brand(live)
    hoodie = await make_product(live, title="Hoodie", price_minor=4500, commission_bps=1000,
                                description="Warm.\n\nMachine washable.", variants=[
                                    {"id": "s", "name": "Small", "stock": 0},
                                    {"id": "m", "name": "Medium", "stock": 2},
                                    {"id": "l", "name": "Large", "stock": 5}])
    link = await link_for(live, "cleo", hoodie)

    page = await new_page()
    await page.goto(f"{live.url}/l/{link['code']}")  # the creator's link, as shared
    await expect(page).to_have_url(re.compile(rf"/p/{hoodie['id']}\?attr="))
    await expect(page.get_by_role("heading", name="Hoodie", level=1)).to_be_visible()
    await expect(page.locator("#price")).to_have_text("$45.00")
    await expect(page.get_by_text("Machine washable.")).to_be_visible()
    await expect(page.get_by_role("radio", name="Small · sold out")).to_be_disabled()
    await expect(page.get_by_role("radio", name="Medium · only 2 left")).to_be_checked()
    await expect(page.get_by_role("radio", name="Large · in stock")).to_be_enabled()
    buy_link = page.get_by_role("link", name="Buy")
    await expect(buy_link).to_have_attribute("href", f"/signin?next=/p/{hoodie['id']}")
    await expect(page.get_by_role("button", name="Buy")).to_be_hidden()
    await shot(page, "product")

    # Signed in (a buyer token, as the live pages take it), in the same browser: one tap.
    await give_wallet(live, "bob")
    here = page.url
    await page.goto(f"{here}#token={live.token('buyer', 'bob')}")
    await page.reload()  # a fragment change alone does not run the page again
    await expect(buy_link).to_be_hidden()
    await page.get_by_role("radio", name=re.compile("^Large")).check()
    await page.get_by_role("button", name="Buy").click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text("Order confirmed", timeout=5 * MS)
    order_id = re.sub(r"^.*Order ", "", await status.text_content() or "").strip()
    r = await live.http.get(f"/api/v1/orders/{order_id}", headers=live.auth("buyer", "bob"))
    order = r.json()
    assert (order["variant"], order["channel"], order["creator"], order["link"]) == (
        "l", "link", "cleo", link["code"])
    assert order["state"] == "paid"


async def test_product_page_renders_on_the_server_and_escapes(live: Live) -> None:
    await make_brand(live, "nippon", currency="JPY")
    product = await make_product(live, brand="nippon", currency="JPY", price_minor=12900,
                                 title="Kettle <b>{{ws}}</b>", stock=0)
    r = await live.http.get(f"/p/{product['id']}")
    assert r.status_code == 200
    assert "12900 JPY" in r.text and "Kettle &lt;b&gt;{{ws}}&lt;/b&gt;" in r.text
    assert "Sold out" in r.text and "/signin" not in r.text  # nothing to buy: no sign-in
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert (await live.http.get("/p/p_nope")).status_code == 404


async def test_developer_links_moved_to_the_footer(live: Live) -> None:
    r = await live.http.get("/")
    assert r.status_code == 200
    footer = r.text.split("<footer", 1)[1]
    assert all(f'href="{path}"' in footer for path in ("/api/v1/openapi.json", "/healthz",
                                                       "/readyz", "/metrics"))


async def test_home_on_a_desktop(live: Live, new_page: Any) -> None:
    """The grid widens: four covers a row at 1280 px."""
    for i in range(4):
        await make_live_stream(live, [], creator=f"host{i}", title=f"Live {i}")
    page = await new_page()
    await page.set_viewport_size(DESKTOP)
    await page.goto(f"{live.url}/")
    cards = page.locator("#live-list li.show-card")
    await expect(cards).to_have_count(4, timeout=5 * MS)
    tops = {round((await cards.nth(i).bounding_box() or {"y": -1})["y"]) for i in range(4)}
    assert len(tops) == 1, tops


async def test_the_host_console_and_obs_source_are_not_counted_as_viewers(
        live: Live, new_page: Any) -> None:
    """The real pages, as a host runs a show: the console and the OBS source are open next
    to one viewer's page; the home page says one is watching."""
    await make_brand(live)
    stream = await make_live_stream(live, [(await make_product(live))["id"]], title="Counted")
    host = await new_page()
    await host.goto(f"{live.url}/host/{stream['id']}#token={live.token('creator', 'cleo')}")
    obs = await new_page()
    await obs.goto(f"{live.url}/obs/{stream['id']}")
    viewer = await new_page()
    await viewer.goto(f"{live.url}/s/{stream['id']}")
    for page in (host, viewer):
        await expect(page.locator("#conn")).to_have_attribute("data-status", "live", timeout=5 * MS)
    await expect(obs.locator("body")).to_have_attribute("data-status", "live", timeout=5 * MS)
    room = live.services.hub.rooms[stream["id"]]
    await eventually(lambda: len(room.subscribers) == 3, "the three pages in the room")
    await live.services.hub.heartbeat()
    home = await new_page()
    await home.goto(f"{live.url}/")
    await expect(show_card(home, "live-list", "Counted").locator(".show-viewers")
                 ).to_have_text("1 watching", timeout=5 * MS)
