"""A stranger arriving by a creator's link, in real Chromium with a real SMTP server: the
product page's Buy signs in first (email and code), comes back to the product, and the buy
made with the new session is credited to the creator whose link it was."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Live
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import expect

from shop import give_wallet, make_brand, make_product
from test_pages import MS


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url}


async def test_buy_signed_out_signs_in_and_keeps_the_creators_attribution(
        live: Live, new_page: Any, smtp: Inbox) -> None:  # noqa: F811
    await make_brand(live)
    lamp = await make_product(live, title="Camp Lamp", price_minor=3900, commission_bps=1000)
    r = await live.http.post("/api/v1/links", json={"product_id": lamp["id"]},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 201, r.text
    code = r.json()["code"]

    page = await new_page()
    await page.goto(f"{live.url}/l/{code}")
    await expect(page.get_by_role("heading", name="Camp Lamp", level=1)).to_be_visible()
    await page.get_by_role("link", name="Buy").click()
    await expect(page).to_have_url(f"{live.url}/signin?next=/p/{lamp['id']}")
    await page.get_by_role("textbox", name="Email", exact=True).fill("new@example.com")
    await page.get_by_role("button", name="Email me a code").click()
    mail = await smtp.next_mail("new@example.com")
    await page.get_by_label("6-digit code").fill(mail.code)
    await page.get_by_role("button", name="Sign in").click()

    # Back on the product, signed in (the session): Buy buys.
    await expect(page).to_have_url(f"{live.url}/p/{lamp['id']}", timeout=5 * MS)
    account = await live.services.accounts.find("new@example.com")
    assert account is not None
    await give_wallet(live, account.id)  # the wallet page is another piece of work
    await page.get_by_role("button", name="Buy").click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text("Order confirmed", timeout=5 * MS)
    order_id = re.sub(r"^.*Order ", "", await status.text_content() or "").strip()
    r = await live.http.get(f"/api/v1/orders/{order_id}", headers=live.auth("buyer", account.id))
    order = r.json()
    # No ?attr= came back from the sign-in: the first-party cookie carried cleo's click.
    assert (order["buyer"], order["channel"], order["creator"], order["link"]) == (
        account.id, "link", "cleo", code)
