"""The money-races report: its verdicts (no 5xx, no lie, no mismatch) and a rich table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.report import mark, report_console

__all__ = ["exact", "money_races_verdicts", "print_money_races_report"]


def money_races_verdicts(report: dict[str, Any]) -> dict[str, bool]:
    """Each must hold; `exact` is all of them."""
    rec = report["reconcile"]
    return {
        "no_5xx": report["server_errors"] == 0,
        "every_request_answered": report["no_answer"] == 0,
        "no_lies": report["lies"] == 0,
        "node_quiet": rec["quiet_after_s"] is not None,
        "reconciled": bool(rec["ok"]) and not rec["mismatches"],
    }


def exact(report: dict[str, Any]) -> bool:
    return all(money_races_verdicts(report).values())


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {n:,}" for k, n in counts.items()) or "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0f}"


def print_money_races_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or report_console()
    v = money_races_verdicts(report)
    pay, rem, rec = report["pay"], report["remove"], report["reconcile"]
    node = ("external node" if report["node"] == "external" else
            f"{report['hold_s']} s holds, {report['capture_mode']}, "
            f"sweep {report['sweep_interval_s']} s")
    table = Table(title=f"money races: {pay['buyers']:,} pay at expiry, {rem['buyers']:,} "
                        f"remove at checkout ({node})")
    table.add_column("measure")
    table.add_column("value")
    table.add_column("target")
    early, late = report["pay_window_s"]
    rows = [
        ("pays by outcome", _counts(pay["outcomes"]), ""),
        (f"  sent before the deadline ({early:+} s ..)", _counts(pay["sent_before_deadline"]),
         ""),
        (f"  sent after it (.. {late:+} s)", _counts(pay["sent_after_deadline"]), ""),
        ("  last settled / first expired (ms from deadline)",
         f"{_ms(pay['latest_settled_ms'])} / {_ms(pay['earliest_expired_ms'])}", ""),
        ("  their orders", _counts(pay["final_states"]), ""),
        ("removals by outcome", _counts(rem["removals"]), ""),
        ("  their checkouts", _counts(rem["checkouts"]), ""),
        ("  removal / checkout", _counts(rem["pairs"]), ""),
        ("  their orders", _counts(rem["final_states"]), ""),
        ("5xx replies", str(report["server_errors"]), f"0 {mark(v['no_5xx'])}"),
        ("requests never answered", str(report["no_answer"]),
         f"0 {mark(v['every_request_answered'])}"),
        ("lies (an answer its order contradicts)", str(report["lies"]),
         f"0 {mark(v['no_lies'])}"),
        ("reconciliation: orders / mismatches", f"{rec['orders']:,} / {len(rec['mismatches'])}",
         f"0 {mark(v['reconciled'])}"),
        ("node quiet (nothing pending) after", "-" if rec["quiet_after_s"] is None
         else f"{rec['quiet_after_s']:.1f} s", mark(v["node_quiet"])),
        ("hold (median, as the node set it)", "-" if report["hold_ms_observed"] is None
         else f"{report['hold_ms_observed'] / 1000:.1f} s", ""),
        ("seconds: setup / pay / remove / wall", " / ".join(
            f"{report['seconds'].get(k, 0):.1f}" for k in ("setup", "pay", "remove", "wall")),
         ""),
    ]
    machine = report["machine"]
    rows.append(("machine", f"{machine['cpus']} cpus, {machine['cpu_model']}, Python "
                            f"{machine['python']}", report["date"]))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for lie in report["lie_examples"]:
        console.print(f"[red]lie[/] {lie['phase']} {lie['buyer']} {lie['order']}: {lie['why']}")
    for finding in rec["mismatches"][:20]:
        console.print(f"[red]mismatch[/] {finding['kind']} {finding['subject']}: "
                      f"{finding['detail']}")
    for finding in rec["pending"][:20]:
        console.print(f"[yellow]still pending[/] {finding['kind']} {finding['subject']}: "
                      f"{finding['detail']}")
