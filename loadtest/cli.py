"""`livecart loadtest ...` subcommands."""

from __future__ import annotations

import argparse

__all__ = ["add_loadtest_args", "run_loadtest"]


def add_loadtest_args(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("loadtest", help="load generators (loopback only)")
    p.add_subparsers(dest="scenario", required=True)


def run_loadtest(args: argparse.Namespace) -> int:
    raise SystemExit(f"unknown scenario {args.scenario}")
