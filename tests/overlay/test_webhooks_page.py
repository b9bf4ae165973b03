"""The brand's Webhooks page and the API reference page in real Chromium against a real
node, with a real webhook receiver (tests/hook_receiver.py). Any console error or page
exception fails a test (`new_page`); every wait is an `expect` or `eventually`."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis
from playwright.async_api import expect
from standardwebhooks.webhooks import Webhook

from conftest import UNIT, Live
from hook_receiver import Receiver, receiver  # noqa: F401 - the fixture
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product

from checkout.store.keys import hook_keys
from checkout.webhook_events import owner_partition
from live.node.app import openapi_document

MS = 1000 * UNIT


@pytest.fixture
def node_settings() -> dict[str, Any]:
    return {"webhook_allow_private": True, "webhook_retry_schedule_s": (0.05,),
            "webhook_retry_jitter": 0.0}


async def test_a_brand_adds_an_endpoint_sees_its_log_and_resends(
        live: Live, new_page: Any, receiver: Receiver, rclient: redis.Redis) -> None:
    await make_brand(live)
    product = await make_product(live, title="Trail Runner")
    stream = await make_live_stream(live, [product["id"]])
    page = await new_page()
    await page.goto(f"{live.url}/brand/acme#token={live.token('brand', 'acme')}")
    await page.get_by_role("link", name="Webhooks").click()
    await expect(page).to_have_url(f"{live.url}/brand/acme/webhooks", timeout=5 * MS)

    await page.get_by_label("URL").fill(f"{receiver.url}/page")
    await page.get_by_label("order.paid").check()
    await page.get_by_role("button", name="Add endpoint").click()
    await expect(page.locator("#secret")).to_contain_text("whsec_", timeout=5 * MS)
    secret = await page.locator("#secret").text_content()
    assert secret is not None
    await expect(page.locator("#endpoints")).to_contain_text(f"{receiver.url}/page")
    await expect(page.locator("#endpoints")).to_contain_text("order.paid · enabled")

    await give_wallet(live, "bob")
    assert (await buy(live, "bob", product["id"], stream=stream["id"])).status_code == 201
    [hit] = await receiver.wait("/page", 1)
    assert Webhook(secret.strip()).verify(hit.body, hit.headers)["type"] == "order.paid"
    endpoint = (await live.http.get("/api/v1/brands/acme/webhooks",
                                    headers=live.auth("brand", "acme"))).json()["items"][0]

    async def delivered() -> Any:
        r = await live.http.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries",
                                headers=live.auth("brand", "acme"))
        return r.json()["items"] and r.json()["items"][0]["status"] == "delivered"

    await eventually(delivered, "the delivery logged")
    await page.get_by_role("button", name="Deliveries").click()
    row = page.locator("#deliveries tr").first
    await expect(row).to_have_attribute("data-status", "delivered", timeout=5 * MS)
    await expect(row).to_contain_text("order.paid")
    await row.get_by_role("button", name="Resend").click()
    hits = await receiver.wait("/page", 2)
    assert hits[1].headers["webhook-id"] == hit.headers["webhook-id"]
    await expect(page.locator("#deliveries-status")).to_contain_text("Queued again")

    # Disabled (as after days of failures): it says so, and Enable brings it back.
    hooks = hook_keys(owner_partition("brand:acme", live.services.settings.partitions))
    await rclient.hset(hooks.endpoint(endpoint["id"]), mapping={
        "enabled": "0", "disabled_reason": "1000 failed attempts in a row"})
    await page.reload()
    await expect(page.locator("#endpoints")).to_contain_text("disabled (1000 failed attempts",
                                                            timeout=5 * MS)
    await page.get_by_role("button", name="Enable").click()
    await expect(page.locator("#endpoints")).to_contain_text("order.paid · enabled", timeout=5 * MS)
    await expect(page.get_by_role("button", name="Enable")).to_have_count(0)


async def test_the_webhooks_page_signed_out_says_how_to_get_in(live: Live, new_page: Any) -> None:
    await make_brand(live)
    page = await new_page()
    await page.goto(f"{live.url}/brand/acme/webhooks")
    await expect(page.locator("#banner")).to_contain_text("Sign in", timeout=5 * MS)
    await expect(page.locator("#add-form")).to_be_hidden()


async def test_the_api_reference_renders_every_operation_from_the_node(live: Live,
                                                                      new_page: Any) -> None:
    page = await new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = await page.goto(f"{live.url}/docs")
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]
    operations = sum(len(ops) for ops in openapi_document(live.services.settings)["paths"].values())
    blocks = page.locator(".opblock")
    await expect(blocks).to_have_count(operations, timeout=15 * MS)
    await expect(page.locator(".opblock-summary-path[data-path='/api/v1/brands/{brand}/webhooks']")
                 ).to_have_count(2)
    await expect(page.get_by_text("Register a webhook endpoint for the brand's events").first
                 ).to_be_visible()
    assert requested and all(url.startswith(live.url) for url in requested), requested
