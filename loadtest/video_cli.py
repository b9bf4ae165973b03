"""`livecart loadtest video`: its arguments and its run (registered by `loadtest.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.args import positive_int

__all__ = ["add_video_args", "run_video_cli"]


def add_video_args(scenarios: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = scenarios.add_parser(
        "video", help="one WHIP publisher, N WHEP viewers on one node: frames per second, "
                      "server CPU, capacity with one shared encode vs one encode per viewer")
    p.add_argument("--viewers", type=positive_int, default=50)
    p.add_argument("--window", type=float, default=10.0,
                   help="seconds measured once all the viewers have frames (default 10)")
    p.add_argument("--ramp", action=argparse.BooleanOptionalAction, default=True,
                   help="also find the capacity: add viewers step by step until frames drop, "
                        "with the shared encoder and then on a node encoding per viewer "
                        "(default on)")
    p.add_argument("--max-viewers", type=positive_int, default=200,
                   help="the ramp stops here (default 200)")
    p.add_argument("--ramp-window", type=float, default=5.0,
                   help="seconds measured at each other step of the ramp (default 5)")
    p.add_argument("--sample", type=int, default=2,
                   help="viewers that decode every frame and check its counter (default 2)")
    p.add_argument("--viewers-per-process", type=positive_int, default=50,
                   help="counting viewers per client process (default 50)")
    p.add_argument("--picture", choices=["busy", "static"], default="busy",
                   help="busy: noise below the counter, so the encoder spends its bitrate "
                        "(~1 Mbit/s) as with a camera; static: the bare counter (~20 kbit/s)")
    p.add_argument("--duration-limit", type=float, default=900.0,
                   help="seconds after which the ramp adds no more steps (default 900)")
    p.add_argument("--server-log-level", help="the server's log level (default: its own)")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")


def run_video_cli(args: argparse.Namespace) -> int:
    """Exit status 0 when the run was exact (see `video_report.exact`); frame rate and CPU
    targets are reported, not enforced."""
    from loadtest.report import run_scenario
    from loadtest.video import VideoConfig, run_video
    from loadtest.video_report import exact, print_video_report

    config = VideoConfig(
        viewers=args.viewers, window_s=args.window, ramp=args.ramp,
        ramp_window_s=args.ramp_window, max_viewers=args.max_viewers, sample=args.sample,
        viewers_per_process=args.viewers_per_process, picture=args.picture,
        duration_limit_s=args.duration_limit, server_log_level=args.server_log_level)
    return run_scenario("video", config, run_video, print_video_report, exact, args.json)
