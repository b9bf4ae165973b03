"""Invitations in real Chromium, a browser context per person, a real SMTP server reading the
mail: an operator invites a brand admin, who opens the link signed out, signs in by email,
accepts and lands on the brand dashboard of its brand, and invites a member from it; a
creator appoints a moderator from its page, who lands on the host console, read-only but
for the chat; a used link and a link opened by the wrong account say so."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from conftest import UNIT, Live, PageErrors
from inbox import Inbox, Received, smtp  # noqa: F401 - the fixture
from playwright.async_api import Page, expect
from shop import buy, give_wallet, make_brand, make_live_stream, make_product

from test_pages import MS, shot

OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url}


@pytest.fixture
async def person(browser: Any, page_errors: PageErrors, live: Live) -> AsyncIterator[OpenPage]:
    """A page in a browser context of its own (its own cookies: one person), optionally
    signed in already with a session cookie; any console error or exception fails the test."""
    contexts = []

    async def open_page(cookie: str | None = None) -> Page:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        if cookie is not None:
            await context.add_cookies([{"name": "lc_session", "value": cookie, "url": live.url}])
        page = await context.new_page()
        page.on("console", lambda m: page_errors.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: page_errors.append(f"pageerror: {e}"))
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert not page_errors, page_errors


def link_of(mail: Received) -> str:
    match = re.search(r"(https?://\S+/invite/\S+)", mail.text)
    assert match, mail.text
    return match.group(1)


async def signed_in_cookie(live: Live, inbox: Inbox, email: str) -> str:
    """A session of `email`'s account, signed in with the mailed code (over HTTP: the page
    way is the first test's)."""
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as client:
        r = await client.post("/auth/email/start", json={"email": email})
        assert r.status_code == 202, r.text
        code = (await inbox.next_mail(email)).code
        r = await client.post("/auth/email/verify", json={"challenge": r.json()["challenge"],
                                                          "code": code})
        assert r.status_code == 200, r.text
        return str(client.cookies["lc_session"])


async def sign_in_on_page(page: Page, inbox: Inbox, email: str) -> None:
    """The sign-in page, as a person uses it: the address, then the mailed code."""
    await page.get_by_role("textbox", name="Email", exact=True).fill(email)
    await page.get_by_role("button", name="Email me a code").click()
    await expect(page.get_by_role("heading", name="Check your email")).to_be_visible(timeout=5 * MS)
    await page.get_by_label("6-digit code").fill((await inbox.next_mail(email)).code)
    await page.get_by_role("button", name="Sign in").click()


