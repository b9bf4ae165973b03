"""A show's product funnel from the viewer's page to the brand's dashboard, in real Chromium
against a real node and hub: a card on screen is a view, a tap on Buy a click, the host
console and the OBS source count nothing, and the dashboard's Shows panel shows the numbers,
refreshed while the show is live."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page, expect

from conftest import Live
from shop import eventually
from test_pages import DESKTOP, MS, card, open_viewer, pin, shop


async def funnel(live: Live, stream_id: str) -> dict[str, tuple[int, int]]:
    r = await live.http.get(f"/api/v1/brands/acme/shows/{stream_id}/products",
                            headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    return {row["title"]: (row["views"], row["clicks"]) for row in r.json()["items"]}


async def test_a_viewers_view_and_tap_reach_the_brands_shows_panel(live: Live,
                                                                   new_page: Any) -> None:
    stream, (shoe, _jacket) = await shop(live, {"title": "Trail Runner"},
                                         {"title": "Rain Jacket", "price_minor": 12900})
    await pin(live, stream, shoe)
    # The host console and the OBS source show the card too, and are no audience.
    host: Page = await new_page()
    await host.goto(f"{live.url}/host/{stream['id']}#token={live.token('creator', 'cleo')}")
    await expect(host.locator("#preview-cards .card")).to_have_count(1, timeout=5 * MS)
    obs: Page = await new_page()
    await obs.goto(f"{live.url}/obs/{stream['id']}")
    await expect(card(obs, "Trail Runner", "#cards")).to_be_visible(timeout=5 * MS)

    viewer = await open_viewer(live, new_page, stream)
    await expect(card(viewer, "Trail Runner")).to_be_visible()
    await eventually(lambda: _is(funnel(live, stream["id"]),
                                 {"Trail Runner": (1, 0), "Rain Jacket": (0, 0)}),
                     "the pinned card's view, none for the jacket in the closed tray")
    await card(viewer, "Trail Runner").get_by_role("button", name="Buy Trail Runner").click()
    await expect(viewer.get_by_role("dialog", name="Trail Runner")).to_be_visible()
    await eventually(lambda: _is(funnel(live, stream["id"]),
                                 {"Trail Runner": (1, 1), "Rain Jacket": (0, 0)}), "the tap")

    brand: Page = await new_page()
    await brand.set_viewport_size(DESKTOP)
    await brand.goto(f"{live.url}/brand/acme#token={live.token('brand', 'acme')}")
    panel = brand.get_by_role("region", name="Shows", exact=True)
    await expect(panel.get_by_role("combobox")).to_contain_text("Trail gear drop · Live",
                                                              timeout=5 * MS)
    row = panel.locator(f'tr[data-key="{shoe["id"]}"]')
    await expect(row.locator("td")).to_have_text(
        ["Trail Runner" + shoe["id"], "1", "1", "100.0%", "0", "0", "0", "$0.00", "0.0%"],
        timeout=5 * MS)

    # The viewer opens the tray: the jacket is seen, and the live panel follows.
    await viewer.get_by_role("button", name="Close").click()
    await viewer.locator("#tray summary").click()
    jacket = panel.locator("tr", has=brand.get_by_text("Rain Jacket"))
    await expect(jacket.locator("td").nth(1)).to_have_text("1", timeout=10 * MS)


async def _is(pending: Any, expected: Any) -> bool:
    return bool(await pending == expected)
