"""The HLS scenario, small: the real code against a real `livecart serve` child publishing
the counter camera, five player-like viewers straight at the node and then through a real
nginx started by the test, and the glass-to-glass phase.

The viewers play low-latency HLS (parts, blocking reloads), as the viewer page's hls.js does.
Structure and exactness only (every viewer got every part in order, the cache collapsed
the viewers' fetches into about one origin request a part, the counters read in order);
no timing assertions, this machine is shared and noisy.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import UNIT

from loadtest.hls import HlsConfig, run_hls
from loadtest.hls_cache import nginx_binary
from loadtest.hls_report import exact, print_hls_report, ratios, run_ok

VIEWERS = 5

pytestmark = pytest.mark.skipif(nginx_binary() is None,
                                reason="Debian's nginx (apt nginx-light): scripts/test.sh installs it")


async def test_small_hls_viewers_get_every_segment_and_the_cache_collapses_fetches() -> None:
    config = HlsConfig(viewers=(VIEWERS,), window_s=8.0, glass_window_s=8.0,
                       viewers_per_process=3)
    async with asyncio.timeout(180 * UNIT):
        report = await run_hls(config)
    print_hls_report(report)
    cached, direct = report["runs"]
    assert (direct["via"], cached["via"]) == ("direct", "nginx")
    for run in (direct, cached):
        assert run["viewers"] == run["viewers_served"] == run["viewers_in_order"] == VIEWERS
        assert run["viewers_with_errors"] == 0
        assert run["stream_advanced"] and run["ingest_after"] == "live"
        assert run["unit"] == "part" and run["distinct_segments"] >= 3
        assert run["origin_blocking_playlist_requests"] > 0  # blocking reloads reach the node
        assert run["segments_fetched"] >= VIEWERS * 3
        assert run["segment_ms"]["count"] == run["segments_fetched"]
        assert run["playlist_requests"] > run["distinct_segments"]  # reloads, as a player
        assert run_ok(run)
    # Straight at the node every viewer's fetch reaches it; through the cache about one.
    assert direct["origin_segment_requests"] == direct["segments_fetched"]
    assert cached["origin_requests_per_segment"] <= 1.5 < VIEWERS / 2
    assert cached["origin_segment_requests"] < cached["segments_fetched"] / 2
    assert ratios(report)[0]["viewers"] == VIEWERS
    glass = report["glass"]
    assert glass["webrtc"]["in_order"] and glass["webrtc"]["frames_read"] > 0
    assert glass["webrtc"]["latency_ms"]["count"] > 0
    hls = glass["hls"]
    assert hls["segments"] >= 3 and hls["errors"] == 0 and hls["unreadable_frames"] == 0
    assert hls["frames_in_order"] and hls["segments_in_order"]
    # every frame of the segments that came out while watching (not those of the join)
    assert 0 < hls["available_ms"]["count"] < hls["frames_read"]
    assert hls["player_behind_ms"]["count"] > 0
    assert hls["player"] == "ll" and hls["hold_s"] == 1.5  # PART-HOLD-BACK
    assert report["server_log_errors"]["count"] == 0
    assert exact(report)
