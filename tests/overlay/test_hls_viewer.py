"""The viewer page past the node's WebRTC capacity, in real Chromium against a real node: a
real aiortc publisher (as tests/live/test_recording.py) takes the node's only media peer,
so the page's WHEP offer is refused (503) and it plays the show's live HLS through the
vendored hls.js; a pin posted meanwhile is held until the HLS picture reaches it. Every
wait is a multiple of conftest.UNIT; nothing asserts how fast anything is.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack
from playwright.async_api import Page, expect

from conftest import UNIT, Live, PageErrors
from loadtest.video_source import CounterTrack
from loadtest.webrtc_peers import Publisher, publish
from shop import eventually, give_wallet, make_brand, make_product, make_stream
from test_pages import shot
from test_video_pages import PICTURE

MS = 1000 * UNIT  # Playwright timeouts are in milliseconds


@pytest.fixture
def node_settings() -> dict[str, Any]:
    # One media peer per node: the publisher's. Every WHEP viewer is refused.
    return {"video_ice_hosts": ("127.0.0.1",), "video_max_peers": 1}


async def publishing(live: Live) -> tuple[dict[str, Any], str, Publisher]:
    await make_brand(live)
    product = await make_product(live, title="Trail Runner", stock=30)
    stream = await make_stream(live, [product["id"]], title="Camera drop")
    publisher = await publish(live.http, stream["id"], live.token("creator", "cleo"),
                              CounterTrack(), AudioStreamTrack())
    session = live.services.video.sessions[stream["id"]]
    # The playlist exists (a 404 would be a console error, which fails the test).
    await eventually(lambda: session.recorder is not None
                     and len(session.recorder.writer.segments) >= 2, "two recorded segments", 30)
    return stream, product["id"], publisher


async def watch_over_hls(live: Live, new_page: Any, page_errors: PageErrors,
                         stream: dict[str, Any], fragment: str = "",
                         requested: list[str] | None = None) -> Page:
    viewer = await new_page()
    if requested is not None:
        viewer.on("request", lambda request: requested.append(request.url))
    async with viewer.expect_response(lambda r: r.url.endswith("/whep") and r.status == 503,
                                      timeout=10 * MS):
        await viewer.goto(f"{live.url}/s/{stream['id']}{fragment}")
    await viewer.wait_for_function(
        "() => document.getElementById('video').dataset.path === 'hls'"
        " && window.__livecartVideo.lastDisplayedPts !== null", timeout=30 * MS)
    # The browser logs the refused offer; that is the only error the page may have.
    refused = [e for e in page_errors if "status of 503" in e]
    assert refused and len(refused) == len(page_errors), page_errors
    page_errors.clear()
    return viewer


async def test_a_refused_viewer_plays_hls_through_hlsjs(live: Live, new_page: Any,
                                                       page_errors: PageErrors) -> None:
    stream, _, publisher = await publishing(live)
    requested: list[str] = []
    viewer = await watch_over_hls(live, new_page, page_errors, stream, requested=requested)
    video = viewer.locator("#video")
    await expect(video).to_have_attribute("data-engine", "hls.js")
    await expect(viewer.locator("#hls-badge")).to_be_visible()
    assert await viewer.evaluate("typeof window.Hls") == "function"
    assert await viewer.evaluate("window.__livecartVideo.clock") == "hls"

    before = await viewer.evaluate("document.getElementById('video').currentTime")
    await viewer.wait_for_function(f"() => document.getElementById('video').currentTime > {before + 1}",
                                   timeout=20 * MS)
    picture = await viewer.evaluate(PICTURE)
    # The counter camera: grey with black and white cells, far from a blank frame.
    assert picture["mean"] > 20 and picture["variance"] > 50, picture
    # The picture's media time moves on the node's media clock, behind the node's own.
    shown = await viewer.evaluate("window.__livecartVideo.lastDisplayedPts")
    node_now = live.services.video.sessions[stream["id"]].clock.now()
    assert 0 < shown < node_now
    assert live.services.video.peers.count("viewer") == 0
    # Low-latency HLS: hls.js reloads the playlist with blocking requests and plays parts.
    hls = [url.split("/hls/", 1)[1] for url in requested if "/hls/" in url]
    parts = [u for u in hls if re.search(r"/part-[0-9]+-[0-9]+\.m4s$", u)]
    assert parts, hls
    assert any(re.search(r"index\.m3u8\?_HLS_msn=[0-9]+&_HLS_part=[0-9]+$", u) for u in hls), hls
    await shot(viewer, "viewer-hls")
    assert await publisher.stop() == 200


# Records #pinned's card count and the gate's picture media time at every change of #pinned.
WATCH_PINNED = """() => {
  window.__pinnedSeen = [];
  new MutationObserver(() => window.__pinnedSeen.push({
    cards: document.querySelectorAll('#pinned article.card').length,
    shownPts: window.__livecartVideo.lastDisplayedPts,
  })).observe(document.getElementById('pinned'), { childList: true, subtree: true });
}"""


async def test_a_pin_waits_for_the_hls_picture(live: Live, new_page: Any,
                                              page_errors: PageErrors) -> None:
    stream, product_id, publisher = await publishing(live)
    viewer = await watch_over_hls(live, new_page, page_errors, stream)
    await viewer.evaluate(WATCH_PINNED)

    r = await live.http.post(f"/api/v1/streams/{stream['id']}/pins", json={"product_id": product_id},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    await expect(viewer.locator("#pinned article.card")).to_have_count(1, timeout=30 * MS)

    released = await viewer.evaluate("window.__livecartVideo.released.filter((r) => r.type === 'pin')")
    assert len(released) == 1, released
    pin = released[0]
    assert pin["why"] == "picture", pin
    # When the hub delivered it the HLS picture was still before its moment: it was held...
    assert pin["displayedOnArrivalPts"] is not None and pin["displayedOnArrivalPts"] < pin["pts"], pin
    # ...until the picture on screen had reached it, and the card came no earlier.
    assert pin["displayedPts"] >= pin["pts"], pin
    seen = await viewer.evaluate("window.__pinnedSeen")
    first = next(s for s in seen if s["cards"] > 0)
    assert first["shownPts"] >= pin["pts"], (first, pin)
    assert await publisher.stop() == 200


async def test_an_hls_viewers_buy_says_how_far_behind_its_picture_is(
        live: Live, new_page: Any, page_errors: PageErrors) -> None:
    """The deal window follows the picture (docs/checkout.md "A deal on every screen"): the
    page measures its HLS picture's delay behind the room and its buy carries it."""
    stream, product_id, publisher = await publishing(live)
    await give_wallet(live, "bob")
    viewer = await watch_over_hls(live, new_page, page_errors, stream,
                                  f"#token={live.token('buyer', 'bob')}")
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/pins", json={"product_id": product_id},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    await viewer.locator("#pinned article.card .buy-btn").click(timeout=30 * MS)
    sheet = viewer.get_by_role("dialog", name="Trail Runner")
    pay = sheet.get_by_role("button", name="Pay $50.00")
    async with viewer.expect_request(lambda q: q.url.endswith("/api/v1/buy")) as sent:
        await pay.click(timeout=10 * MS)
    body = (await sent.value).post_data_json
    assert 0 < body["viewer_delay_ms"] < 60_000, body  # an HLS picture is segments behind
    await expect(sheet.get_by_role("status")).to_contain_text("Order confirmed", timeout=10 * MS)
    assert await publisher.stop() == 200
