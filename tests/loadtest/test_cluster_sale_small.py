"""The cluster sale, small: `livecart loadtest cluster-sale` as a command, on a real local
Valkey Cluster (3 + 3) with real `livecart serve` nodes behind Debian's HAProxy.

Exactness only (every unit sold once, the store's orders match the clients' 201s, the CPU
read from /proc); no timing assertions, this machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import UNIT

from loadtest.cluster_sale import cpu_seconds
from loadtest.cluster_sale_cli import exact, run_verdicts

UNITS = 40


async def _command(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "cluster-sale.json"
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "live.node.cli", "loadtest", "cluster-sale",
                         "--units", str(UNITS), "--concurrency", "16",
                         "--duration-limit", str(200 * UNIT), "--json", str(out), *args],
        capture_output=True, text=True, timeout=240 * UNIT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cluster sale" in run.stdout
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    return report


def _sold_exactly(run: dict[str, Any], buyers: int) -> None:
    """What the store holds agrees with what the clients were told."""
    assert run["orders_acknowledged"] == run["units_sold"] == run["orders_in_valkey"] == UNITS
    assert run["order_states"] == {"paid": UNITS}, run
    assert run["stock"] == {"available": 0, "held": 0, "sold": UNITS, "total": UNITS}
    assert run["stock_invariant_ok"] and run["unresolved"] == 0
    assert run["oversold"] == run["duplicate_orders"] == run["lost_acknowledged"] == 0, run
    assert run["charged_without_order"] == 0
    assert run["answered"] == buyers
    assert set(run["statuses"]) == {"201", "409"}, run["statuses"]


async def test_one_node_against_two_with_cpu_from_proc(tmp_path: Path) -> None:
    report = await _command(tmp_path, "--nodes", "1", "2", "--buyers", "120")
    assert [r["nodes"] for r in report["runs"]] == [1, 2]
    for run in report["runs"]:
        _sold_exactly(run, 120)
        assert run["kills"] == []
        assert run["cpu_s"]["livecart"] > 0 and run["cpu_s"]["valkey"] > 0, run["cpu_s"]
        served = run["cpu_s"]["livecart"] + run["cpu_s"]["valkey"]
        assert run["buys_per_cpu_s"] == pytest.approx(120 / served, rel=0.05)
        assert run["latency_ms"]["count"] == 120 and run["latency_ms_201"]["count"] == UNITS
    (scaling,) = report["scaling"]
    assert scaling["nodes"] == [1, 2] and scaling["buys_per_s_ratio"] > 0
    assert scaling["buys_per_cpu_s_ratio"] > 0
    assert report["machine"]["cpus"] and report["date"]


async def test_kill_the_primary_mid_sale_loses_nothing_replicated(tmp_path: Path) -> None:
    report = await _command(tmp_path, "--nodes", "2", "--buyers", "100", "--kill", "primary",
                            "--durability", "replicated", "--kill-at", "0.25")
    (run,) = report["runs"]
    assert run["durability"] == "replicated"
    (kill,) = run["kills"]
    assert kill["what"].startswith("primary ") and kill["promoted"].startswith("replica ")
    assert UNITS * 0.25 <= kill["sold_at_kill"] < UNITS  # mid-sale
    assert run["cpu_s"] is None and run["buys_per_cpu_s"] is None  # a killed pid's CPU is gone
    _sold_exactly(run, 100)


def test_a_lost_order_fails_the_run_unless_the_default_mode_lost_it_to_a_failover() -> None:
    run = {"durability": "replicated", "oversold": 0, "duplicate_orders": 0,
           "stock_invariant_ok": True, "unresolved": 0, "lost_acknowledged": 1,
           "charged_without_order": 1}
    assert run_verdicts(run, "primary")["no_lost_acknowledged"] is False
    assert not exact({"kill": "primary", "runs": [run]})
    default = {**run, "durability": "appendfsync"}
    assert run_verdicts(default, "primary")["no_lost_acknowledged"] is None  # measured
    assert exact({"kill": "primary", "runs": [default]})
    assert not exact({"kill": "node", "runs": [default]})  # a node's death loses nothing
    assert not exact({"kill": "primary", "runs": [{**default, "oversold": 1}]})


def test_cpu_seconds_count_a_process_and_its_children() -> None:
    busy = "sum(range(2 * 10**7)); print('done', flush=True); import sys; sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", busy], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "done\n"
        burnt = cpu_seconds([child.pid])
        assert burnt > 0
        assert cpu_seconds([os.getpid()]) > burnt  # the parent's tree holds the child's
    finally:
        child.communicate("")
    assert cpu_seconds([child.pid]) == 0  # reaped: gone, counts 0
