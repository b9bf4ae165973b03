"""Overlay/picture skew: how far the hub's events run ahead of the video, and what is left
once the viewer page's SyncGate holds them for the picture.

1. Start a `livecart serve` child (embedded Valkey, ICE on 127.0.0.1 only), a brand, a
   product and a scheduled stream, through the API.
2. Chromium (fake camera): the host console goes live with its camera (WHIP); one viewer
   page plays the stream (WHEP).
3. The host presses Pin / Unpin `pins` times on its console, each after the viewer showed
   the previous one. For each event the viewer page records (window.__livecartVideo):
   - lead: when the picture reached the event's moment minus when the hub delivered it,
     i.e. how early the overlay would change without the gate (negative: the hub was late);
   - skew: displayed media time minus the event's stamp when the gate released it, i.e.
     how late the overlay still changes relative to the picture;
   - why it was released: "picture" (reached), "timeout" (2 s fail-safe), "unstamped".

`python -m loadtest.overlay_sync --pins 20 [--json PATH]`
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.table import Table

from live.accounts.auth import Role, TokenAuthority
from loadtest.flash_sale import CREATOR, _Shop
from loadtest.machine import machine_info, now_iso
from loadtest.report import write_json
from loadtest.server_process import ServerProcess

if TYPE_CHECKING:
    from playwright.async_api import Page

__all__ = ["run_overlay_sync", "print_overlay_sync_report", "main"]

CHROMIUM = os.environ.get("LIVECART_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--use-fake-device-for-media-stream=fps=30", "--use-fake-ui-for-media-stream"]
TITLE = "Flash sneaker"  # the product loadtest.flash_sale._Shop makes
TIMEOUT_MS = 30_000
GAP_S = 0.7  # between one event shown and the next press: a host's pace, frames in between

# The viewer's measurements of pin/unpin events, oldest first.
_RELEASED = "() => window.__livecartVideo.released.filter((r) => r.type === 'pin' || r.type === 'unpin')"


def _percentile(values: list[float], p: float) -> float:
    """Nearest rank: with 20 samples p95 is the 19th smallest."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return round(ordered[int(rank) - 1], 1)


def _summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50": _percentile(values, 50), "p95": _percentile(values, 95),
            "max": round(max(values), 1), "min": round(min(values), 1)}


async def _toggle_pins(host: Page, viewer: Page, pins: int) -> list[dict[str, Any]]:
    from playwright.async_api import expect
    for i in range(pins):
        name = f"Unpin {TITLE}" if i % 2 else f"Pin {TITLE}"
        button = host.get_by_role("button", name=name)
        await expect(button).to_be_enabled(timeout=TIMEOUT_MS)
        await button.click()
        await viewer.wait_for_function(f"() => ({_RELEASED})().length > {i}", timeout=TIMEOUT_MS)
        await asyncio.sleep(GAP_S)
    released: list[dict[str, Any]] = await viewer.evaluate(_RELEASED)
    return released


