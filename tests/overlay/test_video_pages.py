"""Live video in the pages, in real Chromium against a real node: the host console publishes
Chromium's fake camera over WHIP, the viewer page plays it over WHEP, and overlay events
wait for the picture. Any console error fails a test (the `new_page` fixture); every wait
is a multiple of conftest.UNIT; nothing asserts how fast anything is.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Page, expect

from conftest import UNIT, Live, PageErrors
from shop import make_brand, make_product, make_stream, video_stats
from test_pages import DESKTOP, SHOTS, shot

MS = 1000 * UNIT  # Playwright timeouts are in milliseconds

# The frame the viewer shows, 64x36 on a canvas: mean luma and its variance (0-255).
PICTURE = """() => {
  const video = document.getElementById("video");
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 36;
  const g = canvas.getContext("2d");
  g.drawImage(video, 0, 0, 64, 36);
  const px = g.getImageData(0, 0, 64, 36).data;
  let sum = 0, squares = 0;
  for (let i = 0; i < px.length; i += 4) {
    const y = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    sum += y;
    squares += y * y;
  }
  const n = px.length / 4;
  return { mean: sum / n, variance: squares / n - (sum / n) ** 2 };
}"""


# SyncGate on its own, on a fake clock: which messages come out, when, and why.
GATE_RULES = """async () => {
  const m = await import("/static/video.js");
  let t = 0;
  const out = [];
  const gate = new m.SyncGate((message) => out.push(message.type === "pin" ? message.seq
    : message.type), () => t);
  const seen = [];
  const step = (what) => seen.push([what, [...out]]);
  gate.hub({ type: "pin", seq: 1 });
  step("no picture: straight through");
  gate.attach();
  gate.channel({ type: "clock", first_pts: 9000, clock_rate: 90000 });
  gate.frame({ rtpTimestamp: 1000000, presentedFrames: 1 }); // shows media time 9000
  gate.hub({ type: "pin", seq: 2 });
  step("held: no stamp yet");
  gate.channel({ type: "overlay", seq: 2, pts: 18000, message: {} });
  gate.hub({ type: "state", viewers: 3 });
  step("stamped ahead of the picture; state passes");
  gate.frame({ rtpTimestamp: 1009000, presentedFrames: 4 }); // media time 18000
  step("the picture reached it");
  gate.hub({ type: "pin", seq: 3 });
  gate.channel({ type: "overlay", seq: 4, pts: 90000000, message: {} });
  step("a newer stamp: the older one will not come");
  gate.hub({ type: "pin", seq: 4 });
  gate.hub({ type: "pin", seq: 4 });
  gate.hub({ type: "pin", seq: 2 });
  step("resent by a resumed socket: dropped");
  t += m.MAX_HOLD_MS;
  gate.frame({ rtpTimestamp: 1012000, presentedFrames: 5 });
  step("fail-safe");
  gate.channel({ type: "publisher", ingest: "reconnecting" });
  gate.hub({ type: "pin", seq: 5 });
  step("publisher away: straight through");
  gate.channel({ type: "publisher", ingest: "live" });
  gate.channel({ type: "overlay", seq: 6, pts: 90000000, message: {} });
  gate.hub({ type: "pin", seq: 6 });
  gate.hub({ type: "snapshot", seq: 6 });
  step("a snapshot replaces what is held");
  gate.channel({ type: "overlay", seq: 7, pts: 90000000, message: {} });
  gate.hub({ type: "pin", seq: 7 });
  gate.detach();
  step("detach flushes");
  const late = new m.SyncGate(() => {}, () => 0);
  late.attach();
  late.frame({ rtpTimestamp: 500000, presentedFrames: 3 });
  late.channel({ type: "clock", first_pts: 0, clock_rate: 90000 });
  const resumed = [];
  const again = new m.SyncGate((message) => resumed.push(message.seq), () => 0);
  again.hub({ type: "snapshot", seq: 5 });
  again.hub({ type: "pin", seq: 7 }); // 6 is missing: the reducer asks for a resume from 5
  again.resume(5);
  again.hub({ type: "pin", seq: 6 });
  again.hub({ type: "pin", seq: 7 });
  return { seen, why: gate.stats.released.map((r) => [r.seq, r.why]), lateOffset: late.stats.offset,
           resumed };
}"""


async def test_sync_gate_rules(live: Live, new_page: Any) -> None:
    page = await new_page()
    await page.goto(live.url + "/")
    result = await page.evaluate(GATE_RULES)
    assert result["seen"] == [
        ["no picture: straight through", [1]],
        ["held: no stamp yet", [1]],
        ["stamped ahead of the picture; state passes", [1, "state"]],
        ["the picture reached it", [1, "state", 2]],
        ["a newer stamp: the older one will not come", [1, "state", 2, 3]],
        ["resent by a resumed socket: dropped", [1, "state", 2, 3]],
        ["fail-safe", [1, "state", 2, 3, 4]],
        ["publisher away: straight through", [1, "state", 2, 3, 4, 5]],
        ["a snapshot replaces what is held", [1, "state", 2, 3, 4, 5, "snapshot"]],
        ["detach flushes", [1, "state", 2, 3, 4, 5, "snapshot", 7]],
    ]
    assert result["why"] == [[1, "unsynced"], [2, "picture"], [3, "unstamped"], [4, "timeout"],
                             [5, "unsynced"], [7, "unsynced"]]
    # After a gap the hub client resumes from its state's seq: the replayed events pass.
    assert result["resumed"] == [5, 7, 6, 7]
    # Two frames shown before the first callback: each counts as one 30 fps frame.
    assert result["lateOffset"] == 500000 - 2 * 3000


@pytest.fixture
def node_settings() -> dict[str, Any]:
    return {"video_ice_hosts": ("127.0.0.1",)}


async def scheduled_stream(live: Live) -> dict[str, Any]:
    await make_brand(live)
    product = await make_product(live, title="Trail Runner", stock=30)
    return await make_stream(live, [product["id"]], title="Camera drop")


async def go_live_with_camera(live: Live, new_page: Any, stream: dict[str, Any]) -> Page:
    host = await new_page()
    await host.goto(f"{live.url}/host/{stream['id']}#token={live.token('creator', 'cleo')}")
    await host.get_by_role("button", name="Go live with camera").click()
    await expect(host.locator("#camera-state")).to_have_text("On air", timeout=15 * MS)
    return host


async def watch(live: Live, new_page: Any, stream: dict[str, Any]) -> Page:
    """The viewer page, once its video is playing: time advances, frames are presented."""
    viewer = await new_page()
    await viewer.goto(f"{live.url}/s/{stream['id']}")
    await expect(viewer.locator("#live-pill")).to_have_text("Live", timeout=5 * MS)
    await viewer.wait_for_function(
        "() => document.getElementById('video').currentTime > 1 && window.__livecartVideo.offset !== null",
        timeout=20 * MS)
    return viewer


async def test_the_host_camera_plays_on_the_viewer_page(live: Live, new_page: Any) -> None:
    stream = await scheduled_stream(live)
    await go_live_with_camera(live, new_page, stream)
    viewer = await watch(live, new_page, stream)

    before = await viewer.evaluate("document.getElementById('video').currentTime")
    await viewer.wait_for_function(f"() => document.getElementById('video').currentTime > {before + 0.5}",
                                   timeout=10 * MS)
    picture = await viewer.evaluate(PICTURE)
    # Chromium's fake camera: a bright test card with moving parts, far from black.
    assert picture["mean"] > 20 and picture["variance"] > 50, picture
    unmute = viewer.get_by_role("button", name="Tap to unmute")
    await unmute.click()
    await expect(unmute).to_be_hidden()
    assert await viewer.evaluate("document.getElementById('video').muted") is False

    stats = await video_stats(live, stream["id"])
    assert (stats["ingest"], stats["publisher"], stats["encoders"], stats["viewers"]) == (
        "live", True, 1, 1), stats


async def test_a_pin_waits_for_the_picture(live: Live, new_page: Any) -> None:
    stream = await scheduled_stream(live)
    host = await go_live_with_camera(live, new_page, stream)
    viewer = await watch(live, new_page, stream)

    await host.get_by_role("button", name="Pin Trail Runner").click()
    await expect(viewer.locator("#pinned article.card")).to_have_count(1, timeout=5 * MS)
    released = await viewer.evaluate("window.__livecartVideo.released.filter((r) => r.type === 'pin')")
    assert len(released) == 1, released
    pin = released[0]
    assert pin["why"] == "picture", pin
    assert pin["displayedPts"] >= pin["pts"], pin
    await shot(viewer, "viewer-video")
    if SHOTS:
        await host.set_viewport_size(DESKTOP)
        await host.evaluate("window.scrollTo(0, 0)")
        await shot(host, "host-console-camera")


async def test_a_click_before_the_console_is_ready_is_not_lost(live: Live, new_page: Any) -> None:
    """The console asks the API who it speaks for before it wires its buttons; on a slow
    network a tap on "Go live with camera" came before that and did nothing (the camera
    stayed off). The button is disabled until its handler is there, so the tap waits."""
    stream = await scheduled_stream(live)
    host = await new_page()

    async def slow(route: Any) -> None:
        await asyncio.sleep(1.5)  # the network is slow here: the injected fault
        await route.continue_()

    await host.route(f"{live.url}/api/v1/streams/{stream['id']}", slow)
    await host.goto(f"{live.url}/host/{stream['id']}#token={live.token('creator', 'cleo')}")
    await host.get_by_role("button", name="Go live with camera").click()
    await expect(host.locator("#camera-state")).to_have_text("On air", timeout=15 * MS)


async def test_the_host_stopping_ends_the_viewer_page(live: Live, new_page: Any) -> None:
    stream = await scheduled_stream(live)
    host = await go_live_with_camera(live, new_page, stream)
    viewer = await watch(live, new_page, stream)

    stop = host.get_by_role("button", name="Stop camera")
    await stop.click()
    await host.get_by_role("button", name="Press again to stop").click()
    await expect(viewer.locator("#live-pill")).to_have_text("Ended", timeout=10 * MS)
    await viewer.wait_for_function("() => document.getElementById('video').srcObject === null",
                                   timeout=5 * MS)
    await expect(host.locator("#state-pill")).to_have_text("Ended", timeout=5 * MS)
    await expect(host.locator("#camera-state")).to_have_text("Off")
    assert (await video_stats(live, stream["id"]))["publisher"] is False


async def test_a_host_reload_shows_reconnecting_then_the_picture(live: Live, new_page: Any) -> None:
    stream = await scheduled_stream(live)
    host = await go_live_with_camera(live, new_page, stream)
    viewer = await watch(live, new_page, stream)

    await host.close()  # no DELETE: the server keeps the stream for the host to come back
    note = viewer.get_by_text("Host reconnecting…")
    await expect(note).to_be_visible(timeout=10 * MS)
    await go_live_with_camera(live, new_page, stream)
    await expect(note).to_be_hidden(timeout=10 * MS)
    before = await viewer.evaluate("document.getElementById('video').currentTime")
    await viewer.wait_for_function(f"() => document.getElementById('video').currentTime > {before + 1}",
                                   timeout=10 * MS)
    await expect(viewer.locator("#live-pill")).to_have_text("Live")