async def test_an_invited_brand_admin_signs_in_accepts_and_invites_a_member(
        live: Live, smtp: Inbox, person: OpenPage) -> None:  # noqa: F811
    await make_brand(live)
    shoe = await make_product(live, title="Trail Runner", stock=5)
    stream = await make_live_stream(live, [shoe["id"]])
    await give_wallet(live, "bob")
    assert (await buy(live, "bob", shoe["id"], stream=stream["id"])).status_code == 201

    r = await live.http.post("/api/v1/invitations", headers=live.auth("operator", "ops"),
                             json={"email": "ann@example.com", "grant": "brand:acme",
                                   "brand_role": "admin"})
    assert r.status_code == 201, r.text
    link = link_of(await smtp.next_mail("ann@example.com"))

    # Signed out, the link says what it is for and how to take it.
    ann = await person()
    await ann.goto(link)
    await expect(ann.locator("#invite-what")).to_have_text(
        "You're invited as an admin of the brand Acme.", timeout=5 * MS)
    await expect(ann.locator("#invite-email")).to_have_text("ann@example.com")
    await shot(ann, "invite")
    await ann.get_by_role("link", name="Sign in to accept").click()
    await expect(ann).to_have_url(re.compile(r"/signin\?next=%2Finvite%2Finv_"))
    await sign_in_on_page(ann, smtp, "ann@example.com")

    # Back on the invitation, signed in as the invited address: Accept.
    await expect(ann).to_have_url(link, timeout=5 * MS)
    accept = ann.get_by_role("button", name="Accept")
    await expect(accept).to_be_focused(timeout=5 * MS)
    await accept.click()

    # The brand dashboard of acme, on the session (no token anywhere), with acme's sales.
    await expect(ann).to_have_url(f"{live.url}/brand/acme", timeout=5 * MS)
    await expect(ann.locator("#brand-name")).to_have_text("Acme", timeout=5 * MS)
    await expect(ann.locator("#t-orders")).to_have_text("1", timeout=5 * MS)
    await expect(ann.locator("#conn")).to_have_attribute("data-status", "live", timeout=5 * MS)
    session = await ann.evaluate("fetch('/auth/session').then((r) => r.json())")
    assert session["active"] == "brand:acme"

    # The admin invites a member from the Team panel.
    team = ann.locator("#team-panel")
    await expect(team.locator(".team-who")).to_have_text(["ann@example.com"], timeout=5 * MS)
    await team.get_by_role("textbox", name="Email").fill("max@example.com")
    await team.get_by_role("combobox", name="Role").select_option("member")
    await team.get_by_role("button", name="Invite").click()
    await expect(team.get_by_role("status")).to_have_text("Invitation sent to max@example.com.",
                                                          timeout=5 * MS)
    await expect(team.get_by_role("button", name="Revoke the invitation of max@example.com")) \
        .to_be_visible()
    await shot(ann, "brand-team", full_page=True)

    # The member takes it the same way and sees the dashboard; the team is read-only to it.
    max_ = await person()
    await max_.goto(link_of(await smtp.next_mail("max@example.com")))
    await expect(max_.locator("#invite-what")).to_have_text(
        "You're invited as a member of the brand Acme.", timeout=5 * MS)
    await max_.get_by_role("link", name="Sign in to accept").click()
    await sign_in_on_page(max_, smtp, "max@example.com")
    await max_.get_by_role("button", name="Accept").click()
    await expect(max_).to_have_url(f"{live.url}/brand/acme", timeout=5 * MS)
    await expect(max_.locator("#t-orders")).to_have_text("1", timeout=5 * MS)
    member_team = max_.locator("#team-panel")
    await expect(member_team.locator("[data-part=note]")).to_have_text(
        "Only an admin invites or removes people here.", timeout=5 * MS)
    await expect(member_team.locator("form")).to_be_hidden()
    await expect(member_team.get_by_role("button")).to_have_count(0)


