"""`livecart loadtest fanout`: its arguments and its run (registered by `loadtest.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.args import positive_int

__all__ = ["add_fanout_args", "run_fanout_cli"]


def add_fanout_args(scenarios: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = scenarios.add_parser(
        "fanout", help="N WebSocket viewers in one room: pin latency under a buy storm, "
                       "deliveries/s and memory vs a bare websockets.broadcast server")
    p.add_argument("--viewers", type=positive_int, default=10_000)
    p.add_argument("--processes", type=positive_int,
                   help="viewer client processes (default: one per 2,500 viewers)")
    p.add_argument("--duration", type=float, default=15.0,
                   help="seconds of buy storm; the pins happen inside it (default 15)")
    p.add_argument("--buy-rate", type=float, default=300.0,
                   help="buys per second during the storm (default 300)")
    p.add_argument("--pins", type=positive_int, default=20,
                   help="pin/unpin toggles during the storm (default 20)")
    p.add_argument("--pin-interval", type=float, default=0.5)
    p.add_argument("--burst", type=positive_int, default=40,
                   help="host events sent back to back for deliveries/s (default 40)")
    p.add_argument("--server-log-level", help="the server's log level (default: its own)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the bare websockets.broadcast baseline")
    p.add_argument("--bare-loop", choices=["uvloop", "asyncio"], default="uvloop",
                   help="the baseline's event loop (default uvloop, the designed stack)")
    p.add_argument("--py-spy", type=Path,
                   help="record the livecart server with py-spy during the burst and storm "
                        "into this file (.svg flame graph, .json speedscope, .txt collapsed "
                        "stacks); perturbs timings")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")


def run_fanout_cli(args: argparse.Namespace) -> int:
    """Exit status 0 when the run was exact (see `fanout_report.exact`); timing targets are
    reported, not enforced."""
    from loadtest.fanout import FanoutConfig, run_fanout
    from loadtest.fanout_report import exact, print_fanout_report
    from loadtest.report import run_scenario

    config = FanoutConfig(
        viewers=args.viewers, processes=args.processes, duration_s=args.duration,
        buy_rate=args.buy_rate, pins=args.pins, pin_interval_s=args.pin_interval,
        burst_events=args.burst, server_log_level=args.server_log_level,
        baseline=args.baseline, bare_loop=args.bare_loop, py_spy=args.py_spy)
    return run_scenario("fanout", config, run_fanout, print_fanout_report, exact, args.json)
