"""The brand's Orders page and the buyer's side of it, in real Chromium against a real node
capturing on shipment: the brand ships an order with its tracking number (the payment is
captured then), refunds part of it, the buyer's receipt shows both and asks for a return,
the brand approves it; the dashboard's totals and the report follow to the cent."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Live
from playwright.async_api import Page, expect

from checkout.reconcile import reconcile
from live.accounts.accounts import Grant
from live.accounts.auth import Role
from shop import buy, give_wallet
from test_pages import MS, shop, shot


@pytest.fixture
def node_settings() -> dict[str, Any]:
    return {"capture_mode": "on_shipment"}


async def buyer_page(live: Live, new_page: Any, email: str) -> tuple[Page, str]:
    """A page signed in as a new buyer account (its session made by the node's store)."""
    account, _ = await live.services.accounts.sign_in(email)
    token, _ = await live.services.sessions.create(account.id, Grant(Role.BUYER, account.id))
    page: Page = await new_page()
    await page.context.add_cookies([{"name": "lc_session", "value": token, "url": live.url}])
    return page, account.id


async def brand_report(live: Live) -> dict[str, Any]:
    await live.services.aggregator.drain()
    r = await live.http.get("/api/v1/brands/acme/report", headers=live.auth("brand", "acme"))
    return dict(r.json())


async def test_the_brand_ships_refunds_part_and_settles_a_return(live: Live,
                                                                 new_page: Any) -> None:
    stream, (shoe,) = await shop(live, {"title": "Trail Runner", "price_minor": 5000,
                                        "commission_bps": 1000})
    buyer, ann = await buyer_page(live, new_page, "ann@example.com")
    await live.services.accounts.set_display_name(ann, "Ann Lee")
    await give_wallet(live, ann)
    r = await buy(live, ann, shoe["id"], stream=stream["id"])
    assert r.status_code == 201 and r.json()["order"]["state"] == "authorized", r.text
    order_id = r.json()["order"]["id"]

    # The dashboard links to the Orders page, which carries the brand's token along.
    brand: Page = await new_page()
    await brand.goto(f"{live.url}/brand/acme#token={live.token('brand', 'acme')}")
    await brand.get_by_role("link", name="Orders").click()
    await expect(brand).to_have_url(f"{live.url}/brand/acme/orders")
    row = brand.locator(f'tr[data-key="{order_id}"]')
    await expect(row).to_contain_text("Awaiting capture", timeout=5 * MS)
    await expect(row).to_contain_text("Ann Lee")
    await row.get_by_role("button", name=f"Open order {order_id}").click()
    detail = brand.locator("#detail")
    await expect(detail).to_contain_text("ann@example.com")
    await expect(detail).to_contain_text("1 St")

    # Ship it: the payment is captured first, then it is on its way.
    await brand.get_by_label("Carrier").fill("UPS")
    await brand.get_by_label("Tracking number").fill("1Z999AA10123456784")
    await brand.get_by_role("button", name="Mark shipped").click()
    await expect(brand.locator("#detail-state")).to_have_text("Shipped", timeout=5 * MS)
    assert (await live.services.gateway.charges(order_id))["state"] == "captured"

    # Refund part of it: $12.50 of $50.00.
    await brand.get_by_label("Amount (empty: all that remains)").fill("12.50")
    await brand.get_by_role("button", name="Refund", exact=True).click()
    await expect(brand.locator("#d-refunded")).to_have_text("$12.50", timeout=5 * MS)
    await expect(row).to_contain_text("$12.50")
    report = await brand_report(live)
    # Commission 500 less floor(500 * 1250 / 5000) = 125; payout 5000 - 1250 - 375.
    assert (report["captured_minor"], report["refunded_minor"], report["commission_minor"],
            report["payout_minor"]) == (5000, 1250, 375, 3375)
    dashboard: Page = await new_page()
    await dashboard.goto(f"{live.url}/brand/acme#token={live.token('brand', 'acme')}")
    await expect(dashboard.locator("#t-refunded")).to_have_text("$12.50", timeout=5 * MS)
    await expect(dashboard.locator("#t-payout")).to_have_text("$33.75")

    # The buyer's receipt: shipped, its tracking, the partial refund; then a return.
    await buyer.goto(f"{live.url}/me/orders/{order_id}")
    await expect(buyer.locator("#receipt-state")).to_have_text("Shipped with UPS",
                                                               timeout=5 * MS)
    await expect(buyer.locator("#r-tracking")).to_have_text("UPS · tracking 1Z999AA10123456784")
    await expect(buyer.locator("#r-refunded")).to_have_text("Refunded $12.50 of $50.00")
    await buyer.get_by_label("Send it back: why?").fill("Too small")
    await buyer.get_by_role("button", name="Request a return").click()
    await expect(buyer.locator("#r-return")).to_have_text(
        "Return requested: waiting for the shop", timeout=5 * MS)
    await expect(buyer.locator("#return-form")).to_be_hidden()
    await shot(buyer, "receipt-shipped")

    # The brand approves it, refunding the rest with the units back in stock.
    await brand.get_by_label("State").select_option("shipped")
    await brand.get_by_role("button", name="Filter").click()
    await row.get_by_role("button", name=f"Open order {order_id}").click()
    await expect(brand.locator("#return-reason")).to_have_text("Too small", timeout=5 * MS)
    await brand.get_by_role("button", name="Approve and refund").click()
    await expect(brand.locator("#detail-state")).to_have_text("Refunded", timeout=5 * MS)
    await expect(brand.locator("#d-return")).to_contain_text("Refunded: Too small")
    await shot(brand, "brand-orders")
    await expect(dashboard.locator("#t-refunded")).to_have_text("$50.00", timeout=5 * MS)
    await expect(dashboard.locator("#t-payout")).to_have_text("$0.00")

    await buyer.goto(f"{live.url}/me/orders")
    item = buyer.locator(f'li[data-key="{order_id}"]')
    await expect(item.locator(".state")).to_have_text("Refunded", timeout=5 * MS)
    await expect(item.locator('[data-note="return"]')).to_have_text("Return accepted and refunded")
    await expect(item.locator('[data-note="tracking"]')).to_have_text(
        "UPS · tracking 1Z999AA10123456784")
    await live.services.aggregator.drain()
    assert (await reconcile(live.services.client, live.services.gateway,
                            live.services.settings.partitions)).ok


async def test_the_orders_page_signed_out_says_how_to_get_in(live: Live,
                                                             new_page: Any) -> None:
    """(Another brand's token is refused by the API: tests/test_roles.py.)"""
    await shop(live, {"title": "Trail Runner"})
    page: Page = await new_page()
    await page.goto(f"{live.url}/brand/acme/orders")
    await expect(page.locator("#banner")).to_contain_text("Sign in", timeout=5 * MS)
