"""Follows in real Chromium, with a real SMTP inbox: signed out, Follow on a creator's page
leads to the sign-in (the code from the mail) and back; Follow counts on that page; "Remind
me" on an upcoming card of `/`; when the shows go live, the For-you row of `/` lists them
and the mail says so."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from conftest import Live
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import Page, expect
from shop import make_stream

from test_pages import MS, shot
from test_storefront import show_card


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url}


async def test_follow_remind_and_see_them_live_for_you(live: Live, new_page: Any,
                                                       smtp: Inbox) -> None:  # noqa: F811
    soon = int(time.time() * 1000) + 10 * 60_000
    drop = await make_stream(live, [], "cleo", title="Sneaker drop", scheduled_at_ms=soon)
    hike = await make_stream(live, [], "dana", title="Hike kit", scheduled_at_ms=soon)
    page: Page = await new_page()

    # Signed out: Follow is the way to sign in, and back.
    await page.goto(f"{live.url}/c/cleo")
    follow = page.get_by_role("link", name="Follow cleo (sign in)")
    await expect(follow).to_have_attribute("href", "/signin?next=%2Fc%2Fcleo", timeout=5 * MS)
    await follow.click()
    await page.get_by_role("textbox", name="Email", exact=True).fill("fan@example.com")
    await page.get_by_role("button", name="Email me a code").click()
    await page.get_by_label("6-digit code").fill((await smtp.next_mail("fan@example.com")).code)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live.url}/c/cleo", timeout=5 * MS)

    # Signed in: Follow, and the count says so.
    button = page.get_by_role("button", name="Follow cleo")
    await expect(button).to_have_attribute("aria-pressed", "false", timeout=5 * MS)
    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")
    await expect(button).to_have_text("Following")
    await expect(page.locator("#stats")).to_have_text(re.compile(r"^1 follower · "))
    await shot(page, "creator-following")

    # Home: Remind me on Dana's upcoming show; For you is empty for now.
    await page.goto(f"{live.url}/")
    remind = show_card(page, "upcoming-list", "Hike kit").get_by_role(
        "button", name="Remind me of Hike kit")
    await remind.click()
    await expect(remind).to_have_text("Reminder set")
    await expect(page.locator("#for-you-empty")).to_be_visible()
    # Cleo's card in Creators shows the Follow state from the page's load.
    await expect(page.locator("#creator-list").get_by_role("button", name="Follow cleo")
                 ).to_have_attribute("aria-pressed", "true")

    for stream, creator in ((drop, "cleo"), (hike, "dana")):
        r = await live.http.post(f"/api/v1/streams/{stream['id']}/live",
                                 headers=live.auth("creator", creator))
        assert r.status_code == 200, r.text
    subjects = {str((await smtp.next_mail("fan@example.com")).message["Subject"])
                for _ in range(2)}
    assert subjects == {"cleo is live: Sneaker drop", "dana is live: Hike kit"}

    await page.reload()
    await expect(show_card(page, "for-you-list", "Sneaker drop")).to_be_visible(timeout=5 * MS)
    await expect(show_card(page, "for-you-list", "Hike kit")).to_be_visible()
    await expect(page.get_by_role("heading", name="For you")).to_be_visible()
    await shot(page, "home-for-you", full_page=True)
