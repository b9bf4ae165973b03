"""`livecart cluster`: a local Valkey Cluster for development and tests.

Starts 3 primaries + 3 replicas (by default) from the embedded valkey-server binary under
`<data dir>/cluster`, prints the URL to give `livecart serve --redis-url`, and runs until
Ctrl-C, then stops every node. The same data dir brings the same cluster back (same ports,
same data). Exit 0 after a clean stop, 1 if the cluster could not start.

Step one of issue 15: the livecart nodes and HAProxy in front of them are not started
here yet; run `livecart serve --redis-url <url> --port <p> --data-dir <own dir>` per node.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

__all__ = ["add_cluster_args", "run_cluster"]


def add_cluster_args(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cluster", help="run a local Valkey Cluster (3 primaries + 3 replicas) for development",
        description="Start a local Valkey Cluster from the embedded valkey-server and print "
                    "its URL for `livecart serve --redis-url`; Ctrl-C stops it. Only Valkey "
                    "for now: start the livecart nodes yourself (HAProxy and several nodes "
                    "come later, see docs/architecture.md, Cluster).")
    p.add_argument("--data-dir", type=Path, default=Path("livecart-data"),
                   help="the cluster lives in DATA_DIR/cluster (default ./livecart-data)")
    p.add_argument("--primaries", type=int, default=3, help="primaries (default 3)")
    p.add_argument("--replicas", type=int, default=1, help="replicas per primary (default 1)")


def run_cluster(args: argparse.Namespace) -> int:
    from live.node.valkey_server import ValkeyStartError
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_run(args.data_dir / "cluster", args.primaries, args.replicas))
    except KeyboardInterrupt:
        pass
    except (ValkeyStartError, ValueError, OSError) as exc:
        print(f"livecart: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run(data_dir: Path, primaries: int, replicas: int) -> None:
    from live.node.valkey_cluster import LocalCluster

    # Ctrl-C and SIGTERM stop every node. Handled here, not left to asyncio.run: a process
    # started in the background by a shell inherits SIGINT ignored, and SIGTERM's default
    # would leave the valkey-servers running.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cluster = LocalCluster(data_dir, primaries=primaries, replicas=replicas)
    await cluster.start()
    try:
        print(f"Valkey Cluster ready: {len(cluster.nodes)} nodes, data in {data_dir}")
        for node in cluster.nodes:
            print(f"  node {node.url}  pid {node.pid}")
        print(f"livecart serve --redis-url {cluster.url}", flush=True)
        await stop.wait()
    finally:
        await asyncio.shield(cluster.stop())
