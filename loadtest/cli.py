"""`livecart loadtest ...` subcommands, added to the `livecart` command through the
`livecart.commands` entry point (pyproject.toml): the product never imports this package."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from loadtest.args import positive_int

__all__ = ["add_args", "run", "add_loadtest_args", "run_loadtest"]

_EXTRA_HINT = "the load generators need their extra: pip install 'livecart[loadtest]'"


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("a fraction between 0 and 1, e.g. 0.5")
    return value


def add_loadtest_args(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("loadtest", help="load generators (loopback only)")
    scenarios = p.add_subparsers(dest="scenario", required=True)
    fs = scenarios.add_parser(
        "flash-sale",
        help="N buyers race for U units; checks exactness, measures vs bare starlette")
    fs.add_argument("--buyers", type=positive_int, default=20_000)
    fs.add_argument("--units", type=positive_int, default=1_000)
    fs.add_argument("--concurrency", type=positive_int, default=256,
                    help="open connections (requests in flight at most); default 256")
    fs.add_argument("--client-procs", type=int, default=1,
                    help="client processes (0: in this process); default 1")
    fs.add_argument("--rate", type=float,
                    help="open loop: arrivals per second, latency counted from the due time "
                         "(no baseline: a paced run has no throughput to compare)")
    fs.add_argument("--duration-limit", type=float, default=300.0,
                    help="seconds the race may take at most (default 300)")
    fs.add_argument("--attempt-timeout", type=float, default=10.0,
                    help="seconds per attempt before a retry with the same key (default 10)")
    fs.add_argument("--max-attempts", type=positive_int, default=6)
    fs.add_argument("--kill-valkey-at", type=_fraction,
                    help="kill -9 the embedded Valkey when this fraction of the units is sold")
    fs.add_argument("--durability", choices=["appendfsync", "waitaof"], default="appendfsync")
    fs.add_argument("--server-log-level",
                    help="the server's (and baseline's) log level; default: the server's own")
    fs.add_argument("--no-baseline", dest="baseline", action="store_false",
                    help="skip the bare starlette baseline")
    fs.add_argument("--baseline-loop", choices=["uvloop", "asyncio"], default="uvloop",
                    help="the baseline's event loop (default uvloop, as livecart configures)")
    fs.add_argument("--url", help="use this running node (127.0.0.1) instead of starting one")
    fs.add_argument("--secret", help="that node's token secret (LIVECART_JWT_SECRET)")
    fs.add_argument("--redis-url", help="that node's Valkey (deep checks, --kill-valkey-at)")
    fs.add_argument("--json", type=Path, help="also write the report as JSON here")
    from loadtest.fanout_cli import add_fanout_args
    add_fanout_args(scenarios)
    from loadtest.video_cli import add_video_args
    add_video_args(scenarios)
    from loadtest.overlay_sync import add_overlay_sync_args
    add_overlay_sync_args(scenarios)
    from loadtest.money_races_cli import add_money_races_args
    add_money_races_args(scenarios)
    from loadtest.chat_cli import add_chat_args
    add_chat_args(scenarios)
    from loadtest.cluster_sale_cli import add_cluster_sale_args
    add_cluster_sale_args(scenarios)
    from loadtest.auction_cli import add_auction_args
    add_auction_args(scenarios)
    from loadtest.hls_cli import add_hls_args
    add_hls_args(scenarios)


def add_args(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `livecart.commands` plugin hook."""
    add_loadtest_args(sub)


def run(args: argparse.Namespace) -> int:
    """The `livecart.commands` plugin hook: a missing extra is a clear message, not a trace."""
    try:
        return run_loadtest(args)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("hdrh", "playwright"):
            raise SystemExit(f"livecart loadtest: {_EXTRA_HINT} ({exc.name} is missing)") from None
        raise


def run_loadtest(args: argparse.Namespace) -> int:
    if args.scenario == "flash-sale":
        return _flash_sale(args)
    if args.scenario == "fanout":
        from loadtest.fanout_cli import run_fanout_cli
        return run_fanout_cli(args)
    if args.scenario == "video":
        from loadtest.video_cli import run_video_cli
        return run_video_cli(args)
    if args.scenario == "overlay-sync":
        from loadtest.overlay_sync import run_overlay_sync_cli
        return run_overlay_sync_cli(args)
    if args.scenario == "money-races":
        from loadtest.money_races_cli import run_money_races_cli
        return run_money_races_cli(args)
    if args.scenario == "chat":
        from loadtest.chat_cli import run_chat_cli
        return run_chat_cli(args)
    if args.scenario == "cluster-sale":
        from loadtest.cluster_sale_cli import run_cluster_sale_cli
        return run_cluster_sale_cli(args)
    if args.scenario == "auction":
        from loadtest.auction_cli import run_auction_cli
        return run_auction_cli(args)
    if args.scenario == "hls":
        from loadtest.hls_cli import run_hls_cli
        return run_hls_cli(args)
    raise SystemExit(f"unknown scenario {args.scenario}")


def _flash_sale(args: argparse.Namespace) -> int:
    import uvloop

    from loadtest.flash_sale import FlashSaleConfig, run_flash_sale
    from loadtest.report import print_report, verdicts, write_json

    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("loadtest").setLevel(logging.INFO)  # progress: setup, race, baseline
    config = FlashSaleConfig(
        buyers=args.buyers, units=args.units, concurrency=args.concurrency,
        client_processes=args.client_procs, rate_per_s=args.rate,
        duration_limit_s=args.duration_limit, attempt_timeout_s=args.attempt_timeout,
        max_attempts=args.max_attempts, kill_valkey_at=args.kill_valkey_at,
        durability=args.durability, server_log_level=args.server_log_level,
        baseline=args.baseline, baseline_loop=args.baseline_loop, url=args.url,
        secret=args.secret, redis_url=args.redis_url)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        report = runner.run(run_flash_sale(config))
    print_report(report)
    if args.json:
        write_json(report, args.json)
    v = verdicts(report)
    exact = all(v[k] for k in ("no_oversell", "no_duplicates", "no_lost_acknowledged",
                               "stock_invariant"))
    return 0 if exact else 1
