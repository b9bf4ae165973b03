"""The HLS report: each run straight at the node and through the cache, side by side, and
glass-to-glass latency of WebRTC and HLS."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.report import mark, report_console

__all__ = ["exact", "print_hls_report", "run_ok", "ratios"]

_MAX_ORIGIN_PER_SEGMENT = 2.0  # through the cache: one fetch a segment (part), a retry at most


def run_ok(run: dict[str, Any]) -> bool:
    """Every viewer served: every segment from its join to the live edge, in order, no error,
    while the show went on (segments written all through the window, the publisher live);
    through the cache also the origin fetched each segment about once."""
    served = run["viewers_served"] == run["viewers"] and run["stream_advanced"]
    if run["via"] == "direct":
        return served
    per = run["origin_requests_per_segment"]
    return served and per is not None and per <= _MAX_ORIGIN_PER_SEGMENT


def exact(report: dict[str, Any]) -> bool:
    """The correctness half: every cached run held (straight at the node, a run may fail
    for want of CPU: that is the figure), the glass-to-glass counters read in order."""
    cached = [r for r in report["runs"] if r["via"] == "nginx"]
    glass = report.get("glass")
    pictures = glass is None or (glass["webrtc"]["in_order"] and glass["hls"]["frames_in_order"]
                                 and glass["hls"]["segments_in_order"])
    return all(run_ok(r) for r in cached) and bool(pictures)


def ratios(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per N with both runs: through the cache over straight at the node."""
    out = []
    by = {(r["viewers"], r["via"]): r for r in report["runs"]}
    for (n, via), direct in by.items():
        cached = by.get((n, "nginx"))
        if via != "direct" or cached is None:
            continue

        def ratio(a: float | None, b: float | None) -> float | None:
            return round(a / b, 3) if a is not None and b else None

        out.append({"viewers": n,
                    "node_cpu": ratio(cached["node_cpu_pct"], direct["node_cpu_pct"]),
                    "origin_requests_per_segment": ratio(cached["origin_requests_per_segment"],
                                                         direct["origin_requests_per_segment"]),
                    "segment_p99": ratio(cached["segment_ms"]["p99"], direct["segment_ms"]["p99"])})
    return out


def _ms(d: dict[str, Any]) -> str:
    return f"{d['p50']:.0f} / {d['p99']:.0f} / {d['max']:.0f}" if d.get("count") else "-"


def print_hls_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or report_console(160)
    cfg = report["config"]
    unit = "part" if cfg.get("player", "segments") == "ll" else "segment"
    how = ("playing parts with blocking reloads like hls.js in low-latency mode"
           if unit == "part" else "polling for segments like hls.js")
    table = Table(title=f"HLS: one node recording a {cfg['picture']} 640x360 30 fps camera, "
                        f"{cfg['segment_s']:.0f} s segments, viewers {how}, "
                        f"{cfg['window_s']:.0f} s a run")
    for name in ("viewers", "via", "served", "segments written", f"{unit} ms p50 / p99",
                 "plain playlist p99",
                 f"origin req/{unit}", "origin playlist/s", "node CPU", "nginx CPU",
                 "load gen CPU", "Mbit/s out", "holds"):
        table.add_column(name, justify="right")
    for r in report["runs"]:
        table.add_row(str(r["viewers"]), r["via"], str(r["viewers_served"]),
                      f"{r['segments_written']}" + ("" if r["ingest_after"] == "live"
                                                    else f" ({r['ingest_after']})"),
                      f"{r['segment_ms']['p50']:.1f} / {r['segment_ms']['p99']:.1f}",
                      f"{r['playlist_ms']['p99']:.1f}", str(r["origin_requests_per_segment"]),
                      f"{r['origin_playlist_requests_per_s']:.1f}", f"{r['node_cpu_pct']:.1f}",
                      f"{r['nginx_cpu_pct']:.1f}", f"{r['load_generator_cpu_pct']:.0f}",
                      f"{r['mbit_s_delivered']:,.0f}", mark(run_ok(r)))
    console.print(table)
    for r in ratios(report):
        console.print(f"{r['viewers']} viewers, cache / direct: node CPU x{r['node_cpu']}, "
                      f"origin requests per segment x{r['origin_requests_per_segment']}, "
                      f"segment p99 x{r['segment_p99']}")
    glass = report.get("glass")
    if glass:
        g = Table(title="glass to glass (capture of frame n to a viewer having it), ms "
                        "p50 / p99 / max")
        g.add_column("path")
        g.add_column("latency", justify="right")
        g.add_column("frames / segments", justify="right")
        g.add_column("in order")
        w, h = glass["webrtc"], glass["hls"]
        g.add_row("WebRTC (WHEP, aiortc decode)", _ms(w["latency_ms"]), str(w["frames_read"]),
                  mark(w["in_order"]))
        g.add_row(f"HLS, frame available ({unit} fetched)", _ms(h["available_ms"]),
                  f"{h['frames_read']} / {h['segments']}", mark(h["frames_in_order"]))
        g.add_row(f"HLS, first frame of each {unit}", _ms(h["available_first_frame_ms"]),
                  str(h["segments"]), "")
        g.add_row(f"HLS, player {h['hold_s']} s behind the edge ("
                  + ("PART-HOLD-BACK" if unit == "part" else "3 target durations") + ")",
                  _ms(h["player_behind_ms"]), str(h["player_behind_ms"]["count"]), "")
        console.print(g)
    console.print(f"node CPU with the publisher only (decode, one encode, recording): "
                  f"{report['node_cpu_no_viewers_pct']:.1f}% of a core")
    m = report["machine"]
    console.print(f"machine: {m['cpus']} cpus, {m['cpu_model']}, Python {m['python']}, load "
                  f"{m['loadavg_1m_before']} -> {m['loadavg_1m_after']}; {report['date']}; "
                  f"{report['seconds']} s; server ERROR records "
                  f"{report['server_log_errors']['count']}; exact {mark(exact(report))}")
