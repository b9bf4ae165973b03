"""Passkeys in real Chromium with its virtual authenticator (CDP WebAuthn domain: ctap2,
internal transport, resident keys, user verification that passes): sign up by email (the
code read from a real SMTP server), add a passkey on the sign-in page, sign out, sign in
with the passkey alone, and buy on the viewer page with one passkey tap.

The pages are opened at http://localhost: a secure context for WebAuthn, whose RP ID may
not be an IP address."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Live, PageErrors
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import Page, expect

from test_pages import MS, card, pin, shop, shot
from shop import give_wallet, idem, make_brand, make_live_stream, make_product, stock_of


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url}


async def virtual_authenticator(page: Page) -> tuple[Any, str]:
    """A platform authenticator for `page` that answers every prompt with a verified user
    (the tap and the fingerprint a person would give)."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


async def credentials(cdp: Any, authenticator: str) -> list[dict[str, Any]]:
    reply = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    return list(reply["credentials"])


async def test_sign_up_add_a_passkey_sign_in_with_it_and_buy_with_one_tap(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    stream, (shoe,) = await shop(live, {"title": "Trail Runner", "stock": 3})
    await pin(live, stream, shoe)
    base = live.url.replace("://127.0.0.1:", "://localhost:")
    page: Page = await new_page()
    cdp, authenticator = await virtual_authenticator(page)

    # Sign up by email, coming back to the sign-in page's account panel.
    await sign_up(live, page, smtp, "tap@example.com")
    await page.goto(f"{base}/signin?next=%2Fs%2F{stream['id']}")
    await expect(page.get_by_role("heading", name="You're signed in")).to_be_visible(timeout=5 * MS)
    passkeys = page.get_by_role("region", name="Passkeys")
    await expect(passkeys).to_be_visible()
    await expect(passkeys.get_by_role("list", name="Your passkeys")).to_be_hidden()  # none yet

    # Add a passkey: the authenticator makes a discoverable credential for "localhost".
    await passkeys.get_by_label("Name of the new passkey").fill("Test phone")
    await passkeys.get_by_role("button", name="Add a passkey").click()
    await expect(page.get_by_role("status")).to_contain_text('Passkey “Test phone” added',
                                                            timeout=5 * MS)
    rows = passkeys.get_by_role("listitem")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Test phone")
    await expect(rows.first).to_contain_text("not used yet")
    await shot(page, "passkeys")
    made = await credentials(cdp, authenticator)
    assert len(made) == 1 and made[0]["isResidentCredential"] and made[0]["rpId"] == "localhost"
    account = await live.services.accounts.find("tap@example.com")
    assert account is not None
    stored = await live.services.passkeys.store.list(account.id)
    assert [p.name for p in stored] == ["Test phone"]
    assert stored[0].id == made[0]["credentialId"].replace("+", "-").replace("/", "_").rstrip("=")

    # Sign out, then sign in with the passkey alone: no email, no code, back to the stream.
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(passkeys).to_be_hidden()
    passkey_button = page.get_by_role("button", name="Sign in with a passkey")
    await expect(passkey_button).to_be_visible()
    await passkey_button.click()
    await expect(page).to_have_url(f"{base}/s/{stream['id']}", timeout=5 * MS)
    assert len(smtp.to("tap@example.com")) == 1  # only the sign-up's mail
    session = await page.evaluate("fetch('/auth/session').then((r) => r.json())")
    assert session["account"]["id"] == account.id and session["buy_confirm"] == "passkey"

    # A returning buyer with a wallet: Buy, Pay, and one passkey tap confirms it.
    await give_wallet(live, account.id)
    await expect(page.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    count_before = (await credentials(cdp, authenticator))[0]["signCount"]
    await card(page, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    sheet = page.get_by_role("dialog", name="Trail Runner")
    await sheet.get_by_role("button", name=re.compile(r"^Pay ")).click()
    await expect(sheet.get_by_role("status")).to_contain_text("Order confirmed", timeout=5 * MS)
    order_id = await sheet.locator("#order-id").text_content()
    order = await live.services.orders.get(order_id or "")
    assert order is not None and order.fields["buyer"] == account.id
    # The tap was the passkey's: its counter moved, and the account's page says it was used.
    assert (await credentials(cdp, authenticator))[0]["signCount"] > count_before
    (used,) = await live.services.passkeys.store.list(account.id)
    assert used.last_used_ms > 0 and used.sign_count == (await credentials(
        cdp, authenticator))[0]["signCount"]


async def sign_up(live: Live, page: Page, smtp: Inbox, email: str) -> None:  # noqa: F811
    """Sign up on the sign-in page (at http://localhost) by email with the mailed code."""
    base = live.url.replace("://127.0.0.1:", "://localhost:")
    await page.goto(f"{base}/signin")
    await page.get_by_role("textbox", name="Email", exact=True).fill(email)
    await page.get_by_role("button", name="Email me a code").click()
    await page.get_by_label("6-digit code").fill((await smtp.next_mail(email)).code)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/", timeout=5 * MS)


async def signed_up_with_a_passkey(live: Live, page: Page, smtp: Inbox,  # noqa: F811
                                   email: str) -> str:
    """Sign up on the page by email, then add a passkey on the account panel: the id."""
    base = live.url.replace("://127.0.0.1:", "://localhost:")
    await sign_up(live, page, smtp, email)
    await page.goto(f"{base}/signin")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.get_by_role("listitem")).to_have_count(1, timeout=5 * MS)
    account = await live.services.accounts.find(email)
    assert account is not None
    return account.id


async def test_a_held_order_is_paid_from_its_receipt_with_one_tap(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    """A cart hold (made through the API) is paid on its receipt page: Pay now, one passkey
    tap, and the receipt shows it paid with the wallet's card."""
    await make_brand(live)
    product = await make_product(live, title="Trail Runner", stock=3)
    stream = await make_live_stream(live, [product["id"]], purchase_mode="cart_hold")
    base = live.url.replace("://127.0.0.1:", "://localhost:")
    page: Page = await new_page()
    cdp, authenticator = await virtual_authenticator(page)
    account_id = await signed_up_with_a_passkey(live, page, smtp, "held@example.com")
    await give_wallet(live, account_id)
    r = await live.http.post("/api/v1/cart/items", headers={
        **live.auth("buyer", account_id), "Idempotency-Key": idem()},
        json={"product_id": product["id"], "stream_id": stream["id"]})
    assert r.status_code == 201, r.text
    order_id = r.json()["order_id"]

    await page.goto(f"{base}/me/orders/{order_id}")
    await expect(page.locator("#receipt-state")).to_contain_text("Held, not paid yet: pay by",
                                                                 timeout=5 * MS)
    count_before = (await credentials(cdp, authenticator))[0]["signCount"]
    await page.get_by_role("button", name="Pay now").click()
    await expect(page.get_by_role("status")).to_have_text("Paid. Thank you!", timeout=5 * MS)
    await expect(page.locator("#receipt-state")).to_have_text("Paid, awaiting shipment")
    await expect(page.get_by_role("button", name="Pay now")).to_be_hidden()
    await expect(page.locator("#r-card")).to_contain_text("4242")
    assert (await credentials(cdp, authenticator))[0]["signCount"] > count_before
    order = await live.services.orders.get(order_id)
    assert order is not None and order.state.value == "paid"
    assert (await stock_of(live, product["id"]))["default"]["sold"] == 1


async def test_a_cancelled_passkey_prompt_buys_nothing(
        live: Live, new_page: Any, smtp: Inbox, page_errors: PageErrors) -> None:  # noqa: F811
    """A buyer who closes the passkey prompt is told so; nothing is bought; Pay again works."""
    stream, (shoe,) = await shop(live, {"title": "Trail Runner", "stock": 3})
    await pin(live, stream, shoe)
    base = live.url.replace("://127.0.0.1:", "://localhost:")
    page: Page = await new_page()
    cdp, authenticator = await virtual_authenticator(page)
    account_id = await signed_up_with_a_passkey(live, page, smtp, "nope@example.com")
    await give_wallet(live, account_id)

    await page.goto(f"{base}/s/{stream['id']}")
    await expect(page.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    # The person does not confirm (the fingerprint does not match, the prompt is closed).
    await cdp.send("WebAuthn.setUserVerified", {"authenticatorId": authenticator,
                                                "isUserVerified": False})
    await card(page, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    sheet = page.get_by_role("dialog", name="Trail Runner")
    pay = sheet.get_by_role("button", name=re.compile(r"^Pay "))
    await pay.click()
    await expect(sheet.get_by_role("status")).to_contain_text("Not confirmed", timeout=10 * MS)
    await expect(sheet.get_by_role("status")).to_contain_text("nothing was charged")
    assert (await stock_of(live, shoe["id"]))["default"]["sold"] == 0
    # Confirmed this time: Pay again buys it.
    await cdp.send("WebAuthn.setUserVerified", {"authenticatorId": authenticator,
                                                "isUserVerified": True})
    await expect(pay).to_be_enabled()
    await pay.click()
    await expect(sheet.get_by_role("status")).to_contain_text("Order confirmed", timeout=5 * MS)
    assert (await stock_of(live, shoe["id"]))["default"]["sold"] == 1
