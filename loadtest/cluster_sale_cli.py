"""`livecart loadtest cluster-sale`: its arguments, its verdicts and its table (registered by
`loadtest.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.args import positive_int
from loadtest.report import mark, report_console

__all__ = ["add_cluster_sale_args", "run_cluster_sale_cli", "run_verdicts", "exact",
           "print_cluster_sale_report"]


def add_cluster_sale_args(scenarios: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = scenarios.add_parser(
        "cluster-sale", help="a flash sale on a local Valkey Cluster with N livecart nodes "
                             "behind HAProxy (issue 15): buys/s and buys per CPU-second per "
                             "node count; --kill primary|node mid-sale, what is lost")
    p.add_argument("--nodes", type=positive_int, nargs="+", default=[1, 3],
                   help="livecart node counts, one run each (default: 1 3)")
    p.add_argument("--durability", choices=["appendfsync", "replicated"], nargs="+",
                   default=["appendfsync"],
                   help="the nodes' LIVECART_DURABILITY, one run each (default appendfsync)")
    p.add_argument("--kill", choices=["none", "primary", "node"], default="none",
                   help="kill -9 mid-sale: the Valkey primary of the product's slot (its "
                        "replica taking over) or one livecart node (default none)")
    p.add_argument("--kill-at", type=float, default=0.3,
                   help="the kill comes when this fraction of the units is sold (default 0.3)")
    p.add_argument("--buyers", type=positive_int, default=6000)
    p.add_argument("--units", type=positive_int, default=3000)
    p.add_argument("--concurrency", type=positive_int, default=64,
                   help="open connections to HAProxy (default 64)")
    p.add_argument("--client-procs", type=int, default=1,
                   help="client processes (0: in this process); default 1")
    p.add_argument("--attempt-timeout", type=float, default=5.0,
                   help="seconds per attempt before a retry with the same key (default 5)")
    p.add_argument("--max-attempts", type=positive_int, default=12)
    p.add_argument("--duration-limit", type=float, default=300.0,
                   help="seconds every run together may take at most (default 300)")
    p.add_argument("--server-log-level", help="the nodes' log level (default: their own)")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")


def run_cluster_sale_cli(args: argparse.Namespace) -> int:
    """Exit status 0 when every run is `exact` (see `run_verdicts`)."""
    from loadtest.cluster_sale import ClusterSaleConfig, run_cluster_sale
    from loadtest.report import run_scenario

    config = ClusterSaleConfig(
        nodes=tuple(args.nodes), durability=tuple(args.durability), kill=args.kill,
        kill_at=args.kill_at, buyers=args.buyers, units=args.units,
        concurrency=args.concurrency, client_processes=args.client_procs,
        attempt_timeout_s=args.attempt_timeout, max_attempts=args.max_attempts,
        duration_limit_s=args.duration_limit, server_log_level=args.server_log_level)
    return run_scenario("cluster-sale", config, run_cluster_sale, print_cluster_sale_report,
                        exact, args.json)


def run_verdicts(run: dict[str, Any], kill: str) -> dict[str, bool | None]:
    """What must hold in a run. Losing acknowledged orders to a primary's failover is
    measured, not a failure, in the default durability (asynchronous replication: it is
    what the mode trades); `replicated` must lose none (None: not judged)."""
    may_lose = kill == "primary" and run["durability"] != "replicated"
    return {
        "no_oversell": run["oversold"] == 0,
        "no_duplicates": run["duplicate_orders"] == 0,
        "stock_invariant": bool(run["stock_invariant_ok"]),
        "every_buy_answered": run["unresolved"] == 0,
        "no_lost_acknowledged": None if may_lose else run["lost_acknowledged"] == 0,
        "no_charge_without_order": None if may_lose else run["charged_without_order"] == 0,
    }


def exact(report: dict[str, Any]) -> bool:
    return all(ok is not False for run in report["runs"]
               for ok in run_verdicts(run, report["kill"]).values())


def _latency(lat: dict[str, float]) -> str:
    return f"{lat['p50']:.1f} / {lat['p99']:.1f}" if lat["count"] else "-"


def _cpu(run: dict[str, Any]) -> str:
    cpu = run["cpu_s"]
    if not cpu:
        return "- (a kill)"
    return f"{cpu['livecart']:.1f} + {cpu['valkey']:.1f} (haproxy {cpu['haproxy']:.1f})"


def _row(run: dict[str, Any], kill: str) -> list[str]:
    v = run_verdicts(run, kill)
    per_cpu = run["buys_per_cpu_s"]
    kills = "; ".join(f"{k['what']} at {k['at_s']:.2f} s ({k['sold_at_kill']} sold)"
                      for k in run["kills"]) or "-"
    return [f"{run['nodes']}", run["durability"], f"{run['buys_per_s']:,.0f}",
            "-" if per_cpu is None else f"{per_cpu:,.0f}", _cpu(run),
            _latency(run["latency_ms"]), f"{run['orders_acknowledged']:,}",
            f"{run['oversold']} {mark(v['no_oversell'])}",
            f"{run['duplicate_orders']} {mark(v['no_duplicates'])}",
            f"{run['lost_acknowledged']} {mark(v['no_lost_acknowledged'])}",
            f"{run['charged_without_order']} {mark(v['no_charge_without_order'])}",
            "{available}/{held}/{sold} of {total} ".format(**run["stock"])
            + mark(v["stock_invariant"]),
            f"{run['unresolved']} {mark(v['every_buy_answered'])}", kills]


def print_cluster_sale_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or report_console(200)
    table = Table(title=f"cluster sale: {report['buyers']:,} buyers, {report['units']:,} "
                        f"units, kill {report['kill']}, {report['concurrency']} conns via "
                        "HAProxy")
    for column in ("nodes", "durability", "buys/s", "buys/CPU-s",
                   "CPU s livecart + valkey", "p50 / p99 ms", "201s", "oversold",
                   "dup orders", "acked lost", "charged, no order",
                   "stock avail/held/sold", "unresolved", "kill"):
        table.add_column(column)
    for run in report["runs"]:
        table.add_row(*_row(run, report["kill"]))
    console.print(table)
    for s in report["scaling"]:
        per_cpu = s["buys_per_cpu_s_ratio"]
        console.print(f"{s['durability']}: {s['nodes'][1]} nodes vs {s['nodes'][0]}: "
                      f"buys/s x{s['buys_per_s_ratio']:.2f}, buys per CPU-second "
                      f"x{'-' if per_cpu is None else f'{per_cpu:.2f}'}")
    m = report["machine"]
    console.print(f"machine: {m['cpus']} cpus, {m['cpu_model']}, Python {m['python']}, load "
                  f"{m['loadavg_1m_before']} -> {m['loadavg_1m_after']}; {report['date']}")
