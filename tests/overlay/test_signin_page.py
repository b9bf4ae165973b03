"""Signing in from the viewer page in real Chromium, with a real SMTP server reading the mail:
signed out, Buy says sign in; the sign-in page takes the email and the mailed code and
comes back to the stream signed in (its API calls and hub socket on the session); the mailed
link does the same from another browser; sign-out; no redirect ever leaves the node."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from conftest import UNIT, Live, PageErrors
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import Page, expect

from test_buyer_journey import signed_in_page
from test_pages import MS, card, pin, shop, shot


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url}


async def test_buy_signed_out_signs_in_by_email_and_comes_back(
        live: Live, new_page: Any, smtp: Inbox) -> None:  # noqa: F811
    stream, (shoe,) = await shop(live, {"title": "Trail Runner", "stock": 3})
    await pin(live, stream, shoe)
    viewer: Page = await new_page()
    sockets: list[str] = []
    viewer.on("websocket", lambda ws: sockets.append(ws.url))
    await viewer.goto(f"{live.url}/s/{stream['id']}")
    await expect(viewer.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)

    # Signed out: Buy says so, with the way in.
    await card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    await expect(sheet.get_by_role("status")).to_contain_text("Sign in to buy")
    sign_in = sheet.get_by_role("link", name="Sign in")
    await expect(sign_in).to_be_focused()
    await sign_in.click()

    # The sign-in page: email, then the code from the mail; next: back to this product.
    await expect(viewer).to_have_url(
        f"{live.url}/signin?next=%2Fs%2F{stream['id']}%3Fbuy%3D{shoe['id']}")
    await expect(viewer.get_by_role("heading", name="Sign in")).to_be_visible()
    email = viewer.get_by_role("textbox", name="Email", exact=True)
    await expect(email).to_be_focused()
    await email.fill("Stranger@Example.com")
    await viewer.get_by_role("button", name="Email me a code").click()
    await expect(viewer.get_by_role("heading", name="Check your email")).to_be_visible(timeout=5 * MS)
    await expect(viewer.locator("#sent-to")).to_have_text("Stranger@Example.com")
    mail = await smtp.next_mail("Stranger@example.com")
    code = viewer.get_by_label("6-digit code")
    await expect(code).to_be_focused()
    await code.fill(mail.code)
    await shot(viewer, "signin")
    await viewer.get_by_role("button", name="Sign in").click()

    # Back on the stream, signed in, the sheet open again: it knows who, and the API answers
    # for the account (a new one: its wallet is empty, so the sheet asks for an address).
    await expect(viewer).to_have_url(f"{live.url}/s/{stream['id']}", timeout=5 * MS)
    await expect(viewer.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    await expect(sheet.get_by_label("Full name")).to_be_focused(timeout=5 * MS)
    await expect(sheet.locator("#account")).to_contain_text("Signed in as Stranger@example.com")
    # Its hub socket carries a short-lived ticket, not a long-lived token.
    await expect(viewer.locator("#conn")).to_have_attribute("data-status", "live")
    ticketed = [u for u in sockets if "access_token=" in u]
    assert ticketed, sockets
    ticket = re.search(r"access_token=([^&]+)", ticketed[-1])
    assert ticket
    principal = live.services.tokens.verify(ticket.group(1))
    account = await live.services.accounts.find("Stranger@example.com")
    assert account is not None and principal.subject == account.id
    assert principal.expires_at - principal_issued(live, ticket.group(1)) == 60

    # Sign out from the sheet: the page starts over, signed out.
    await sheet.get_by_role("button", name="Sign out", exact=True).click()
    await expect(viewer.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    await card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    await expect(sheet.get_by_role("status")).to_contain_text("Sign in to buy", timeout=5 * MS)
    await expect(sheet.locator("#account")).to_be_hidden()


def principal_issued(live: Live, token: str) -> int:
    import jwt
    return int(jwt.decode(token, options={"verify_signature": False})["iat"])


async def test_the_mailed_link_signs_in_another_browser(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    stream, _ = await shop(live, {"title": "Trail Runner", "stock": 3})
    r = await live.http.post("/auth/email/start", json={"email": "linked@example.com",
                                                        "next": f"/s/{stream['id']}"})
    assert r.status_code == 202
    mail = await smtp.next_mail("linked@example.com")
    phone: Page = await new_page()
    await phone.goto(mail.link)
    await expect(phone).to_have_url(f"{live.url}/s/{stream['id']}", timeout=5 * MS)
    # The token is gone from the history, and the page is signed in.
    assert "token=" not in await phone.evaluate("document.referrer + location.href")
    session = await phone.evaluate("fetch('/auth/session').then((r) => r.json())")
    assert session["signed_in"] and session["account"]["email"] == "linked@example.com"
    # Opened again (a used link), it says so and asks for the email.
    again: Page = await new_page()
    await again.goto(mail.link)
    await expect(again.get_by_role("status")).to_have_text(re.compile("expired or was used"),
                                                           timeout=5 * MS)
    await expect(again.get_by_role("textbox", name="Email", exact=True)).to_be_focused()
    page_errors[:] = [e for e in page_errors if "status of 410" not in e]  # that answer


async def test_no_next_leaves_the_node(live: Live, new_page: Any, smtp: Inbox) -> None:  # noqa: F811
    page: Page = await new_page()
    await page.goto(f"{live.url}/signin?next=https%3A%2F%2Fevil.example%2F")
    await page.get_by_role("textbox", name="Email", exact=True).fill("safe@example.com")
    await page.get_by_role("button", name="Email me a code").click()
    mail = await smtp.next_mail("safe@example.com")
    assert "next=" not in mail.link  # the link does not carry it either
    await page.get_by_label("6-digit code").fill(mail.code)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live.url}/", timeout=5 * MS)

    # Signed in, /signin offers Continue (to a safe next) and Sign out.
    await page.goto(f"{live.url}/signin?next=%2F%2Fevil.example%2Fx")
    await expect(page.get_by_role("heading", name="You're signed in")).to_be_visible(timeout=5 * MS)
    await expect(page.get_by_role("link", name="Continue")).to_have_attribute("href", "/")
    bad = ["//evil.example", "/\\evil.example", "https://evil.example", "javascript:alert(1)",
           "/\t/evil.example", "/\n/evil.example", "evil.example", "", " /s/x", "http:/x"]
    good = ["/", "/s/abc", "/s/abc?x=1#y"]
    results = await page.evaluate(
        "async (values) => (await import('/static/api.js')).safeNext ? "
        "values.map((await import('/static/api.js')).safeNext) : null", bad + good)
    assert results == ["/"] * len(bad) + good
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page.get_by_role("textbox", name="Email", exact=True)).to_be_visible()
    session = await page.evaluate("fetch('/auth/session').then((r) => r.json())")
    assert session == {"signed_in": False}


async def test_the_account_panel_names_you_and_signs_out_everywhere(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    """Signed in here and on another device: the name is saved from the panel, and "Sign
    out everywhere" ends both sessions."""
    page, _ = await signed_in_page(live, new_page, smtp, "two@example.com")
    async with httpx.AsyncClient(base_url=live.url, timeout=10 * UNIT) as phone:
        r = await phone.post("/auth/email/start", json={"email": "two@example.com"})
        code = (await smtp.next_mail("two@example.com")).code
        r = await phone.post("/auth/email/verify",
                             json={"challenge": r.json()["challenge"], "code": code})
        assert r.status_code == 200, r.text
        assert (await phone.get("/auth/session")).json()["signed_in"] is True
        await page.goto(f"{live.url}/signin")
        await expect(page.get_by_role("heading", name="You're signed in")).to_be_visible(
            timeout=5 * MS)
        await page.get_by_label("Your name").fill("Sam Two")
        await page.get_by_role("button", name="Save name").click()
        await expect(page.locator("#message")).to_have_text("Saved: you're Sam Two.",
                                                            timeout=5 * MS)
        account = await live.services.accounts.find("two@example.com")
        assert account is not None and account.display_name == "Sam Two"

        await page.get_by_role("button", name="Sign out everywhere").click()
        await expect(page.locator("#message")).to_have_text(
            "Signed out everywhere (2 sessions ended).", timeout=5 * MS)
        await expect(page.get_by_role("textbox", name="Email", exact=True)).to_be_visible()
        assert (await phone.get("/auth/session")).json() == {"signed_in": False}
        session = await page.evaluate("fetch('/auth/session').then((r) => r.json())")
        assert session == {"signed_in": False}
