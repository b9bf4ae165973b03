"""The video scenario, small: the real code against a real `livecart serve` child, one
publisher, three viewers (two decoding here, one counting in a client process).

Structure and exactness only (every viewer served, one encode, the decoded picture
advancing in order); no timing assertions, this machine is shared and noisy.
"""

from __future__ import annotations

import asyncio

from conftest import UNIT

from loadtest.video import VideoConfig, run_video
from loadtest.video_report import exact, print_video_report, video_verdicts

VIEWERS = 3


async def test_small_video_serves_every_viewer_from_one_encode() -> None:
    config = VideoConfig(viewers=VIEWERS, window_s=2.0, ramp=False, sample=2, idle_window_s=1.0,
                         warmup_s=1.0, settle_s=1.0)
    async with asyncio.timeout(120 * UNIT):
        report = await run_video(config)
    assert report["viewers_served"] == VIEWERS
    assert report["encoders"] == 1
    assert report["per_viewer"] is None
    steps = report["shared"]["steps"]
    assert [s["viewers"] for s in steps] == [VIEWERS]
    step = steps[0]
    assert step["viewers_connected"] == step["server_viewers"] == VIEWERS
    assert step["fps_received"]["min"] > 0
    assert step["kbps_received_p50"] > 0
    assert len(step["load_generator_cpu_pct"]["viewer_processes"]) == 1
    sample = report["sample"]
    assert sample["viewers"] == 2 and sample["in_order"] and sample["advanced"]
    assert {"cpu_total_pct", "cpu_per_viewer_pct", "cpu_publisher_only_pct", "fps_received",
            "rss_per_viewer_kib",
            "machine", "date"} <= report.keys()
    assert report["shared"]["server_log_errors"]["count"] == 0
    assert exact(report)
    assert video_verdicts(report)["target"] is None  # three viewers say nothing about fifty
    print_video_report(report)
