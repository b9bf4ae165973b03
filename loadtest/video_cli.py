"""`livecart loadtest video`: its arguments and its run (registered by `loadtest.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

__all__ = ["add_video_args", "run_video_cli"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_video_args(scenarios: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = scenarios.add_parser(
        "video", help="one WHIP publisher, N WHEP viewers on one node: frames per second, "
                      "server CPU, capacity with one shared encode vs one encode per viewer")
    p.add_argument("--viewers", type=_positive_int, default=50)
    p.add_argument("--window", type=float, default=10.0,
                   help="seconds measured once all the viewers have frames (default 10)")
    p.add_argument("--ramp", action=argparse.BooleanOptionalAction, default=True,
                   help="also find the capacity: add viewers step by step until frames drop, "
                        "with the shared encoder and then on a node encoding per viewer "
                        "(default on)")
    p.add_argument("--max-viewers", type=_positive_int, default=200,
                   help="the ramp stops here (default 200)")
    p.add_argument("--ramp-window", type=float, default=5.0,
                   help="seconds measured at each other step of the ramp (default 5)")
    p.add_argument("--sample", type=int, default=2,
                   help="viewers that decode every frame and check its counter (default 2)")
    p.add_argument("--viewers-per-process", type=_positive_int, default=50,
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
    import uvloop

    from loadtest.report import write_json
    from loadtest.video import VideoConfig, run_video
    from loadtest.video_report import exact, print_video_report

    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("loadtest").setLevel(logging.INFO)
    config = VideoConfig(
        viewers=args.viewers, window_s=args.window, ramp=args.ramp,
        ramp_window_s=args.ramp_window, max_viewers=args.max_viewers, sample=args.sample,
        viewers_per_process=args.viewers_per_process, picture=args.picture,
        duration_limit_s=args.duration_limit, server_log_level=args.server_log_level)
    try:
        config.validate()
    except ValueError as exc:
        raise SystemExit(f"livecart loadtest video: {exc}") from None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        report = runner.run(run_video(config))
    print_video_report(report)
    if args.json:
        write_json(report, args.json)
    return 0 if exact(report) else 1