async def test_a_creator_appoints_a_moderator_who_gets_a_read_only_host_console(
        live: Live, smtp: Inbox, person: OpenPage) -> None:  # noqa: F811
    await make_brand(live)
    shoe = await make_product(live, title="Trail Runner", stock=5)
    stream = await make_live_stream(live, [shoe["id"]], title="Trail gear drop")
    r = await live.http.post("/api/v1/invitations", headers=live.auth("operator", "ops"),
                             json={"email": "cleo@example.com", "grant": "creator:cleo"})
    assert r.status_code == 201, r.text
    link = link_of(await smtp.next_mail("cleo@example.com"))
    cleo = await person(await signed_in_cookie(live, smtp, "cleo@example.com"))
    await cleo.goto(link)
    await cleo.get_by_role("button", name="Accept").click()
    await expect(cleo).to_have_url(f"{live.url}/creator/cleo", timeout=5 * MS)

    moderators = cleo.locator("#moderators-panel")
    await expect(moderators.get_by_role("button", name="Appoint moderator")).to_be_visible(
        timeout=5 * MS)
    await moderators.get_by_role("textbox", name="Email").fill("mo@example.com")
    await moderators.get_by_role("button", name="Appoint moderator").click()
    await expect(moderators.get_by_role("status")).to_have_text(
        "Invitation sent to mo@example.com.", timeout=5 * MS)

    mo_link = link_of(await smtp.next_mail("mo@example.com"))
    mo = await person(await signed_in_cookie(live, smtp, "mo@example.com"))
    await mo.goto(mo_link)
    await expect(mo.locator("#invite-what")).to_have_text(
        "You're invited as a moderator of cleo's streams.", timeout=5 * MS)
    await mo.get_by_role("button", name="Accept").click()

    # The host console of cleo's live stream: everything the host sees, nothing to press.
    await expect(mo).to_have_url(f"{live.url}/host/{stream['id']}", timeout=5 * MS)
    await expect(mo.locator("#stream-title")).to_have_text("Trail gear drop", timeout=5 * MS)
    await expect(mo.locator("#banner")).to_contain_text("You moderate cleo's streams")
    await expect(mo.get_by_role("button", name="Pin Trail Runner")).to_be_disabled()
    await expect(mo.get_by_role("button", name="End stream")).to_be_hidden()
    await expect(mo.get_by_role("button", name="Start deal")).to_be_disabled()
    await expect(mo.get_by_role("button", name="Go live with camera")).to_be_disabled()
    await expect(mo.locator("#conn")).to_have_attribute("data-status", "live", timeout=5 * MS)
    # The host pins: the moderator's console follows the room.
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/pins",
                             json={"product_id": shoe["id"]}, headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    await expect(mo.locator("#preview-cards .card")).to_have_count(1, timeout=5 * MS)
    # The chat pane is the moderator's to use: it chats as a moderator.
    await mo.locator("#mod-input").fill("Welcome, everyone!")
    await mo.locator("#mod-send-btn").click()
    said = mo.locator("#mod-chat .chat-msg", has_text="Welcome, everyone!")
    await expect(said.locator(".chat-badge")).to_have_text(["Mod"], timeout=5 * MS)
    await shot(mo, "host-console-moderator", full_page=True)

    # The creator sees its moderator, and removes it.
    await cleo.reload()
    await expect(moderators.locator(".team-who")).to_have_text(["mo@example.com"], timeout=5 * MS)
    await moderators.get_by_role("button", name="Remove mo@example.com").click()
    await expect(moderators.get_by_role("status")).to_have_text("Removed mo@example.com.",
                                                                timeout=5 * MS)
    await expect(moderators.locator("[data-part=members] .team-who")).to_have_count(0)


async def test_used_links_and_the_wrong_account_are_told_so(
        live: Live, smtp: Inbox, person: OpenPage, page_errors: PageErrors) -> None:  # noqa: F811
    r = await live.http.post("/api/v1/invitations", headers=live.auth("operator", "ops"),
                             json={"email": "ann@example.com", "grant": "creator:ann"})
    assert r.status_code == 201, r.text
    link = link_of(await smtp.next_mail("ann@example.com"))

    # Signed in as someone else: the page says so, and offers to switch.
    eve = await person(await signed_in_cookie(live, smtp, "eve@example.com"))
    await eve.goto(link)
    await expect(eve.locator("#step-other")).to_contain_text(
        "You're signed in as eve@example.com; this invitation is for another address.",
        timeout=5 * MS)
    await expect(eve.get_by_role("button", name="Accept")).to_be_hidden()
    await eve.get_by_role("button", name="Sign out and sign in with the invited address").click()
    await expect(eve).to_have_url(re.compile(r"/signin\?next=%2Finvite%2Finv_"), timeout=5 * MS)
    await expect(eve.get_by_role("textbox", name="Email", exact=True)).to_be_visible()

    ann = await person(await signed_in_cookie(live, smtp, "ann@example.com"))
    await ann.goto(link)
    await ann.get_by_role("button", name="Accept").click()
    await expect(ann).to_have_url(f"{live.url}/creator/ann", timeout=5 * MS)
    # Opened again: it has been used.
    await ann.goto(link)
    await expect(ann.get_by_role("status")).to_have_text(
        "This invitation has been accepted already.", timeout=5 * MS)
    await expect(ann.get_by_role("heading", name="Invitation unavailable")).to_be_visible()
    await ann.goto(f"{live.url}/invite/not-a-token")
    await expect(ann.get_by_role("status")).to_have_text(re.compile("broken or unknown"),
                                                         timeout=5 * MS)
    # Those answers (410, 404) are what the page read; Chromium logs each as an error.
    page_errors[:] = [e for e in page_errors if not re.search(r"status of 4(10|04)", e)]
