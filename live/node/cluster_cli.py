"""`livecart cluster`: the whole thing locally, for development and tests.

Starts 3 primaries + 3 replicas (by default) from the embedded valkey-server binary under
`<data dir>/cluster`, then (`--nodes N`, default 2) N `livecart serve` processes on it
(each with its own data dir `cluster/livecart-<i>`, free ports, one JWT secret: the
environment's LIVECART_JWT_SECRET or `cluster/jwt.secret`) and Debian's HAProxy in front of
them with deploy/haproxy.cfg rendered for their ports (`--port`, default 8080). It prints
the URLs and pids and runs until Ctrl-C or SIGTERM, then stops HAProxy, the nodes (a
SIGTERM: they drain) and the cluster. `--nodes 0` runs the Valkey Cluster alone. The same
data dir brings the same cluster back (same Valkey ports, same data). Exit 0 after a clean
stop, 1 if something could not start.
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
        "cluster", help="run a local Valkey Cluster, N livecart nodes and HAProxy in front",
        description="Start a local Valkey Cluster from the embedded valkey-server, N "
                    "`livecart serve` nodes on it and HAProxy (deploy/haproxy.cfg) in front "
                    "of them on one port; Ctrl-C stops everything. --nodes 0: Valkey only, "
                    "and print its URL for `livecart serve --redis-url`.")
    p.add_argument("--data-dir", type=Path, default=Path("livecart-data"),
                   help="everything lives in DATA_DIR/cluster (default ./livecart-data)")
    p.add_argument("--primaries", type=int, default=3, help="primaries (default 3)")
    p.add_argument("--replicas", type=int, default=1, help="replicas per primary (default 1)")
    p.add_argument("--nodes", type=int, default=2,
                   help="livecart nodes behind HAProxy (default 2; 0: the Valkey Cluster only)")
    p.add_argument("--port", type=int, default=8080,
                   help="HAProxy's front port, the one browsers use (default 8080)")


def run_cluster(args: argparse.Namespace) -> int:
    from live.node.local_front import FrontStartError, find_haproxy
    from live.node.valkey_server import ValkeyStartError
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.nodes < 0:
            raise ValueError("--nodes must be 0 or more")
        haproxy = find_haproxy() if args.nodes else None  # before anything starts
        asyncio.run(_run(args.data_dir / "cluster", args.primaries, args.replicas,
                         args.nodes, args.port, haproxy))
    except KeyboardInterrupt:
        pass
    except (ValkeyStartError, FrontStartError, ValueError, OSError) as exc:
        print(f"livecart: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run(data_dir: Path, primaries: int, replicas: int, nodes: int, port: int,
               haproxy: str | None) -> None:
    from live.node.local_front import LocalFront
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
        if haproxy is None:
            await stop.wait()
            return
        front = LocalFront(data_dir, cluster.url, nodes=nodes, port=port, haproxy=haproxy)
        try:
            await front.start()
            for child in front.nodes:
                print(f"  livecart {child.name} {child.url} (hub :{child.ws_port})  "
                      f"pid {child.pid}  log {child.log}")
            print(f"  haproxy pid {front.haproxy_pid}  log {front.haproxy_log}")
            print(f"livecart at {front.url} (HAProxy in front of {nodes} nodes); "
                  f"tokens: livecart token ROLE SUBJECT --data-dir {data_dir}", flush=True)
            await stop.wait()
        finally:
            await asyncio.shield(front.stop())
    finally:
        await asyncio.shield(cluster.stop())
