"""`livecart loadtest chat`: its arguments and its run (registered by `loadtest.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.args import positive_int

__all__ = ["add_chat_args", "run_chat_cli"]


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_chat_args(scenarios: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = scenarios.add_parser(
        "chat", help="a room flooded with chat: per-viewer sampling, deliveries/s, chat "
                     "latency, pins with and without chat, deletions and host messages "
                     "reaching everyone, server CPU per chat message vs per state frame")
    p.add_argument("--viewers", type=positive_int, default=2_000,
                   help="anonymous viewers in the room (default 2,000)")
    p.add_argument("--chat-rate", type=float, default=200.0,
                   help="chat messages a second from all chatters together (default 200)")
    p.add_argument("--chatters", type=positive_int,
                   help="signed-in buyers sending them (default 1.5 per message a second: "
                        "the server takes one a second per user)")
    p.add_argument("--processes", type=positive_int,
                   help="viewer client processes (default: one per 2,500 viewers)")
    p.add_argument("--duration", type=float, default=15.0,
                   help="seconds of chat flood; the pins, deletions and host messages happen "
                        "inside it (default 15)")
    p.add_argument("--pins", type=positive_int, default=10,
                   help="pin/unpin toggles without chat, and again during the flood (default 10)")
    p.add_argument("--pin-interval", type=float, default=0.5)
    p.add_argument("--deletions", type=_non_negative_int, default=5,
                   help="messages the host deletes over REST during the flood (default 5)")
    p.add_argument("--host-messages", type=_non_negative_int, default=5,
                   help="messages the host sends during the flood (default 5)")
    p.add_argument("--server-log-level", help="the server's log level (default: its own)")
    p.add_argument("--py-spy", type=Path,
                   help="record the livecart server with py-spy during the measured phases "
                        "into this file (.svg, .json speedscope, .txt collapsed stacks)")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")


def run_chat_cli(args: argparse.Namespace) -> int:
    """Exit status 0 when the run was exact (see `chat_report.exact`); timing targets are
    reported, not enforced."""
    from loadtest.chat import ChatConfig, run_chat
    from loadtest.chat_report import exact, print_chat_report
    from loadtest.report import run_scenario

    config = ChatConfig(
        viewers=args.viewers, chat_rate=args.chat_rate, chatters=args.chatters,
        processes=args.processes, duration_s=args.duration, pins=args.pins,
        pin_interval_s=args.pin_interval, deletions=args.deletions,
        host_messages=args.host_messages, server_log_level=args.server_log_level,
        py_spy=args.py_spy)
    return run_scenario("chat", config, run_chat, print_chat_report, exact, args.json)
