"""The fan-out report: verdicts against DESIGN.md's targets, a rich table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.report import closing_rows, mark, report_console

__all__ = ["fanout_verdicts", "print_fanout_report", "exact"]

VIEWERS_TARGET = 10_000
P99_TARGET_MS = 150.0
RATIO_TARGET = 0.8
MEMORY_TARGET_KB = 20.0


def exact(report: dict[str, Any]) -> bool:
    """The correctness half: everyone connected, nobody stale, no gap, no duplicate, every
    viewer saw every pin."""
    pins = report.get("pin_phase") or {}
    return (report["viewers_connected"] == report["viewers"]
            and report.get("stale_viewers") == 0 and report.get("gaps") == 0
            and report.get("duplicates") == 0 and pins.get("viewers_missing_a_pin") == 0)


def fanout_verdicts(report: dict[str, Any]) -> dict[str, bool | None]:
    """Each DESIGN.md fan-out target: True/False, or None when not measured."""
    pins = report.get("pin_phase") or {}
    ratio = report.get("ratio_vs_bare")
    memory = report.get("memory_per_connection_kb")
    return {
        "viewers": (report["viewers_connected"] >= VIEWERS_TARGET
                    and report["viewers_connected"] == report["viewers"]),
        "pin_p99": None if not pins else pins["p99_ms"] <= P99_TARGET_MS
        and pins["missed_pairs"] == 0,
        "ratio_vs_bare": None if ratio is None else ratio >= RATIO_TARGET,
        "stale": None if "stale_viewers" not in report else report["stale_viewers"] == 0,
        "gaps": None if "gaps" not in report else report["gaps"] == 0
        and report.get("duplicates") == 0,
        "memory": None if memory is None else memory < MEMORY_TARGET_KB,
    }



def _num(value: Any, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def print_fanout_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or report_console()
    v = fanout_verdicts(report)
    pins = report.get("pin_phase") or {}
    bare_pins = report.get("bare_pin_latency") or {}
    burst = report.get("burst") or {}
    bare_burst = report.get("bare_burst") or {}
    raw_burst = report.get("raw_burst") or {}
    batched_burst = report.get("batched_burst") or {}
    idle_pins = report.get("pin_idle") or {}
    storm = report.get("storm") or {}
    table = Table(title=f"fan-out: {report['viewers']:,} viewers over "
                        f"{report['client_processes']} client processes")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target")
    rows: list[tuple[str, str, str]] = [
        ("viewers connected", f"{report['viewers_connected']:,}",
         f">= {VIEWERS_TARGET:,} on one process {mark(v['viewers'])}"),
        ("pin latency under the storm p50 / p99 / max (ms)",
         "-" if not pins else f"{pins['p50_ms']:.1f} / {pins['p99_ms']:.1f} / {pins['max_ms']:.1f}",
         f"p99 <= {P99_TARGET_MS:.0f} {mark(v['pin_p99'])}"),
        ("reached within 150 ms (all pairs / worst pin)",
         "-" if not pins
         else f"{pins['reached_within']:.2%} / {pins['worst_pin_reached_within']:.2%}",
         ">= 99%"),
        ("(viewer, pin) pairs missed", _num(pins.get("missed_pairs")), "0"),
        ("pins sent after the storm was over", _num(pins.get("pins_sent_after_the_storm")),
         "0 (else the storm was too short)"),
        ("deliveries/s (burst)", _num(report.get("deliveries_per_s")), ""),
        ("bare websockets.broadcast deliveries/s", _num(report.get("bare_deliveries_per_s")), ""),
        ("ratio vs bare (wall clock)", _num(report.get("ratio_vs_bare"), ".2f"),
         f">= {RATIO_TARGET} {mark(v['ratio_vs_bare'])}"),
        ("server CPU per delivery, hub / bare (us)",
         f"{_num(burst.get('server_us_per_delivery'), '.1f')} / "
         f"{_num(bare_burst.get('server_us_per_delivery'), '.1f')}", ""),
        ("  pre-framed writes, one per frame / one per viewer (us)",
         f"{_num(raw_burst.get('server_us_per_delivery'), '.1f')} / "
         f"{_num(batched_burst.get('server_us_per_delivery'), '.2f')}", ""),
        ("ratio vs bare (server CPU per delivery)", _num(report.get("ratio_vs_bare_cpu"), ".2f"),
         f">= {RATIO_TARGET}"),
        ("stale viewers", _num(report.get("stale_viewers")), f"0 {mark(v['stale'])}"),
        ("seq gaps / duplicates", f"{_num(report.get('gaps'))} / {_num(report.get('duplicates'))}",
         f"0 {mark(v['gaps'])}"),
        ("memory per idle viewer, hub / bare (KiB)",
         f"{_num(report.get('memory_per_connection_kb'), '.1f')} / "
         f"{_num(report.get('bare_memory_per_connection_kb'), '.1f')}",
         f"< {MEMORY_TARGET_KB:.0f} {mark(v['memory'])}"),
        ("hub pin latency p50 / p99 (ms, no storm)",
         "-" if not idle_pins else f"{idle_pins['p50_ms']:.1f} / {idle_pins['p99_ms']:.1f}", ""),
        ("bare pin latency p50 / p99 (ms, no storm)",
         "-" if not bare_pins else f"{bare_pins['p50_ms']:.1f} / {bare_pins['p99_ms']:.1f}",
         "the floor here"),
        ("storm: buys/s, statuses", "-" if not storm else
         f"{storm['throughput_per_s']:,.0f}/s, {storm['statuses']}", ""),
        ("frames per viewer during the storm", "-" if not storm else ", ".join(
            f"{k} {n / max(1, report['viewers_connected']):,.1f}"
            for k, n in storm["frames_to_viewers"].items()), ""),
        ("reconnects / gave up",
         f"{_num(report.get('hub_connects', 0) - report['viewers_connected'])}"
         f" / {_num(report.get('viewers_gave_up'))}", ""),
        ("close codes", str(report.get("hub_closes") or "-"), ""),
    ]
    others = [f"{name} {phase['cpu']['others_cpu_s']:.1f} s" for name, phase in
              (("hub burst", burst), ("idle pins", idle_pins), ("bare burst", bare_burst))
              if phase.get("cpu")]
    rows.extend(closing_rows(report, others))
    for row in rows:
        table.add_row(*row)
    console.print(table)
