"""The fan-out scenario, small: the real code against a real `livecart serve` child and a
real bare `websockets` baseline, viewers in two client processes.

Exactness only (everyone connected, nobody left stale, no seq gap or duplicate, every viewer
saw every pin); no timing assertions, this machine is shared and noisy.
"""

from __future__ import annotations

import asyncio

from conftest import UNIT

from loadtest.fanout import FanoutConfig, run_fanout
from loadtest.fanout_report import exact

VIEWERS = 200
PINS = 6
BURST = 10


async def test_small_fanout_is_exact() -> None:
    config = FanoutConfig(viewers=VIEWERS, processes=2, duration_s=5.0, buy_rate=50.0,
                          pins=PINS, pin_interval_s=0.4, burst_events=BURST, settle_s=0.5)
    async with asyncio.timeout(120 * UNIT):
        report = await run_fanout(config)
    assert report["viewers_connected"] == VIEWERS, report["connect"]
    assert report["viewers_gave_up"] == 0
    assert report["stale_viewers"] == 0, report["stale_examples"]
    assert report["gaps"] == 0 and report["duplicates"] == 0, report["seq_problems"]
    assert report["viewers_pinned_wrong"] == 0 and report["viewers_behind_seq"] == 0
    pins = report["pin_phase"]
    assert pins["pins_sent"] == PINS
    assert pins["missed_pairs"] == 0 and pins["viewers_missing_a_pin"] == 0
    assert pins["delivered_pairs"] == VIEWERS * PINS
    # The storm really moved the stock the viewers were checked against.
    assert report["storm"]["statuses"].get("201", 0) > 0
    assert report["storm"]["frames_to_viewers"].get("state", 0) > 0
    # Every viewer got the whole burst, from the hub and from the bare server alike.
    assert report["burst"]["frames"] == report["bare_burst"]["frames"] == VIEWERS * BURST
    assert report["bare_connect"]["ready"] == VIEWERS
    assert report["deliveries_per_s"] > 0 and report["bare_deliveries_per_s"] > 0
    assert report["memory_per_connection_kb"] is not None
    assert exact(report)
