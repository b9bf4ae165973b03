"""Live auctions in real Chromium against a real node (docs/auctions.md, "Pages"): the host
console puts a product up and sees the bid list; two viewers bid (one signed in by email,
with the session and its CSRF token, one with a token); the outbid one sees it, with the new
price and paddle; the clock runs on server time (a viewer whose device clock is an hour
fast still counts down from the server's) and moves out on a late bid; the OBS source shows
the card and the result. Any console error or page exception fails the test (`new_page`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Live, PageErrors
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import Page, expect

from checkout.ids import StreamId
from shop import give_wallet, make_brand, make_live_stream, make_product
from test_buyer_journey import expected, signed_in_page
from test_pages import DESKTOP, MS, shot

# The device clock of viewer B runs an hour fast: only the server's clock may set the card's.
FAST_CLOCK = "(() => { const real = Date.now; Date.now = () => real.call(Date) + 3600000; })();"


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url}


async def host_console(live: Live, new_page: Any, stream: str) -> Page:
    page: Page = await new_page()
    await page.set_viewport_size(DESKTOP)
    await page.goto(f"{live.url}/host/{stream}#token={live.token('creator', 'cleo')}")
    await expect(page.locator("#conn")).to_have_attribute("data-status", "live", timeout=5 * MS)
    return page


async def put_up(host: Page, *, start: str, open_now: bool = True) -> None:
    """The host's form: the lineup's product from `start`, 30 s, a late bid adding 60 s."""
    panel = host.locator(".auction-panel")
    await panel.get_by_label("Starting price").fill(start)
    await panel.get_by_label("Duration").fill("30")
    await panel.get_by_label("Extension").fill("60")
    await panel.get_by_label("Start the clock now").set_checked(open_now)
    await panel.get_by_role("button", name="Start auction").click()
    await expect(host.locator("#auction-status")).to_have_attribute("data-kind", "ok", timeout=5 * MS)


async def ends_ms(page: Page) -> int:
    return int(await page.locator(".auction-card").get_attribute("data-ends-ms") or 0)


async def test_two_viewers_bid_the_outbid_one_sees_it_and_host_and_obs_follow(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    await make_brand(live)
    product = await make_product(live, sku="LOT-1", title="Signed Jersey", stock=1)
    stream = str((await make_live_stream(live, [product["id"]]))["id"])
    host = await host_console(live, new_page, stream)

    # A scheduled auction takes pre-bids until opened; the host may cancel it before a bid.
    await put_up(host, start="5", open_now=False)
    await expect(host.locator("#auction-open-now")).to_be_visible()
    await host.get_by_role("button", name="Cancel auction").click()
    await expect(host.locator(".auction-status")).to_have_text("Auction cancelled", timeout=5 * MS)

    # Viewer A opens the show signed out: the card asks to sign in (and come back).
    viewer_a, session = await signed_in_page(live, new_page, smtp, "ann@example.com")
    cookies = await viewer_a.context.cookies()
    await viewer_a.context.clear_cookies()
    await viewer_a.goto(f"{live.url}/s/{stream}")
    await put_up(host, start="10")
    card_a = viewer_a.locator("#auction-slot .auction-card")
    await expect(card_a.locator(".auction-title")).to_have_text("Signed Jersey", timeout=5 * MS)
    signin = card_a.get_by_role("link", name="Sign in to bid")
    await expect(signin).to_be_visible(timeout=5 * MS)
    await expect(signin).to_have_attribute("href", f"/signin?next=%2Fs%2F{stream}")
    await expect(card_a.locator(".auction-bid")).to_be_hidden()
    await expect(card_a.locator(".auction-clock")).to_have_text(re.compile(r"^0:[0-3]\d$"))

    # Signed in (the session cookie; its CSRF token goes with each bid), with a wallet.
    await give_wallet(live, session["account"]["id"])
    await viewer_a.context.add_cookies(cookies)  # type: ignore[arg-type]
    await viewer_a.reload()
    # B, with a token and no wallet yet, and a device clock an hour fast.
    viewer_b: Page = await new_page()
    await viewer_b.add_init_script(FAST_CLOCK)
    await viewer_b.goto(f"{live.url}/s/{stream}#token={live.token('buyer', 'bob')}")
    card_b = viewer_b.locator("#auction-slot .auction-card")
    await expect(card_b.locator(".auction-clock")).to_have_text(re.compile(r"^0:[0-3]\d$"), timeout=5 * MS)
    obs: Page = await new_page()
    await obs.set_viewport_size({"width": 1920, "height": 1080})
    await obs.goto(f"{live.url}/obs/{stream}")
    card_obs = obs.locator("#obs-auction .auction-card")
    await expect(card_obs.locator(".auction-amount")).to_have_text("$10.00", timeout=5 * MS)

    # A bids the start price in one tap: A leads as paddle 1, and a bid in the last 60 s
    # moves the clock out to a minute.
    before = await ends_ms(viewer_a)
    await card_a.get_by_role("button", name="Bid $10.00").click()
    await expect(card_a.locator(".auction-you")).to_have_text("You're winning", timeout=5 * MS)
    await expect(card_a.locator(".auction-lead")).to_have_text("Paddle #1 leads · 1 bid")
    await expect(card_a.locator(".auction-clock")).to_have_text(re.compile(r"^(0:5\d|1:00)$"))
    assert await ends_ms(viewer_a) > before

    # B has no wallet: the problem's words, and no bid.
    await card_b.get_by_role("button", name="Bid $10.50").click()
    await expect(card_b.locator(".auction-note")).to_have_text(re.compile("Add a card and an address"),
                                                              timeout=5 * MS)
    expected(page_errors, 409)
    await give_wallet(live, "bob")

    # B bids higher: A sees it was outbid, with B's price and paddle; the clock moves out again.
    before = await ends_ms(viewer_a)
    await card_b.get_by_role("button", name="Bid $10.50").click()
    await expect(card_b.locator(".auction-you")).to_have_text("You're winning", timeout=5 * MS)
    await expect(card_a.locator(".auction-you")).to_have_text("You were outbid", timeout=5 * MS)
    await expect(card_a.locator(".auction-amount")).to_have_text("$10.50")
    await expect(card_a.locator(".auction-lead")).to_have_text("Paddle #2 leads · 2 bids")
    await expect(card_a.get_by_role("button", name="Bid $11.00")).to_be_visible()
    assert await ends_ms(viewer_a) > before
    await expect(card_b.locator(".auction-clock")).to_have_text(re.compile(r"^(0:5\d|1:00)$"))
    await shot(viewer_a, "auction-outbid")

    # A sets a max of $20: proxy bidding takes the lead one step over B's max.
    await card_a.get_by_label("Your max bid (USD)").fill("20")
    await card_a.get_by_role("button", name="Set max bid").click()
    await expect(card_a.locator(".auction-you")).to_have_text("You're winning", timeout=5 * MS)
    await expect(card_b.locator(".auction-you")).to_have_text("You were outbid", timeout=5 * MS)
    await expect(card_b.locator(".auction-amount")).to_have_text("$11.00")

    # The host's bid list, newest first; the OBS card follows the price and the leader.
    rows = host.locator("#auction-bids tr")
    await expect(rows).to_have_count(3, timeout=5 * MS)
    await expect(rows.nth(0)).to_contain_text("Leads")
    await expect(rows.nth(0)).to_contain_text("$20.00")
    await expect(rows.nth(1)).to_contain_text("bob")
    await expect(card_obs.locator(".auction-amount")).to_have_text("$11.00", timeout=5 * MS)
    await expect(card_obs.locator(".auction-lead")).to_have_text("Paddle #1 leads · 3 bids")
    await expect(card_obs.locator(".auction-clock")).to_be_visible()
    await expect(host.get_by_role("button", name="Cancel auction")).to_be_hidden()

    # At the deadline it closes (the closer's call, made here at its `now`): every screen
    # shows the result.
    auction = await card_a.get_attribute("data-auction")
    assert auction
    await live.services.auctions.close(StreamId(stream), auction, now_ms=await ends_ms(viewer_a))
    await expect(card_a.locator(".auction-you")).to_have_text("You won!", timeout=5 * MS)
    await expect(card_b.locator(".auction-you")).to_have_text("Someone else won this one", timeout=5 * MS)
    for page_card in (card_a, card_obs, host.locator(".host-auction .auction-card")):
        await expect(page_card.locator(".auction-status")).to_have_text(
            "Sold for $11.00 to Paddle #1", timeout=5 * MS)
    await expect(card_a.locator(".auction-bid")).to_be_hidden()
    await shot(obs, "auction-obs")


async def test_a_late_joiner_gets_the_card_from_the_snapshot(live: Live, new_page: Any) -> None:
    await make_brand(live)
    product = await make_product(live, sku="LOT-2", title="Vintage Tee", stock=1)
    stream = str((await make_live_stream(live, [product["id"]]))["id"])
    await give_wallet(live, "ann")
    r = await live.http.post(f"/api/v1/streams/{stream}/auctions", headers=live.auth("creator", "cleo"),
                             json={"product_id": product["id"], "start_minor": 2500})
    assert r.status_code == 201, r.text
    bid = await live.http.post(f"/api/v1/streams/{stream}/auctions/{r.json()['id']}/bids",
                               json={"max_minor": 4000},
                               headers={**live.auth("buyer", "ann"), "Idempotency-Key": "bid-late-1"})
    assert bid.status_code == 201, bid.text
    page: Page = await new_page()
    await page.goto(f"{live.url}/s/{stream}#token={live.token('buyer', 'bob')}")
    card = page.locator("#auction-slot .auction-card")
    await expect(card.locator(".auction-amount")).to_have_text("$25.00", timeout=5 * MS)
    await expect(card.locator(".auction-lead")).to_have_text("Paddle #1 leads · 1 bid")
    await expect(card.get_by_role("button", name="Bid $26.00")).to_be_visible()
    await expect(card.locator(".auction-you")).to_be_hidden()
