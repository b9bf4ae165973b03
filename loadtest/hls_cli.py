"""`livecart loadtest hls`: its arguments and its run (registered by `loadtest.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.args import positive_int

__all__ = ["add_hls_args", "run_hls_cli"]


def add_hls_args(scenarios: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = scenarios.add_parser(
        "hls", help="one node recording a show as HLS, N player-like viewers straight at it "
                    "and through nginx: segment latency, origin requests per segment, node "
                    "CPU; glass-to-glass latency of WebRTC and HLS")
    p.add_argument("--viewers", type=positive_int, nargs="+", default=[100],
                   help="viewer counts, each run for --window seconds (default 100)")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="also run each count through nginx, started here (default on)")
    p.add_argument("--direct", action=argparse.BooleanOptionalAction, default=True,
                   help="run each count straight at the node (default on)")
    p.add_argument("--window", type=float, default=20.0, help="seconds a run (default 20)")
    p.add_argument("--glass-window", type=float, default=20.0,
                   help="seconds of the glass-to-glass phase; 0 skips it (default 20)")
    p.add_argument("--viewers-per-process", type=positive_int, default=250)
    p.add_argument("--picture", choices=["busy", "static"], default="busy",
                   help="busy: noise below the counter (~1 Mbit/s, ~250 KB segments); "
                        "static: the bare counter")
    p.add_argument("--segment", type=float, default=2.0,
                   help="the node's recording segment length, s (default 2)")
    p.add_argument("--player", choices=["ll", "segments"], default="ll",
                   help="ll: viewers play parts with blocking reloads as hls.js in "
                        "low-latency mode (the node writes 0.5 s parts); segments: they poll "
                        "for whole segments (the node writes no parts) (default ll)")
    p.add_argument("--nginx-workers", type=positive_int, default=1)
    p.add_argument("--server-log-level", help="the server's log level (default: its own)")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")


def run_hls_cli(args: argparse.Namespace) -> int:
    """Exit status 0 when every cached run served every viewer from about one origin fetch a
    segment and the counters read in order (`hls_report.exact`)."""
    from loadtest.hls import HlsConfig, run_hls
    from loadtest.hls_report import exact, print_hls_report
    from loadtest.report import run_scenario

    config = HlsConfig(
        viewers=tuple(args.viewers), cache=args.cache, direct=args.direct,
        window_s=args.window, glass_window_s=args.glass_window,
        viewers_per_process=args.viewers_per_process, picture=args.picture,
        segment_s=args.segment, player=args.player, nginx_workers=args.nginx_workers,
        server_log_level=args.server_log_level)
    return run_scenario("hls", config, run_hls, print_hls_report, exact, args.json)
