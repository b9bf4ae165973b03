"""The video report: verdicts against DESIGN.md's video target, rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.report import mark, report_console
from loadtest.video import FPS

__all__ = ["exact", "print_video_report", "video_verdicts", "viewers_within_budget"]

VIEWERS_TARGET = 50
CPU_TARGET_PCT = 40.0  # of one core, the whole server process


def exact(report: dict[str, Any]) -> bool:
    """The correctness half: every viewer served, one encode, the sample's picture advancing
    in order."""
    sample = report["sample"]
    return bool(report["viewers_served"] == report["viewers"] and report["encoders"] == 1
                and (sample["viewers"] == 0 or (sample["in_order"] and sample["advanced"])))


def viewers_within_budget(report: dict[str, Any]) -> int | None:
    """The most viewers a shared-encode step served at full frame rate within the CPU
    target; None if no step stayed within it."""
    fits = [s["viewers"] for s in report["shared"]["steps"]
            if s["ok"] and s["cpu_total_pct"] <= CPU_TARGET_PCT]
    return max(fits, default=None)


def video_verdicts(report: dict[str, Any]) -> dict[str, bool | None]:
    """Each target: True/False, or None when this run did not measure it."""
    sample = report["sample"]
    big = [s for s in report["shared"]["steps"] if s["viewers"] >= VIEWERS_TARGET]
    within = viewers_within_budget(report)
    return {
        "served": report["viewers_served"] == report["viewers"],
        "one_encode": report["encoders"] == 1,
        "frame_rate": report["ok"],
        "picture": None if not sample["viewers"] else sample["in_order"] and sample["advanced"],
        "target": None if not big else within is not None and within >= VIEWERS_TARGET,
    }



def _capacity(ladder: dict[str, Any] | None) -> str:
    if not ladder:
        return "-"
    if ladder["first_failing"] is None:
        return f">= {ladder['capacity']} (no drop; stopped at {ladder['stopped_at']})"
    return f"{ladder['capacity']} (drops at {ladder['first_failing']})"


def _steps_table(report: dict[str, Any]) -> Table:
    table = Table(title="steps (CPU in % of one core; per viewer: above publisher only, / N; "
                        "load gen: this process + viewer processes)")
    for name in ("encode", "viewers", "served", "fps p50 / min", "kbit/s", "server CPU",
                 "per viewer", "encoders", "load gen CPU", "others", "holds"):
        table.add_column(name, justify="right")
    for ladder in (report["shared"], report.get("per_viewer")):
        if not ladder:
            continue
        for s in ladder["steps"]:
            gen = s["load_generator_cpu_pct"]
            table.add_row(
                ladder["mode"], str(s["viewers"]), str(s["viewers_served"]),
                f"{s['fps_received']['p50']:.1f} / {s['fps_received']['min']:.1f}",
                f"{s['kbps_received_p50']:,.0f}",
                f"{s['cpu_total_pct']:.1f}", f"{s['cpu_per_viewer_pct']:.2f}", str(s["encoders"]),
                f"{gen['this_process']:.0f} + {sum(gen['viewer_processes']):.0f}"
                + (" [red]saturated[/]" if s["load_generator_saturated"] else ""),
                f"{s['others_cpu_pct']:.0f}", mark(s["ok"]))
    return table


def print_video_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or report_console(140)
    v = video_verdicts(report)
    n = report["viewers"]
    fps = report["fps_received"]
    sample = report["sample"]
    shared, per_viewer = report["shared"], report.get("per_viewer")
    main = next(s for s in shared["steps"] if s["viewers"] == n)
    cfg = report["config"]
    table = Table(title=f"video: {n} WHEP viewers of one stream, 640x360 at {FPS} fps "
                        f"({cfg['picture']} picture), one node")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target")
    within = viewers_within_budget(report)
    rows: list[tuple[str, str, str]] = [
        ("viewers served (frames advanced) / connected",
         f"{report['viewers_served']} / {main['viewers_connected']}", f"{n} {mark(v['served'])}"),
        ("video encoders on the server", str(report["encoders"]), f"1 {mark(v['one_encode'])}"),
        ("fps received p50 / min", f"{fps['p50']:.1f} / {fps['min']:.1f}",
         (f">= {cfg['p50_fps_fraction'] * FPS:.0f} / >= {cfg['min_fps_fraction'] * FPS:.1f} "
          f"{mark(v['frame_rate'])}")),
        ("video received per viewer p50 (kbit/s)", f"{report['kbps_received_p50']:,.0f}", ""),
        ("sample decoded: counter advanced / unreadable frames",
         "-" if not sample["viewers"] else
         ", ".join(f"+{p['advanced_by']}" for p in sample["per_viewer"])
         + ("" if sample["in_order"] else " OUT OF ORDER") + f" / {sample['unreadable_frames']}",
         f"in order {mark(v['picture'])}"),
        ("server CPU with the viewers (% of a core)", f"{report['cpu_total_pct']:.1f}", ""),
        ("  publisher only / the viewers' share",
         f"{report['cpu_publisher_only_pct']:.1f} / {report['cpu_viewers_pct']:.1f}", ""),
        ("  per viewer (the viewers' share / N)", f"{report['cpu_per_viewer_pct']:.2f}", ""),
        ("server memory per viewer (KiB)", f"{report['rss_per_viewer_kib']:,.0f}", ""),
        (f"viewers at {FPS} fps within {CPU_TARGET_PCT:.0f}% of a core (shared encode)",
         "-" if within is None else str(within),
         f">= {VIEWERS_TARGET} {mark(v['target'])}"),
        ("fps published / encoded once; ingest frames dropped",
         (f"{main['published_fps']:.1f} / {main.get('encoded_fps', '-')}; "
          f"{main.get('ingest_frames_dropped', '-')}"), ""),
        ("capacity, shared encode (viewers)", _capacity(shared) if cfg["ramp"] else "-", ""),
        ("capacity, one encode per viewer (viewers)", _capacity(per_viewer), ""),
        ("load generator CPU (this process / viewer processes)",
         (f"{main['load_generator_cpu_pct']['this_process']:.0f} / "
          f"{main['load_generator_cpu_pct']['viewer_processes']}"), ""),
        ("CPU used by other processes meanwhile (%)",
         f"{main['others_cpu_pct']:.0f} (steal {main['steal_pct']:.0f})", "0 on a quiet machine"),
    ]
    errors = [f"{ladder['mode']}: {ladder['server_log_errors']['count']}"
              for ladder in (shared, per_viewer) if ladder and ladder.get("server_log_errors")]
    rows.append(("server ERROR log records", ", ".join(errors) or "-", "0"))
    machine = report["machine"]
    rows.append(("machine", (f"{machine['cpus']} cpus, {machine['cpu_model']}, Python "
                             f"{machine['python']}, load {machine['loadavg_1m_before']} -> "
                             f"{machine['loadavg_1m_after']}"), report["date"]))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(_steps_table(report))
