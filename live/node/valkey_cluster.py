"""A local Valkey Cluster from the embedded binary: N primaries with R replicas each.

For development and tests (`livecart cluster`, the cluster test fixture), not production:
every node is an `EmbeddedValkey` (same AOF-only config, same supervisor, same data-dir
lock) with `cluster-enabled yes` and its `nodes.conf` in its own data dir. The wheel ships
no valkey-cli, so the cluster is formed with plain commands, the way
`valkey-cli --cluster create` does it: slots split evenly (CLUSTER ADDSLOTSRANGE), a
distinct config epoch per primary, CLUSTER MEET, CLUSTER REPLICATE; then we wait for
`cluster_state:ok` on every node and every replica's link to its primary.

Ports are chosen once and written to `cluster.json` in the data dir, so a restart on the
same dir brings the same cluster back (each node rejoins from its nodes.conf). The cluster
bus port is chosen too (valkey's default, port + 10000, can be past 65535 for an
ephemeral port). Both are chosen outside the kernel's ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range), where nothing takes them for an outgoing
connection between the pick and the bind (a load test's client sockets did, and the
cluster failed to start); a node of a new cluster that still finds one taken is started
again on another pair before the cluster is formed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import redis.asyncio as redis

from live.node.valkey_server import EmbeddedValkey, ValkeyStartError, free_port

__all__ = ["LocalCluster", "SLOTS"]

logger = logging.getLogger(__name__)

SLOTS = 16384
_STATE_NAME = "cluster.json"
_POLL_S = 0.05
_BIND_ATTEMPTS = 5  # pairs tried per node of a new cluster
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10000  # below: well-known and registered services are more likely


class LocalCluster:
    """`primaries` x (1 + `replicas`) supervised valkey-servers forming one cluster.

    `async with LocalCluster(path) as c:` or `await start()` / `await stop()` (idempotent).
    `url` names the first primary: a cluster client discovers the rest from it.
    """

    def __init__(self, data_dir: Path, *, primaries: int = 3, replicas: int = 1,
                 host: str = "127.0.0.1", appendfsync: str = "always",
                 node_timeout_ms: int = 2000, ready_timeout_s: float = 30.0) -> None:
        """`node_timeout_ms` is how long a primary may be unreachable before its replica
        takes over (cluster-node-timeout): short, for a local cluster."""
        if primaries < 1 or replicas < 0:
            raise ValueError("need at least one primary and no negative replica count")
        self._data_dir = Path(data_dir).resolve()
        self._primaries = primaries
        self._replicas = replicas
        self._host = host
        self._appendfsync = appendfsync
        self._node_timeout_ms = node_timeout_ms
        self._ready_timeout_s = ready_timeout_s
        self.nodes: list[EmbeddedValkey] = []

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def url(self) -> str:
        """A `redis://` URL of the first primary (a node finds the cluster from any node)."""
        if not self.nodes:
            raise ValkeyStartError("cluster not started")
        return self.nodes[0].url

    @property
    def primaries(self) -> list[EmbeddedValkey]:
        """The nodes started as primaries (a failover may since have swapped roles)."""
        return self.nodes[: self._primaries]

    async def start(self) -> None:
        """Start every node, form the cluster if it is new, wait for `cluster_state:ok`."""
        if self.nodes:
            raise RuntimeError("LocalCluster already started")
        self._data_dir.mkdir(parents=True, exist_ok=True)
        fresh = not (self._data_dir / _STATE_NAME).exists()
        ports = self._ports()
        try:
            for i in range(len(ports)):
                self.nodes.append(await self._start_node(i, ports, fresh=fresh))
            clients = [redis.Redis(host=n.host, port=n.port, decode_responses=True)
                       for n in self.nodes]
            try:
                async with asyncio.timeout(self._ready_timeout_s):
                    if not await self._formed(clients):
                        await self._form(clients, ports)
                    await self._wait_ok(clients)
            finally:
                for client in clients:
                    await client.aclose()
        except BaseException:
            await self.stop()
            raise
        logger.info("local cluster of %d nodes ready at %s", len(self.nodes), self.url)

    async def replica_of(self, primary_port: int) -> EmbeddedValkey:
        """The node replicating the primary on `primary_port` (as the nodes say now: a
        failover changes it). Raises LookupError if none does."""
        for node in self.nodes:
            probe = redis.Redis(host=node.host, port=node.port, decode_responses=True)
            try:
                info = await probe.info("replication")
            finally:
                await probe.aclose()
            if info["role"] == "slave" and int(info["master_port"]) == primary_port:
                return node
        raise LookupError(f"no replica of the primary on port {primary_port}")

    async def stop(self) -> None:
        """Stop every node (replicas first, so none fails over to a stopping primary)."""
        nodes, self.nodes = self.nodes, []
        for node in reversed(nodes):
            await node.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<LocalCluster nodes={len(self.nodes)} dir={str(self._data_dir)!r}>"

    # -- internals ----------------------------------------------------------------------

    async def _start_node(self, i: int, ports: list[tuple[int, int]], *,
                          fresh: bool) -> EmbeddedValkey:
        """Start node `i` on `ports[i]`. In a new cluster (no node met another yet) a port or
        bus port taken since the pick is replaced by another pair, saved in cluster.json;
        a restarted cluster keeps its ports (its nodes know each other by them)."""
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            port, bus = ports[i]
            node = EmbeddedValkey(
                self._data_dir / f"node-{i}", host=self._host, port=port,
                appendfsync=self._appendfsync, extra_config={
                    "cluster-enabled": "yes", "cluster-config-file": "nodes.conf",
                    "cluster-port": str(bus),
                    "cluster-node-timeout": str(self._node_timeout_ms),
                    # A replica syncs at once (the default waits 5 s for others to join).
                    "repl-diskless-sync-delay": "0"})
            try:
                await node.start()
                return node
            except ValkeyStartError as exc:
                if not fresh or attempt == _BIND_ATTEMPTS or "in use" not in str(exc):
                    raise
                logger.warning("cluster node %d: port %d or bus port %d taken since picked; "
                               "trying another pair", i, port, bus)
                ports[i] = _free_pair(self._host, {p for pair in ports for p in pair})
                self._save_ports(ports)
        raise AssertionError("unreachable")

    def _save_ports(self, ports: list[tuple[int, int]]) -> None:
        (self._data_dir / _STATE_NAME).write_text(json.dumps({"ports": ports}))

    def _ports(self) -> list[tuple[int, int]]:
        """(port, bus port) per node: those of `cluster.json`, else free ones, written there."""
        state = self._data_dir / _STATE_NAME
        count = self._primaries * (1 + self._replicas)
        if state.exists():
            saved = json.loads(state.read_text())
            ports = [(int(p), int(b)) for p, b in saved["ports"]]
            if len(ports) != count:
                raise ValkeyStartError(f"{state} describes {len(ports)} nodes, not {count}: "
                                       "use another data dir")
            return ports
        ports = []
        for _ in range(count):
            ports.append(_free_pair(self._host, {p for pair in ports for p in pair}))
        self._save_ports(ports)
        return ports

    async def _formed(self, clients: list[redis.Redis]) -> bool:
        """True if every node already knows the others (a restart on the same data dir)."""
        for client in clients:
            if len(_parse_nodes(await client.execute_command("CLUSTER", "NODES"))) < len(clients):
                return False
        return True

    async def _form(self, clients: list[redis.Redis], ports: list[tuple[int, int]]) -> None:
        primaries = clients[: self._primaries]
        per = SLOTS // self._primaries
        for i, client in enumerate(primaries):
            first = i * per
            last = SLOTS - 1 if i == self._primaries - 1 else first + per - 1
            await client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            # Distinct epochs, as valkey-cli sets them: no collision to resolve at start.
            await client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        for port, bus in ports[1:]:
            await clients[0].execute_command("CLUSTER", "MEET", self.nodes[0].host, port, bus)
        await _until(lambda: self._formed(clients))
        ids = [await c.execute_command("CLUSTER", "MYID") for c in primaries]
        for j, client in enumerate(clients[self._primaries:]):
            await client.execute_command("CLUSTER", "REPLICATE", ids[j % self._primaries])

    async def _wait_ok(self, clients: list[redis.Redis]) -> None:
        """Every node says cluster_state:ok and every replica is in sync with its primary."""
        async def ready() -> bool:
            for client in clients:
                info = await client.execute_command("CLUSTER", "INFO")
                text = info if isinstance(info, str) else info.decode()
                if "cluster_state:ok" not in text:
                    return False
                replication = await client.info("replication")
                if replication.get("role") == "slave" and replication.get(
                        "master_link_status") != "up":
                    return False
            return True

        await _until(ready)


def _free_pair(host: str, taken: set[int]) -> tuple[int, int]:
    """A (port, bus port) pair free right now, not in `taken`, outside the kernel's
    ephemeral range when there is room outside it (else any free ports)."""
    low, high = _ephemeral_range()
    candidates = [r for r in (range(_LOWEST_PORT, low), range(high + 1, 65536)) if len(r)]
    if not candidates:
        return free_port(host), free_port(host)
    picked: list[int] = []
    for _ in range(1000):  # bounded: a host with no free port there falls back below
        if len(picked) == 2:
            return picked[0], picked[1]
        chosen = random.choice(candidates)
        port = random.randrange(chosen.start, chosen.stop)
        if port not in taken and port not in picked and _bindable(host, port):
            picked.append(port)
    return free_port(host), free_port(host)


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections (Linux's default if unknown)."""
    try:
        low, high = (int(x) for x in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _bindable(host: str, port: int) -> bool:
    family = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _parse_nodes(text: str) -> list[str]:
    """The ids of the CLUSTER NODES lines that are past the handshake."""
    return [line.split()[0] for line in text.splitlines()
            if line.strip() and "handshake" not in line.split()[2]]


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` until it is true (the caller's timeout bounds the wait)."""
    while True:
        with contextlib.suppress(redis.ConnectionError):
            if await check():
                return
        await asyncio.sleep(_POLL_S)
