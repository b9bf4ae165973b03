"""Show a load-test report as a rich table, and write it as JSON."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

__all__ = ["print_report", "write_json", "verdicts", "mark", "report_console", "run_scenario",
           "closing_rows"]

P99_TARGET_MS = 50.0
RATIO_TARGET = 0.5


def verdicts(report: dict[str, Any]) -> dict[str, bool | None]:
    """The flash-sale targets (DESIGN.md), each True/False, or None when not measured."""
    ratio = report.get("ratio_vs_bare")
    return {
        "exact_orders": report["orders_acknowledged"] == report["units_sold"] == report["units"],
        "no_oversell": report["oversold"] == 0,
        "no_duplicates": report["duplicate_orders"] == 0,
        "no_lost_acknowledged": report["lost_acknowledged"] == 0,
        "stock_invariant": bool(report["stock_invariant_ok"]),
        "throughput_vs_bare": None if ratio is None else ratio >= RATIO_TARGET,
        "p99_under_50ms": report["latency_ms"]["p99"] < P99_TARGET_MS,
    }


def mark(ok: bool | None) -> str:
    """A target's verdict as the reports print it."""
    return {True: "[green]ok[/]", False: "[red]MISSED[/]", None: "[dim]-[/]"}[ok]


def closing_rows(report: dict[str, Any], others: list[str]) -> list[tuple[str, str, str]]:
    """A report's last rows: the CPU other processes used in each measured phase (`others`,
    e.g. "flood 0.3 s") and the machine, the date and the load before and after."""
    machine = report["machine"]
    return [("CPU used by other processes meanwhile", ", ".join(others) or "-",
             "0 on a quiet machine"),
            ("machine", f"{machine['cpus']} cpus, {machine['cpu_model']}, Python "
                        f"{machine['python']}, load {machine['loadavg_1m_before']} -> "
                        f"{machine['loadavg_1m_after']}", report["date"])]


def report_console(width: int = 120) -> Console:
    """A console for a report: the terminal's, or a wide one when printing to a log file
    (which would otherwise wrap tables at 80 columns)."""
    console = Console()
    return console if console.is_terminal else Console(width=width)


def run_scenario(name: str, config: Any, run: Any, print_report_fn: Any, exact: Any,
                 json_path: Path | None) -> int:
    """The common end of a load-test command: check the config, run it on uvloop with
    progress logged, print the report, write the JSON; exit 0 only when the run was exact."""
    import asyncio

    import uvloop

    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("loadtest").setLevel(logging.INFO)
    try:
        config.validate()
    except ValueError as exc:
        raise SystemExit(f"livecart loadtest {name}: {exc}") from None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        report = runner.run(run(config))
    print_report_fn(report)
    if json_path:
        write_json(report, json_path)
    return 0 if exact(report) else 1


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or report_console()
    v = verdicts(report)
    lat = report["latency_ms"]
    bare = report.get("bare_latency_ms") or {}
    table = Table(title=f"flash sale: {report['buyers']:,} buyers, {report['units']:,} units "
                        f"({report['durability']})", show_lines=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target")
    rows: list[tuple[str, str, str]] = [
        ("orders acknowledged (201)", f"{report['orders_acknowledged']:,}",
         f"{report['units']:,} {mark(v['exact_orders'])}"),
        ("units sold (stock)", f"{report['units_sold']:,}", f"{report['units']:,}"),
        ("oversold", str(report["oversold"]), f"0 {mark(v['no_oversell'])}"),
        ("duplicate orders", str(report["duplicate_orders"]), f"0 {mark(v['no_duplicates'])}"),
        ("acknowledged orders lost", str(report["lost_acknowledged"]) + "".join(
            f" ({n} {why})" for why, n in report.get("lost_detail", {}).items()),
         f"0 {mark(v['no_lost_acknowledged'])}"),
        ("stock total = avail + held + sold",
         "{available}/{held}/{sold} of {total}".format(**report["stock"]),
         mark(v["stock_invariant"])),
        ("unresolved requests", str(report["unresolved"]), "0"),
        ("throughput (buys/s)", f"{report['throughput_per_s']:,.0f}", ""),
        ("sell phase (201s/s until the last 201)", "-" if not report.get("acknowledged_per_s")
         else f"{report['acknowledged_per_s']:,.0f} ({report['sold_out_after_s']:.2f} s)", ""),
        ("bare starlette (req/s)", "-" if report["bare_throughput_per_s"] is None
         else f"{report['bare_throughput_per_s']:,.0f}", ""),
        ("ratio vs bare", "-" if report["ratio_vs_bare"] is None
         else f"{report['ratio_vs_bare']:.2f}",
         f">= {RATIO_TARGET} {mark(v['throughput_vs_bare'])}"),
        ("latency p50 / p99 / max (ms)", f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f}",
         f"p99 < {P99_TARGET_MS:.0f} {mark(v['p99_under_50ms'])}"),
    ]
    ok = report.get("latency_ms_201")
    if ok and ok["count"]:
        rows.append(("  of which 201s p50 / p99 / max",
                     f"{ok['p50']:.1f} / {ok['p99']:.1f} / {ok['max']:.1f}", ""))
    if bare:
        rows.append(("bare p50 / p99 / max (ms)",
                     f"{bare['p50']:.1f} / {bare['p99']:.1f} / {bare['max']:.1f}", ""))
    load = (f"rate {report['rate_per_s']:,.0f}/s" if report.get("rate_per_s")
            else "closed loop")
    rows.append(("load", f"{load}, {report['concurrency']} conns, "
                         f"{report['client_processes']} client procs", ""))
    for kill in report.get("kills", []):
        rows.append(("Valkey kill -9", f"at {kill['at_s']:.2f} s, {kill['sold_at_kill']} sold; "
                                       f"back in {kill['back_after_s']:.2f} s", ""))
    retries = report["retries"]
    rows.append(("client retries", f"conn {retries['connection_errors']}, timeouts "
                                   f"{retries['timeouts']}, status {retries['retried_statuses']}",
                 ""))
    rows.append(("replies", ", ".join(f"{k}: {n:,}" for k, n in report["problems"].items())
                 or "-", ""))
    machine = report["machine"]
    rows.append(("machine", f"{machine['cpus']} cpus, Python {machine['python']}", report["date"]))
    for row in rows:
        table.add_row(*row)
    console.print(table)


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