async def run_overlay_sync(pins: int) -> dict[str, Any]:
    try:  # a test dependency: the server does not need it, this benchmark drives a browser
        from playwright.async_api import async_playwright, expect
    except ImportError:
        raise SystemExit("overlay-sync drives Chromium: pip install 'livecart[test]' and "
                         "Debian's chromium (scripts/test.sh installs both)") from None
    # Loopback candidates only, as in the tests.
    server = ServerProcess.livecart(settings={"LIVECART_VIDEO_ICE_HOSTS": "127.0.0.1"})
    async with server, httpx.AsyncClient(base_url=server.url, timeout=30) as http, \
            async_playwright() as pw:
        tokens = TokenAuthority(server.secret)
        shop = _Shop(server.host, server.port, tokens, secrets.token_hex(4))
        await shop.setup(units=100, buyers=0, go_live=False)  # the camera makes it live
        stream = shop.stream
        host_token = tokens.mint(Role.CREATOR, CREATOR, ttl_s=3600)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            host = await context.new_page()
            await host.goto(f"{server.url}/host/{stream}#token={host_token}")
            await host.get_by_role("button", name="Go live with camera").click()
            await expect(host.locator("#camera-state")).to_have_text("On air", timeout=TIMEOUT_MS)
            viewer = await context.new_page()
            await viewer.goto(f"{server.url}/s/{stream}")
            await viewer.wait_for_function(
                "() => document.getElementById('video').currentTime > 2"
                " && window.__livecartVideo.offset !== null", timeout=TIMEOUT_MS)
            released = await _toggle_pins(host, viewer, pins)
            r = await http.get(f"/api/v1/streams/{stream}/video",
                               headers={"Authorization": f"Bearer {host_token}"})
            r.raise_for_status()
            video = r.json()
            quality = await viewer.evaluate(
                "() => { const v = document.getElementById('video');"
                " const q = v.getVideoPlaybackQuality();"
                " return {frames: q.totalVideoFrames, dropped: q.droppedVideoFrames,"
                " seconds: v.currentTime}; }")
        finally:
            await browser.close()
    reasons = dict(collections.Counter(event["why"] for event in released))
    return {
        "pins": pins, "events": released, "released_by": reasons,
        "lead_ms": _summary([e["leadMs"] for e in released if e["leadMs"] is not None]),
        "skew_ms": _summary([e["skewMs"] for e in released if e["skewMs"] is not None]),
        "held_ms": _summary([e["heldMs"] for e in released]),
        "hub_before_channel_ms": _summary([e["viaHubFirstMs"] for e in released
                                           if e["viaHubFirstMs"] is not None]),
        "video": {k: video.get(k) for k in ("width", "height", "fps", "frames_encoded",
                                            "keyframes_forced", "media_time")},
        "viewer_frames": quality,
        "machine": machine_info(), "date": now_iso(),
    }


def print_overlay_sync_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=120)
    table = Table(title=f"overlay/picture skew: {report['pins']} pin/unpin events, one viewer")
    for column in ("measure (ms)", "p50", "p95", "max", "min", "n"):
        table.add_column(column, justify="left" if column.startswith("measure") else "right")
    rows = [("hub lead over the picture (without the gate)", report["lead_ms"]),
            ("skew left at release (displayed - stamped)", report["skew_ms"]),
            ("held by the gate", report["held_ms"]),
            ("hub copy before the data channel's", report["hub_before_channel_ms"])]
    for label, s in rows:
        cells = [str(s.get(k, "-")) for k in ("p50", "p95", "max", "min", "count")]
        table.add_row(label, *cells)
    console.print(table)
    video, shown = report["video"], report["viewer_frames"]
    console.print(f"released by: {report['released_by']}")
    console.print(f"video {video['width']}x{video['height']} (asked {video['fps']} fps), "
                  f"{video['frames_encoded']} frames encoded; the viewer showed {shown['frames']} "
                  f"frames in {shown['seconds']:.1f} s ({shown['frames'] / shown['seconds']:.1f} "
                  f"fps), {shown['dropped']} dropped")
    console.print(f"{report['machine']['cpus']} cpus, Python {report['machine']['python']}, "
                  f"{report['date']}")


def add_overlay_sync_args(scenarios: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = scenarios.add_parser("overlay-sync", help="how far overlay events land from the picture "
                             "(Chromium host and viewer, loopback)")
    _add_args(p)


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pins", type=int, default=20, help="pin/unpin presses (default 20)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")


def run_overlay_sync_cli(args: argparse.Namespace) -> int:
    if args.pins < 1:
        raise SystemExit("--pins must be at least 1")
    report = asyncio.run(run_overlay_sync(args.pins))
    print_overlay_sync_report(report)
    if args.json:
        write_json(report, args.json)
    return 0 if report["released_by"].get("picture") == args.pins else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.overlay_sync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_args(parser)
    return run_overlay_sync_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
