"""Check that an external Valkey/Redis server is fit for livecart before we rely on it.

Requirements and why:
- version >= 7.2: the buy path needs WAITAOF and functions.
- `appendonly yes`: an acknowledged order must survive a crash.
- `maxmemory-policy noeviction`: evicting a stock counter or an order would be silent data loss.
`appendfsync` is reported but not enforced: `everysec` plus WAITAOF is a valid choice.
On a cluster every node is checked, replicas too: a replica becomes the primary that holds
the orders after a failover, so it must keep them the same way.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ResponseError

from checkout.errors import LivecartError

__all__ = ["ServerInfo", "ValkeyRequirementError", "check_server", "MIN_VERSION", "parse_version"]

logger = logging.getLogger(__name__)

MIN_VERSION: tuple[int, int, int] = (7, 2, 0)
_UNKNOWN = "unknown"


class ValkeyRequirementError(LivecartError, RuntimeError):
    """The server is reachable but misconfigured; the message says what to change."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What we learned about the server. `appendfsync` is "unknown" if CONFIG is unavailable."""

    version: str
    version_tuple: tuple[int, ...]
    appendonly: bool
    appendfsync: str
    maxmemory_policy: str
    cluster_enabled: bool


def parse_version(version: str) -> tuple[int, ...]:
    """"7.2.4" -> (7, 2, 4); tolerant of suffixes such as "8.0.0-rc1" (-> (8, 0, 0))."""
    parts: list[int] = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


async def check_server(client: redis.asyncio.Redis) -> ServerInfo:
    """Read the server's version and persistence settings; raise if livecart cannot rely on it.

    Raises `ValkeyRequirementError` listing every problem found (on a cluster, per node);
    connection errors propagate. On a cluster the answer is the first node's, with the
    weakest `appendfsync` any node has.
    """
    if isinstance(client, RedisCluster):
        return await _check_cluster(client)
    server = await _read_server(client, None)
    problems = _problems(server)
    if problems:
        raise ValkeyRequirementError("server not suitable for livecart: " + "; ".join(problems))
    _note_appendfsync(server)
    return server


async def _check_cluster(client: RedisCluster) -> ServerInfo:
    await client.initialize()  # the client learns the nodes on its first command
    nodes = sorted(client.get_nodes(), key=lambda n: str(n.name))
    servers = [await _read_server(client, node) for node in nodes]
    problems = [f"{node.name}: {problem}"
                for node, server in zip(nodes, servers) for problem in _problems(server)]
    if problems:
        raise ValkeyRequirementError("cluster not suitable for livecart: " + "; ".join(problems))
    fsyncs = {server.appendfsync for server in servers}
    weakest = next((f for f in ("no", "everysec", _UNKNOWN) if f in fsyncs), "always")
    server = ServerInfo(servers[0].version, servers[0].version_tuple, True, weakest,
                        servers[0].maxmemory_policy, True)
    _note_appendfsync(server)
    return server


async def _read_server(client: redis.asyncio.Redis | RedisCluster,
                       node: ClusterNode | None) -> ServerInfo:
    """One server's INFO and CONFIG (`node`: that node of a cluster client)."""
    target: dict[str, Any] = {} if node is None else {"target_nodes": node}
    info = await client.info(**target)
    # Valkey reports its own version as valkey_version and a frozen redis_version (7.2.4).
    version = str(info.get("valkey_version") or info.get("redis_version") or "")
    config = await _config_get(client, target, "appendonly", "appendfsync", "maxmemory-policy")
    if config is not None:
        appendonly = config.get("appendonly", "").lower() == "yes"
        appendfsync = config.get("appendfsync", _UNKNOWN).lower()
        policy = config.get("maxmemory-policy", _UNKNOWN).lower()
    else:  # CONFIG disabled, renamed or denied by ACL: INFO has most of it
        appendonly = str(info.get("aof_enabled", "0")) == "1"
        appendfsync = _UNKNOWN
        policy = str(info.get("maxmemory_policy", _UNKNOWN)).lower()
    return ServerInfo(
        version=version,
        version_tuple=parse_version(version),
        appendonly=appendonly,
        appendfsync=appendfsync,
        maxmemory_policy=policy,
        cluster_enabled=str(info.get("cluster_enabled", "0")) == "1",
    )


def _note_appendfsync(server: ServerInfo) -> None:
    if server.appendfsync not in ("always", _UNKNOWN):
        logger.info("appendfsync is %s: orders are durable only with WAITAOF", server.appendfsync)


def _problems(server: ServerInfo) -> list[str]:
    problems: list[str] = []
    if not server.version_tuple:
        problems.append(f"cannot read the server version from INFO (got {server.version!r})")
    elif server.version_tuple < MIN_VERSION:
        problems.append(
            f"version {server.version} is too old: livecart needs Redis/Valkey >= 7.2 "
            "(WAITAOF and functions); upgrade the server")
    if not server.appendonly:
        problems.append("AOF is off: set `appendonly yes`")
    if server.maxmemory_policy != "noeviction":
        problems.append(
            f"maxmemory-policy is {server.maxmemory_policy}: set `maxmemory-policy noeviction` "
            "(eviction would silently drop stock counters and orders)")
    return problems


async def _config_get(client: redis.asyncio.Redis | RedisCluster, target: dict[str, Any],
                      *names: str) -> dict[str, str] | None:
    """CONFIG GET the names, decoded to str; None if the server refuses CONFIG."""
    try:
        raw: dict[Any, Any] = await client.config_get(*names, **target)
    except ResponseError as exc:  # unknown/renamed command, or NOPERM (a subclass)
        logger.debug("CONFIG GET unavailable (%s); falling back to INFO", exc)
        return None
    return {_text(key).lower(): _text(value) for key, value in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
