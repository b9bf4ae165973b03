"""The money-races scenario, small: `livecart loadtest money-races` as a command, against a
real `livecart serve` child with 2 s holds.

Which way each race goes is left to chance (the pays land at random around each deadline),
so only what must always hold is asserted: every buyer accounted for, no 5xx, no lie, the
reconciliation clean, exit status 0.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import UNIT

from loadtest.money_races import MoneyRacesConfig, lie_of

BUYERS = 20


async def test_small_money_races_reconcile_and_tell_no_lies(tmp_path: Path) -> None:
    out = tmp_path / "races.json"
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "live.node.cli", "loadtest", "money-races",
                         "--pay-buyers", str(BUYERS), "--remove-buyers", str(BUYERS),
                         "--hold", "2", "--duration-limit", str(90 * UNIT), "--json", str(out)],
        capture_output=True, text=True, timeout=120 * UNIT)
    assert run.returncode == 0, run.stdout + run.stderr
    report = orjson.loads(out.read_bytes())
    pay, rem = report["pay"], report["remove"]
    assert sum(pay["outcomes"].values()) == pay["buyers"] == BUYERS, pay
    assert sum(rem["removals"].values()) == sum(rem["checkouts"].values()) == BUYERS, rem
    assert not any(k.startswith("hold refused") for k in {**pay["outcomes"], **rem["removals"]})
    assert sum(pay["final_states"].values()) == sum(rem["final_states"].values()) == BUYERS
    assert report["hold_ms_observed"] == 2000
    assert report["server_errors"] == report["no_answer"] == report["lies"] == 0, report
    rec = report["reconcile"]
    assert rec["ok"] and rec["mismatches"] == [] and rec["pending"] == [], rec
    assert rec["orders"] == 2 * BUYERS
    assert "money races" in run.stdout


def test_an_answer_its_order_contradicts_is_a_lie() -> None:
    assert lie_of("settled", "", "authorized") == ""
    assert lie_of("expired", "", "expired") == ""
    assert lie_of("settled", "", "expired") == "told settled, the order is expired"
    assert lie_of("expired", "", "paid") == "told expired, the order is paid"
    assert lie_of("empty", "204", "cancelled") == ""
    assert lie_of("settled", "204", "paid") == ""  # removed after the checkout bought it
    assert lie_of("cancelled", "409 checkout-in-progress", "cancelled") != ""
    assert lie_of("pending", "404 not-found", "cancelled") != ""
    assert lie_of("settled", "", "authorized", "order authorized, gateway voided") != ""
    assert lie_of("pending", "", "expired") == ""  # undecided when answered


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "https://127.0.0.1:8000"])
def test_only_a_loopback_node_is_raced(url: str) -> None:
    with pytest.raises(ValueError):
        MoneyRacesConfig(url=url, secret="s").validate()
