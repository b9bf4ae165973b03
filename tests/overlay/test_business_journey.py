"""Issue #11's proof in one journey, in real Chromium against one real node capturing on
shipment, a browser context per person, a real SMTP server reading the mail: a brand admin
(invited, signed in on the page) makes a product with two sizes and an image on the
catalog console, starts an affiliate program by approval at 15% and approves the creator
who applied from the studio; the creator schedules a show with the product, goes live with
the (fake) camera and pins it; a buyer signs up from the viewer's sheet, picks a size and
pays; the brand ships it with a tracking number (the payment is captured then) and refunds
part of it: the order, the brand's dashboard, the creator's earnings and the buyer's
receipt all follow, to the cent.

Only the operator's moves (making the brand, inviting its admin and the creator) are API
calls: the node has no operator page for them. Every amount is computed from the price
set here with the ledger's documented rules (docs/checkout.md): commission rounded down,
a refund reversing floor(commission × refunded / amount) of it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Live
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from playwright.async_api import Page, expect
from shop import make_brand, png

from checkout.reconcile import reconcile
from test_buyer_journey import fill_address, fill_card
from test_invite_pages import OpenPage, link_of, person, sign_in_on_page  # noqa: F401 - person
from test_pages import MS, card

PRICE = 3899  # $38.99
COMMISSION_BPS = 1500  # 15%
REFUND = 1234  # $12.34 of it
TRACKING = "1Z999AA10123456784"


@pytest.fixture
def node_settings(smtp: Inbox) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url, "capture_mode": "on_shipment",
            "video_ice_hosts": ("127.0.0.1",)}


def amount(minor: int) -> str:
    """What a person types: "38.99" (integer arithmetic, as money is here)."""
    return f"{minor // 100}.{minor % 100:02d}"


def usd(minor: int) -> str:
    return f"${amount(minor)}"


async def accept_invitation(live: Live, inbox: Inbox, person: OpenPage, email: str,
                            grant: str, **extra: Any) -> Page:
    """The operator invites `email`; its owner opens the link signed out, signs in on the
    page with the mailed code and accepts."""
    r = await live.http.post("/api/v1/invitations", headers=live.auth("operator", "ops"),
                             json={"email": email, "grant": grant, **extra})
    assert r.status_code == 201, r.text
    page = await person()
    await page.goto(link_of(await inbox.next_mail(email)))
    await page.get_by_role("link", name="Sign in to accept").click()
    await sign_in_on_page(page, inbox, email)
    accept = page.get_by_role("button", name="Accept")
    await expect(accept).to_be_focused(timeout=5 * MS)
    await accept.click()
    return page


async def another_tab(page: Page, errors: list[str], url: str) -> Page:
    """A second page of the same person (same cookies), its errors failing the test too."""
    tab = await page.context.new_page()
    tab.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
           if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    await tab.goto(url)
    return tab


async def test_a_brand_and_a_creator_run_their_business_from_product_to_partial_refund(
        live: Live, smtp: Inbox, person: OpenPage, page_errors: list[str]) -> None:  # noqa: F811
    commission = PRICE * COMMISSION_BPS // 10_000
    reversed_ = commission * REFUND // PRICE
    await make_brand(live)

    # 1. The brand admin, invited and signed in, makes the product on the catalog console.
    ann = await accept_invitation(live, smtp, person, "ann@example.com", "brand:acme",
                                  brand_role="admin")
    await expect(ann).to_have_url(f"{live.url}/brand/acme", timeout=5 * MS)
    await ann.get_by_role("link", name="Catalog").click()
    await expect(ann.locator("#products-empty")).to_be_visible(timeout=5 * MS)
    await ann.get_by_role("button", name="New product").click()
    await ann.get_by_label("Title").fill("Trail Tee")
    await ann.get_by_label("Price").fill(amount(PRICE))
    await ann.get_by_label("SKU", exact=True).fill("TEE")
    await ann.get_by_role("button", name="Add an option").click()
    await ann.get_by_label("Option 1 name").fill("Size")
    await ann.get_by_label("Option 1 values").fill("S, M")
    await ann.get_by_role("button", name="Make variants from the options").click()
    for size, stock in (("S", "6"), ("M", "5")):
        await ann.get_by_label(f"SKU of {size}").fill(f"TEE-{size}")
        await ann.get_by_label(f"Stock of {size}").fill(stock)
    await ann.get_by_role("button", name="Save product").click()
    await expect(ann.locator("#form-status")).to_have_text("Saved.", timeout=5 * MS)
    await ann.get_by_label("Add images").set_input_files(
        files=[{"name": "tee.png", "mimeType": "image/png", "buffer": png("#0f766e", (96, 96))}])
    await expect(ann.locator("#images-status")).to_have_text("tee.png added.", timeout=5 * MS)
    image = ann.locator("#images img")
    await expect(image).to_have_attribute("src", re.compile(r"^/media/images/[0-9a-f]{64}\.png$"))
    assert await image.evaluate("(img) => img.decode().then(() => img.naturalWidth)") == 96
    await expect(ann.locator("#stock tr")).to_have_count(2)
    src = await image.get_attribute("src")

    # 2. A program by approval at 15%; the creator applies from the studio; the brand approves.
    await ann.goto(f"{live.url}/brand/acme")
    await ann.get_by_role("link", name="Affiliate program").click()
    await ann.get_by_label("Default commission (%)").fill("15")
    await ann.get_by_label("Who may sell your products").select_option("approval")
    await ann.get_by_role("button", name="Save program").click()
    await expect(ann.locator("#settings-status")).to_have_text(
        "Saved: 15% by default, creators you approve.", timeout=5 * MS)

    cleo = await accept_invitation(live, smtp, person, "cleo@example.com", "creator:cleo")
    await expect(cleo).to_have_url(f"{live.url}/creator/cleo", timeout=5 * MS)
    await cleo.get_by_role("link", name="Studio: shows, programs, earnings").click()
    await expect(cleo).to_have_url(f"{live.url}/studio/cleo")
    await cleo.get_by_label("Your note to Acme").fill("Trail runner, 40k followers")
    await cleo.get_by_role("button", name="Apply to Acme").click()
    await expect(cleo.locator("#programs-status")).to_have_text(
        "Applied to Acme: you'll see its answer here.", timeout=5 * MS)

    await ann.reload()
    application = ann.locator('.application[data-creator="cleo"]')
    await expect(application).to_contain_text("Trail runner, 40k followers", timeout=5 * MS)
    await application.get_by_role("button", name="Approve cleo").click()
    await expect(ann.locator("#applications-status")).to_have_text("cleo approved.",
                                                                  timeout=5 * MS)

    # 3. The creator schedules a show with the tee, goes live with the camera and pins it.
    await cleo.reload()
    await expect(cleo.locator('.program-item[data-brand="acme"] .team-what')).to_have_text(
        "Approved: you may sell", timeout=5 * MS)
    await cleo.get_by_label(f"Trail Tee · {usd(PRICE)} · 15%").check()
    await cleo.get_by_label("Title").fill("Trail Tee drop")
    await cleo.get_by_role("button", name="Schedule show").click()
    await expect(cleo.locator("#show-status")).to_have_text("Scheduled “Trail Tee drop”.",
                                                            timeout=5 * MS)
    show = cleo.locator('.show-item[data-state="scheduled"]')
    stream_id = await show.get_attribute("data-stream")
    await show.get_by_role("link", name="Go live with camera").click()
    await expect(cleo).to_have_url(f"{live.url}/host/{stream_id}")
    await cleo.get_by_role("button", name="Go live with camera").click()
    await expect(cleo.locator("#camera-state")).to_have_text("On air", timeout=15 * MS)
    await expect(cleo.locator("#state-pill")).to_have_text("Live", timeout=5 * MS)
    await cleo.get_by_role("button", name="Pin Trail Tee").click()

    # 4. A buyer watching taps Buy, signs up in the sheet's way, sets up the wallet there,
    # picks size M and pays: authorized only, the capture waits for the shipment.
    sam = await person()
    await sam.goto(f"{live.url}/s/{stream_id}")
    await expect(sam.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    await expect(sam.locator(".card--pinned .card-img")).to_have_attribute("src", src or "",
                                                                           timeout=5 * MS)
    await card(sam, "Trail Tee").get_by_role("button", name="Buy Trail Tee").click(timeout=5 * MS)
    sheet = sam.get_by_role("dialog", name="Trail Tee")
    await sheet.get_by_role("link", name="Sign in").click()
    await sign_in_on_page(sam, smtp, "sam@example.com")
    await expect(sam).to_have_url(f"{live.url}/s/{stream_id}", timeout=5 * MS)
    setup = sheet.get_by_role("region", name="Where to, and how to pay")
    await expect(setup).to_be_visible(timeout=5 * MS)
    await fill_address(setup)
    await fill_card(setup, "4242 4242 4242 4242")
    await setup.get_by_role("button", name="Save and continue").click()
    size_m = sheet.get_by_role("radio", name="M")
    await size_m.check(timeout=5 * MS)
    await expect(size_m).to_be_checked()
    await sheet.get_by_role("button", name=f"Pay {usd(PRICE)}").click()
    await expect(sheet.get_by_role("status")).to_contain_text("Order confirmed", timeout=5 * MS)
    order_id = (await sheet.locator("#order-id").text_content() or "").strip()
    charge = await live.services.gateway.charges(order_id)  # type: ignore[attr-defined]
    assert charge["state"] == "authorized", charge

    # 5. The brand sees who bought and where it goes, and ships it: captured then.
    await ann.goto(f"{live.url}/brand/acme")
    dashboard = await another_tab(ann, page_errors, f"{live.url}/brand/acme")
    await expect(dashboard.locator("#conn")).to_have_attribute("data-status", "live",
                                                               timeout=5 * MS)
    await ann.get_by_role("link", name="Orders").click()
    row = ann.locator(f'tr[data-key="{order_id}"]')
    await expect(row).to_contain_text("Awaiting capture", timeout=5 * MS)
    await expect(row).to_contain_text("Sam Stranger")
    await row.get_by_role("button", name=f"Open order {order_id}").click()
    await expect(ann.locator("#d-buyer")).to_have_text("Sam Stranger · sam@example.com")
    await expect(ann.locator("#d-ship")).to_have_text("Sam Stranger, 12 Harbour Rd, 97201 Portland, US")
    await expect(ann.locator("#d-line")).to_contain_text(f"1 × {usd(PRICE)}")
    await ann.get_by_label("Carrier").fill("UPS")
    await ann.get_by_label("Tracking number").fill(TRACKING)
    await ann.get_by_role("button", name="Mark shipped").click()
    await expect(ann.locator("#detail-state")).to_have_text("Shipped", timeout=5 * MS)
    await expect(ann.locator("#d-tracking")).to_have_text(f"UPS · {TRACKING}")
    charge = await live.services.gateway.charges(order_id)  # type: ignore[attr-defined]
    assert charge["state"] == "captured", charge
    r = await live.http.get(f"/api/v1/orders/{order_id}", headers=live.auth("brand", "acme"))
    order = r.json()
    assert (order["state"], order["amount_minor"], order["commission_minor"], order["variant"]) == (
        "shipped", PRICE, commission, "m"), order
    # The dashboard follows live: captured, with the creator's 15% and the rest to the brand.
    await expect(dashboard.locator("#t-captured")).to_have_text(usd(PRICE), timeout=5 * MS)
    await expect(dashboard.locator("#t-commission")).to_have_text(usd(commission), timeout=5 * MS)
    await expect(dashboard.locator("#t-payout")).to_have_text(usd(PRICE - commission))
    await expect(dashboard.locator("#t-refunded")).to_have_text(usd(0))
    await live.services.aggregator.drain()
    await cleo.goto(f"{live.url}/studio/cleo")
    await expect(cleo.locator("#earned-total")).to_have_text(f"{usd(commission)} earned, 1 order",
                                                             timeout=5 * MS)

    # 6. A partial refund: the order, the dashboard and the creator's earnings go down by
    # exactly its share, the commission reversed pro rata.
    await ann.get_by_label("Amount (empty: all that remains)").fill(amount(REFUND))
    await ann.get_by_role("button", name="Refund", exact=True).click()
    await expect(ann.locator("#d-refunded")).to_have_text(usd(REFUND), timeout=5 * MS)
    await expect(ann.locator("#detail-state")).to_have_text("Shipped")
    await expect(row).to_contain_text(usd(REFUND))
    net = commission - reversed_
    await expect(dashboard.locator("#t-refunded")).to_have_text(usd(REFUND), timeout=5 * MS)
    await expect(dashboard.locator("#t-commission")).to_have_text(usd(net), timeout=5 * MS)
    await expect(dashboard.locator("#t-payout")).to_have_text(usd(PRICE - REFUND - net))
    await expect(dashboard.locator("#t-captured")).to_have_text(usd(PRICE))
    await live.services.aggregator.drain()
    await cleo.reload()
    await expect(cleo.locator("#earned-total")).to_have_text(f"{usd(net)} earned, 1 order",
                                                             timeout=5 * MS)
    await expect(cleo.locator("#by-show tr")).to_have_text(
        [f"Trail Tee drop1{usd(PRICE - REFUND)}{usd(net)}"])

    # The buyer: shipped, with its tracking and the refund, on the receipt and the list.
    await sam.goto(f"{live.url}/me/orders/{order_id}")
    await expect(sam.locator("#receipt-state")).to_have_text("Shipped with UPS", timeout=5 * MS)
    await expect(sam.locator("#r-tracking")).to_have_text(f"UPS · tracking {TRACKING}")
    await expect(sam.locator("#r-refunded")).to_have_text(
        f"Refunded {usd(REFUND)} of {usd(PRICE)}")
    await sam.get_by_role("link", name="All orders").click()
    item = sam.locator(f'li[data-key="{order_id}"]')
    await expect(item.locator(".state")).to_contain_text("Shipped", timeout=5 * MS)
    await expect(item.locator('[data-note="tracking"]')).to_have_text(f"UPS · tracking {TRACKING}")
    assert (await reconcile(live.services.client, live.services.gateway,
                            live.services.settings.partitions)).ok
