"""`--redis-url` may name one server or any node of a Valkey/Redis Cluster: the node asks.

No special scheme: at start the node sends `INFO cluster` to the URL's server; with
`cluster_enabled:1` it builds redis-py's asyncio `RedisCluster` (which discovers every
other node from that one), else the usual single-server client. A plain client against a
cluster node would fail on the first MOVED, so the server's own answer is the one that
cannot be misconfigured.

The cluster client offers the commands livecart sends (EVALSHA routed by the first key's
slot, SCRIPT LOAD to every primary, pipelines split per node, same-slot MULTI/EXEC,
sharded pub/sub), so the node types it as `redis.Redis`: the one place that says so is
`connect_cluster`'s cast.
"""

from __future__ import annotations

from typing import cast

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["is_cluster", "connect_cluster"]


async def is_cluster(url: str) -> bool:
    """True if the server at `url` runs in cluster mode (`INFO cluster`)."""
    probe = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2)
    try:
        info = await probe.info("cluster")
    finally:
        await probe.aclose()
    return str(info.get("cluster_enabled", "0")) == "1"


def connect_cluster(url: str, *, max_connections: int = 64) -> redis.Redis:
    """A cluster client that rides out a failover or a restart like `connect`'s does:
    commands retry on connection loss, MOVED and CLUSTERDOWN (idempotent writes only)."""
    client = RedisCluster.from_url(
        url, max_connections=max_connections, socket_timeout=10, socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 25),
        retry_on_error=[RedisConnectionError, RedisTimeoutError])
    return cast(redis.Redis, client)
