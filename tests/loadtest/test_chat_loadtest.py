"""The chat scenario, tiny: the real code against a real `livecart serve` child, viewers
in two client processes, chatters in a third.

Invariants only (everyone connected, chat accepted and delivered, every deletion and every
host message reached every viewer, every pin too, no seq gap or repeat); no timing
assertions, this machine is shared and noisy.
"""

from __future__ import annotations

import asyncio

from conftest import UNIT

from loadtest.chat import ChatConfig, run_chat
from loadtest.chat_report import exact

VIEWERS = 50
CHATTERS = 20
PINS = 4
DELETIONS = 3
HOST_MESSAGES = 2


async def test_tiny_chat_run_reaches_everyone() -> None:
    config = ChatConfig(viewers=VIEWERS, chat_rate=10.0, chatters=CHATTERS, processes=2,
                        duration_s=6.0, warmup_s=1.0, pins=PINS, pin_interval_s=0.3,
                        deletions=DELETIONS, host_messages=HOST_MESSAGES, idle_s=0.5,
                        state_s=1.0, settle_s=0.5)
    async with asyncio.timeout(120 * UNIT):
        report = await run_chat(config)
    assert report["viewers_connected"] == VIEWERS, report["connect"]
    assert report["chatters_connect"]["ready"] == CHATTERS + 1
    flood = report["flood"]
    assert flood["accepted"] > 0, flood
    assert flood["accepted_host"] == HOST_MESSAGES
    assert flood["messages_delivered"] > 0 and flood["deliveries_per_s"] > 0
    assert flood["latency_ms"]["count"] > 0
    # Each deletion and each host message reached every viewer.
    deletions, hosts = report["deletions"], report["host_messages"]
    assert deletions["count"] == DELETIONS and deletions["all_reached"], deletions
    assert hosts["count"] == HOST_MESSAGES and hosts["all_reached"], hosts
    # Pins with and without chat: every (viewer, pin) pair delivered.
    for phase in ("pins_quiet", "pins_flood"):
        assert report[phase]["delivered_pairs"] == VIEWERS * PINS, report[phase]
    # Likes made state frames; the CPU per delivery was computed from real deliveries.
    assert report["cpu_per_delivery"]["state_frame"]["delivered"] > 0
    assert report["cpu_per_delivery"]["chat_message"]["delivered"] > 0
    assert report["gaps"] == 0 and report["duplicates"] == 0, report["seq_problems"]
    assert report["viewers_pinned_wrong"] == 0 and report["viewers_behind_seq"] == 0
    assert exact(report)
