"""How far behind the node the viewer page's HLS picture is, measured by the page itself in
real Chromium (BENCHMARKS.md "HLS and glass-to-glass").

A `livecart serve` child with one media peer (the publisher's, so the page's WHEP offer is
refused and it plays the show's live HLS with its own player, overlay/static/hls_play.js);
the busy counter camera published over WHIP from this process; the viewer page opened in
Chromium. Every 100 ms of the window: the wall clock now minus the wall-clock date of the
picture on screen (the media-clock origin the playlist's DATERANGE names, plus the media
time of the last presented frame, `window.__livecartVideo.lastDisplayedPts` / 90). That is
the picture's age since the node stamped it on ingest (the publisher's encode and the WHIP
hop, ~80 ms by the WebRTC glass-to-glass figure, come on top). Also the HLS files the page
requested, by kind.

    python scripts/hls_page_delay.py [--window 30] [--warmup 10] [--json out.json]

Runs the code on PYTHONPATH (the branch's, or main's with PYTHONPATH=/work/main), so the
same script measures both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import re
import time
from collections import Counter
from typing import Any

from playwright.async_api import async_playwright

from live.video.compat import restrict_ice_hosts
from loadtest.histogram import LatencyHistogram
from loadtest.server_process import ServerProcess
from loadtest.video import BusyCounterTrack, host_a_show
from loadtest.webrtc_peers import publish

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking"]
_ORIGIN = re.compile(r'CLASS="com\.livecart\.media-clock",START-DATE="([^"]+)"')
_KIND = re.compile(r"/hls/[^/]+/(index\.m3u8\?_HLS|index\.m3u8|init|seg|part)")


async def measure(window_s: float, warmup_s: float) -> dict[str, Any]:
    restrict_ice_hosts(("127.0.0.1",))
    server = ServerProcess.livecart(settings={"LIVECART_VIDEO_ICE_HOSTS": "127.0.0.1",
                                              "LIVECART_VIDEO_MAX_PEERS": "1"})
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(server)
        shop, http, token = await host_a_show(stack, server)
        publisher = await publish(http, shop.stream, token, BusyCounterTrack())
        stack.push_async_callback(publisher.stop)
        playlist = f"/hls/{shop.stream}/index.m3u8"
        deadline = time.monotonic() + 40
        while True:
            r = await http.get(playlist)
            if r.status_code == 200 and r.text.count("#EXTINF") >= 2:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no live playlist")
            await asyncio.sleep(0.25)
        found = _ORIGIN.search(r.text)
        assert found is not None
        origin_ms = int(datetime.datetime.fromisoformat(
            found.group(1).replace("Z", "+00:00")).timestamp() * 1000)
        pw = await stack.enter_async_context(async_playwright())
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium",
                                           args=CHROMIUM_ARGS)
        stack.push_async_callback(browser.close)
        page = await browser.new_page()
        requested: Counter[str] = Counter()

        def note(request: Any) -> None:
            kind = _KIND.search(request.url)
            if kind is not None:
                requested[kind.group(1).replace("index.m3u8?_HLS", "blocking reload")] += 1
        page.on("request", note)
        await page.goto(f"{server.url}/s/{shop.stream}")
        await page.wait_for_function(
            "() => document.getElementById('video').dataset.path === 'hls'"
            " && window.__livecartVideo.lastDisplayedPts !== null", timeout=60_000)
        await asyncio.sleep(warmup_s)
        requested.clear()
        hist = LatencyHistogram()
        samples = 0
        end = time.monotonic() + window_s
        while time.monotonic() < end:
            delay_ms = await page.evaluate(
                f"() => Date.now() - ({origin_ms} + window.__livecartVideo.lastDisplayedPts / 90)")
            hist.record(delay_ms / 1000)
            samples += 1
            await asyncio.sleep(0.1)
        engine = await page.evaluate("document.getElementById('video').dataset.engine")
    return {"engine": engine, "samples": samples, "delay_ms": hist.summary().as_dict(),
            "requests_in_window": dict(requested), "window_s": window_s,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    result = asyncio.run(measure(args.window, args.warmup))
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
