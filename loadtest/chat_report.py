"""The chat report: verdicts against docs/chat.md's fan-out promises, a rich table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.report import closing_rows, mark, report_console

__all__ = ["chat_verdicts", "print_chat_report", "exact", "PIN_RATIO_TARGET"]

PIN_RATIO_TARGET = 1.25  # pin p99 while chat floods / pin p99 without chat
# The window's edges cut ticks: a viewer's count over it may hold a part-tick more.
CAP_SLACK = 1.02


def pin_ratio(report: dict[str, Any]) -> float | None:
    quiet, flood = report.get("pins_quiet") or {}, report.get("pins_flood") or {}
    if not quiet.get("p99_ms") or not flood:
        return None
    return round(flood["p99_ms"] / quiet["p99_ms"], 3)


def exact(report: dict[str, Any]) -> bool:
    """The correctness half: everyone connected and stayed, no seq gap or repeat, chat
    accepted, every deletion and every host message reached every viewer, every pin too."""
    flood = report.get("flood") or {}
    return (report["viewers_connected"] == report["viewers"]
            and report.get("viewers_gave_up") == 0
            and report.get("gaps") == 0 and report.get("duplicates") == 0
            and flood.get("accepted", 0) > 0
            and bool((report.get("deletions") or {}).get("all_reached"))
            and bool((report.get("host_messages") or {}).get("all_reached"))
            and all((report.get(k) or {}).get("missed_pairs") == 0
                    for k in ("pins_quiet", "pins_flood")))


def chat_verdicts(report: dict[str, Any]) -> dict[str, bool | None]:
    """Each target: True/False, or None when not measured."""
    flood = report.get("flood") or {}
    rates = flood.get("per_viewer_per_s") or {}
    cap = report["per_viewer_cap"]
    ratio = pin_ratio(report)
    cpu = report.get("cpu_per_delivery") or {}
    chat_us = (cpu.get("chat_message") or {}).get("net_us")
    state_us = (cpu.get("state_frame") or {}).get("net_us")
    deletions = report.get("deletions") or {}
    hosts = report.get("host_messages") or {}
    return {
        "per_viewer_cap": None if rates.get("p50") is None
        else rates["p50"] <= cap * CAP_SLACK and rates["mean"] <= cap * CAP_SLACK,
        "pin_ratio": None if ratio is None else ratio <= PIN_RATIO_TARGET,
        "deletions": deletions.get("all_reached") if deletions.get("count") else None,
        "host_messages": hosts.get("all_reached") if hosts.get("count") else None,
        "cpu": None if chat_us is None or state_us is None else chat_us <= state_us,
    }


def _num(value: Any, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _lat(p: dict[str, Any]) -> str:
    return "-" if not p else f"{p['p50_ms']:.1f} / {p['p99_ms']:.1f} / {p['max_ms']:.1f}"


def _share(block: dict[str, Any]) -> str:
    if not block.get("count"):
        return "-"
    return (f"{block['count']}: worst {block['worst_reached']:.2%} of {block['viewers']:,} "
            f"({', '.join(str(i['viewers']) for i in block['items'])})")


def print_chat_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or report_console()
    v = chat_verdicts(report)
    flood = report.get("flood") or {}
    rates = flood.get("per_viewer_per_s") or {}
    lat = flood.get("latency_ms") or {}
    quiet, during = report.get("pins_quiet") or {}, report.get("pins_flood") or {}
    cpu = report.get("cpu_per_delivery") or {}
    hosts = report.get("host_messages") or {}
    cap = report["per_viewer_cap"]
    table = Table(title=f"chat: {report['viewers']:,} viewers, {report['chatters']:,} chatters "
                        f"at {report['config']['chat_rate']:g} messages/s")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target")

    def cpu_row(name: str) -> str:
        block = cpu.get(name) or {}
        return f"{_num(block.get('us'), '.1f')} / {_num(block.get('net_us'), '.1f')}"

    rows: list[tuple[str, str, str]] = [
        ("viewers connected / chatters connected",
         f"{report['viewers_connected']:,} / {(report.get('chatters_connect') or {}).get('ready', 0):,}",
         f"{report['viewers']:,} / {report['chatters'] + 1:,} (with the host)"),
        ("messages accepted/s (accepted of sent)",
         "-" if not flood else f"{flood['accepted_per_s']:,.1f} ({flood['accepted']:,} of "
                               f"{flood['sent'].get('chat', 0):,})",
         f"{report['config']['chat_rate']:g}"),
        ("refused, by code", str(flood.get("refused") or "none"), ""),
        ("per-viewer chat rate mean / min / p50 / max (msgs/s)",
         "-" if rates.get("mean") is None else
         f"{rates['mean']:.2f} / {rates['min']:.2f} / {rates['p50']:.2f} / {rates['max']:.2f}",
         f"mean, p50 <= {cap:g} (LIVECART_CHAT_PER_VIEWER_S) {mark(v['per_viewer_cap'])}"),
        ("deliveries/s (messages to sockets) / chat frames/s",
         "-" if not flood else
         f"{flood['deliveries_per_s']:,.0f} / {flood['chat_frames_per_s']:,.0f}", ""),
        ("chat latency p50 / p99 / max (ms, send to viewer)",
         "-" if not lat else f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f}", ""),
        ("messages out of log order at a viewer", _num(flood.get("out_of_order")), "0"),
        ("pin p50 / p99 / max, no chat (ms)", _lat(quiet), ""),
        ("pin p50 / p99 / max, chat flooding (ms)", _lat(during), ""),
        ("pin p99 ratio, flood / no chat", _num(pin_ratio(report), ".2f"),
         f"<= {PIN_RATIO_TARGET} {mark(v['pin_ratio'])}"),
        ("(viewer, pin) pairs missed, no chat / flood",
         f"{_num(quiet.get('missed_pairs'))} / {_num(during.get('missed_pairs'))}", "0"),
        ("deletions: viewers that got each chat.deleted", _share(report.get("deletions") or {}),
         f"100% {mark(v['deletions'])}"),
        ("host messages in the flood: viewers that got each", _share(hosts),
         f"100% {mark(v['host_messages'])}"),
        ("host message latency p50 / p99 (ms)",
         "-" if not hosts.get("latency_ms") else
         f"{hosts['latency_ms']['p50']:.1f} / {hosts['latency_ms']['p99']:.1f}", ""),
        ("server CPU per chat message delivered (us, gross / net of idle)",
         cpu_row("chat_message"), f"<= a state frame's {mark(v['cpu'])}"),
        ("server CPU per chat frame delivered (us, gross / net)", cpu_row("chat_frame"), ""),
        ("server CPU per state frame delivered (us, gross / net)", cpu_row("state_frame"), ""),
        ("server CPU: idle room / state phase / flood (s)",
         f"{_num((report.get('idle') or {}).get('server_cpu_s'), '.2f')} / "
         f"{_num((report.get('state_phase') or {}).get('server_cpu_s'), '.2f')} / "
         f"{_num(flood.get('server_cpu_s'), '.2f')}",
         f"{_num(cpu.get('idle_cpu_per_s'), '.3f')} s/s idle"),
        ("frames per viewer during the flood", "-" if not flood else ", ".join(
            f"{k} {n / max(1, report['viewers_connected']):,.1f}"
            for k, n in flood["frames_to_viewers"].items()), ""),
        ("seq gaps / duplicates", f"{_num(report.get('gaps'))} / {_num(report.get('duplicates'))}",
         "0"),
        ("reconnects / gave up",
         f"{_num(report.get('hub_connects', 0) - report['viewers_connected'])}"
         f" / {_num(report.get('viewers_gave_up'))}", "0"),
        ("close codes", str(report.get("hub_closes") or "-"), ""),
        ("server ERROR lines", _num((report.get("server_log_errors") or {}).get("count")), "0"),
    ]
    others = [f"{name} {phase['machine']['others_cpu_s']:.1f} s" for name, phase in
              (("idle", report.get("idle") or {}), ("state", report.get("state_phase") or {}),
               ("flood", flood)) if phase.get("machine")]
    rows.extend(closing_rows(report, others))
    for row in rows:
        table.add_row(*row)
    console.print(table)
