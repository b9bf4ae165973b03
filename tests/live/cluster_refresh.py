"""Writes through the batcher while redis-py's cluster client drops every connection, as its
topology refresh does on a failover (tests/live/test_cluster.py runs this in its own process,
on uvloop like the node). Prints how each write ended, as JSON: {"ok": n, ...}.

Usage: python cluster_refresh.py <cluster url> <rounds>
"""

from __future__ import annotations

import asyncio
import collections
import sys
from typing import Counter, cast

import orjson
import redis.asyncio as redis
import uvloop
from redis.asyncio.cluster import RedisCluster

from checkout.store.batcher import CommandBatcher
from live.node.valkey_cluster_client import connect_cluster


async def writes_through_topology_refreshes(url: str, rounds: int) -> Counter[str]:
    """Round n: 16 writes queued, n loop turns, then every node's connections dropped."""
    client = connect_cluster(url)
    batcher = CommandBatcher(client)
    outcomes: Counter[str] = collections.Counter()

    async def write(key: str) -> None:
        try:
            await batcher.execute("SET", key, 1)
            outcomes["ok"] += 1
        except redis.ConnectionError:
            outcomes["connection error"] += 1
        except Exception as exc:  # what must not happen
            outcomes[f"{type(exc).__name__}: {exc}"[:120]] += 1

    async def refresh_after(turns: int) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)
        await cast(RedisCluster, client).nodes_manager.aclose()

    try:
        for turns in range(rounds):
            await batcher.execute("SET", "refresh:warm", 1)  # reconnected after the last one
            await asyncio.gather(refresh_after(turns),
                                 *(write(f"refresh:{turns}:{i}") for i in range(16)))
    finally:
        await batcher.close()
        await client.aclose()
    return outcomes


if __name__ == "__main__":
    counts = uvloop.run(writes_through_topology_refreshes(sys.argv[1], int(sys.argv[2])))
    sys.stdout.write(orjson.dumps(dict(counts)).decode())
