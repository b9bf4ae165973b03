"""The flash-sale scenario, small: the real code against a real `livecart serve` child.

Exactness only (every unit sold once, nothing duplicated, nothing acknowledged lost); no
timing assertions, this machine is shared and noisy.
"""

from __future__ import annotations

import asyncio

from conftest import UNIT

from loadtest.flash_sale import FlashSaleConfig, run_flash_sale
from loadtest.report import verdicts


async def test_small_flash_sale_sells_exactly_the_units() -> None:
    config = FlashSaleConfig(buyers=300, units=50, concurrency=50, client_processes=1,
                             duration_limit_s=60 * UNIT, baseline=True)
    async with asyncio.timeout(120 * UNIT):
        report = await run_flash_sale(config)
    assert report["orders_acknowledged"] == report["units_sold"] == 50, report
    assert report["oversold"] == 0
    assert report["duplicate_orders"] == 0
    assert report["lost_acknowledged"] == 0
    assert report["unresolved"] == 0
    assert report["stock"] == {"available": 0, "held": 0, "sold": 50, "total": 50}
    assert report["statuses"] == {"201": 50, "409": 250}
    assert report["problems"] == {"409 sold-out": 250}
    assert report["valkey"]["orders_in_valkey"] == 50
    assert report["valkey"]["order_states"] == {"paid": 50}
    assert report["bare_throughput_per_s"] > 0 and report["ratio_vs_bare"] > 0
    v = verdicts(report)
    assert v["exact_orders"] and v["no_oversell"] and v["no_duplicates"]


async def test_kill_valkey_mid_race_loses_no_acknowledged_order() -> None:
    config = FlashSaleConfig(buyers=400, units=100, concurrency=50, client_processes=0,
                             duration_limit_s=60 * UNIT, kill_valkey_at=0.5, baseline=False)
    async with asyncio.timeout(120 * UNIT):
        report = await run_flash_sale(config)
    assert len(report["kills"]) == 1, report
    kill = report["kills"][0]
    assert kill["new_pid"] != kill["old_pid"]
    assert kill["sold_at_kill"] >= 50
    assert report["lost_acknowledged"] == 0, report
    assert report["oversold"] == 0
    assert report["duplicate_orders"] == 0
    assert report["stock_invariant_ok"]
    assert report["unresolved"] == 0
    # Every acknowledged order is paid and counted as sold; nothing was sold twice.
    assert 50 <= report["orders_acknowledged"] <= report["units_sold"] <= 100
