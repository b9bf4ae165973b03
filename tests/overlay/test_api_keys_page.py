"""The brand dashboard's API keys panel in real Chromium: make a key with ticked scopes, its
secret shown once, the key works within them from outside the page, revoke it."""

from __future__ import annotations

from typing import Any

import httpx
from conftest import Live, PageErrors
from playwright.async_api import Page, expect

from shop import make_brand, make_product
from test_pages import DESKTOP, MS


async def test_make_use_and_revoke_a_key_from_the_dashboard(
        live: Live, new_page: Any, page_errors: PageErrors) -> None:
    await make_brand(live)
    product = await make_product(live)
    page: Page = await new_page()
    await page.set_viewport_size(DESKTOP)
    await page.goto(f"{live.url}/brand/acme#token={live.token('brand', 'acme')}")
    panel = page.get_by_role("region", name="API keys")
    await expect(panel).to_be_visible(timeout=5 * MS)
    await expect(panel.get_by_text("No API key yet.")).to_be_visible()

    await panel.get_by_label("Name").fill("Warehouse sync")
    await panel.get_by_label("Read the catalog (catalog:read)").check()
    await panel.get_by_role("button", name="Make a key").click()
    secret = panel.get_by_label("The new key (shown once)")
    await expect(panel.get_by_role("status")).to_contain_text("Warehouse sync made",
                                                              timeout=5 * MS)
    key = await secret.input_value()
    assert key.startswith("lck_")
    rows = panel.get_by_role("listitem")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("catalog:read · last used never")

    async with httpx.AsyncClient(base_url=live.url) as outside:
        auth = {"Authorization": f"Bearer {key}"}
        r = await outside.get(f"/api/v1/products/{product['id']}/stock", headers=auth)
        assert r.status_code == 200, r.text
        await panel.get_by_role("button", name="I've saved it").click()
        await expect(secret).to_be_hidden()
        await panel.get_by_role("button", name="Revoke Warehouse sync").click()
        await expect(panel.get_by_role("status")).to_contain_text("revoked", timeout=5 * MS)
        await expect(rows).to_have_count(0)
        r = await outside.get(f"/api/v1/products/{product['id']}/stock", headers=auth)
        assert r.status_code == 401
