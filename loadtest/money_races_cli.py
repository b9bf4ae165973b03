"""`livecart loadtest money-races`: its arguments and its run (registered by `loadtest.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_money_races_args", "run_money_races_cli"]


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_money_races_args(scenarios: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = scenarios.add_parser(
        "money-races", help="pays racing their hold's expiry, cart removal racing checkout "
                            "(issue #16); then the node's reconciliation and every answer "
                            "checked against its order")
    p.add_argument("--pay-buyers", type=_count, default=300,
                   help="buyers who pay near their hold's deadline (default 300)")
    p.add_argument("--remove-buyers", type=_count, default=300,
                   help="buyers who remove their item while checking it out (default 300)")
    p.add_argument("--hold", type=int, default=4,
                   help="the node's cart hold, seconds (LIVECART_CART_HOLD_S; default 4)")
    p.add_argument("--capture", choices=["on_shipment", "immediate"], default="on_shipment",
                   help="the node's capture mode (LIVECART_CAPTURE_MODE; default on_shipment)")
    p.add_argument("--sweep-interval", type=float, default=0.1,
                   help="the node's sweeper interval, seconds (default 0.1)")
    p.add_argument("--pay-early", type=float, default=1.5,
                   help="pays land from this many seconds before the deadline (default 1.5)")
    p.add_argument("--pay-late", type=float, default=0.1,
                   help="to this many seconds after it (default 0.1)")
    p.add_argument("--seed", type=int, default=16, help="when each pays (default 16)")
    p.add_argument("--duration-limit", type=float, default=600.0,
                   help="seconds the whole run may take at most (default 600)")
    p.add_argument("--quiet-timeout", type=float, default=120.0,
                   help="seconds for the node to owe no work after the races (default 120)")
    p.add_argument("--server-log-level", help="the server's log level (default: its own)")
    p.add_argument("--url", help="use this running node (127.0.0.1) instead of starting one; "
                                 "its own hold, capture mode and sweeper apply")
    p.add_argument("--secret", help="that node's token secret (LIVECART_JWT_SECRET)")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")


def run_money_races_cli(args: argparse.Namespace) -> int:
    """Exit status 0 when no request got a 5xx or no answer, no answer was a lie, the node
    went quiet and the reconciliation found no mismatch (`money_races_report.exact`)."""
    from loadtest.money_races import MoneyRacesConfig, run_money_races
    from loadtest.money_races_report import exact, print_money_races_report
    from loadtest.report import run_scenario

    config = MoneyRacesConfig(
        pay_buyers=args.pay_buyers, remove_buyers=args.remove_buyers, hold_s=args.hold,
        capture_mode=args.capture, sweep_interval_s=args.sweep_interval,
        pay_early_s=args.pay_early, pay_late_s=args.pay_late, seed=args.seed,
        duration_limit_s=args.duration_limit, quiet_timeout_s=args.quiet_timeout,
        server_log_level=args.server_log_level, url=args.url, secret=args.secret)
    return run_scenario("money-races", config, run_money_races, print_money_races_report,
                        exact, args.json)
