"""`livecart loadtest auction`: its arguments and its run (registered by `loadtest.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.args import positive_int

__all__ = ["add_auction_args", "run_auction_cli"]


def add_auction_args(scenarios: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = scenarios.add_parser(
        "auction", help="bidders on one live auction at an open-loop rate (issue 14): acks, "
                        "no bid after the deadline, the price recomputed, no acked bid lost")
    p.add_argument("--bidders", type=positive_int, default=5_000,
                   help="buyers with saved wallets (default 5000)")
    p.add_argument("--bid-rate", type=float, default=2_000.0,
                   help="bids per second, open loop (default 2000)")
    p.add_argument("--duration", type=int, default=30,
                   help="the auction's duration, seconds, 10-3600 (default 30)")
    p.add_argument("--extend", type=int, default=5,
                   help="its anti-sniping window, seconds, 5-60 (default 5)")
    p.add_argument("--viewers", type=int, default=0,
                   help="WebSocket viewers on the show, as many as the machine allows "
                        "(the fan-out test's client processes; default 0)")
    p.add_argument("--low-share", type=float, default=0.1,
                   help="share of the bids meant to be too low (default 0.1)")
    p.add_argument("--lead-ms", type=float, default=20.0,
                   help="the first snipes go this long before the deadline (default 20)")
    p.add_argument("--kill-valkey", action="store_true",
                   help="kill -9 the embedded Valkey halfway through; it restarts from the AOF")
    p.add_argument("--connections", type=positive_int, default=512,
                   help="client connections at most (default 512)")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the bare starlette capacity")
    p.add_argument("--server-log-level", help="the server's log level (default: its own)")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")


def run_auction_cli(args: argparse.Namespace) -> int:
    """Exit status 0 only when every invariant held (`auction_report.exact`)."""
    from loadtest.auction import AuctionConfig, run_auction
    from loadtest.auction_report import exact, print_auction_report
    from loadtest.report import run_scenario

    config = AuctionConfig(
        bidders=args.bidders, bid_rate=args.bid_rate, duration_s=args.duration,
        extend_s=args.extend, viewers=args.viewers, low_share=args.low_share,
        lead_ms=args.lead_ms, kill_valkey=args.kill_valkey, connections=args.connections,
        seed=args.seed, baseline=args.baseline, server_log_level=args.server_log_level)
    return run_scenario("auction", config, run_auction, print_auction_report, exact, args.json)
