"""The flash sale past one machine (issue 15): a local Valkey Cluster, N livecart nodes
behind HAProxy, buyers through the front; optionally a kill -9 mid-sale.

For each node count x durability asked, one run on a fresh cluster (a failover swaps roles):
1. Start `LocalCluster` (3 primaries + 3 replicas) and `LocalFront` (N `livecart serve`
   children with LIVECART_DURABILITY set, HAProxy in front), all on loopback.
2. Seed the sale through the front as the flash sale does (`loadtest.flash_sale._Shop`).
3. Race the buys through HAProxy (`loadtest.race`: one Idempotency-Key per buyer, retried
   on no answer, 5xx and 202). With `kill`, once `kill_at` of the units is sold:
   "primary" SIGKILLs the Valkey primary owning the product's slot and promotes its replica
   (CLUSTER FAILOVER TAKEOVER); "node" SIGKILLs one livecart node.
4. Check what the store holds after, against the client-side log of every 201: acknowledged
   orders lost, oversold units, duplicate orders (a buyer charged twice), gateway charges
   whose order the store lacks, the stock invariant; and the CPU seconds the livecart
   nodes (with their hub children) and the Valkey servers used during the race, read from
   /proc, for buys per CPU-second (the honest comparison on a 2-core machine).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from checkout.store.keys import product_keys
from live.accounts.auth import TokenAuthority
from live.node.local_front import LocalFront, find_haproxy
from live.node.valkey_cluster import LocalCluster
from live.node.valkey_server import EmbeddedValkey, free_port
from loadtest.flash_sale import VARIANT, _Shop
from loadtest.http_client import loopback_host_port
from loadtest.machine import machine_info, now_iso
from loadtest.race import RaceResult, RaceSpec, run_race

__all__ = ["ClusterSaleConfig", "KillRecord", "run_cluster_sale", "cpu_seconds", "KILLS",
           "DURABILITIES"]

log = logging.getLogger(__name__)

Kill = Literal["none", "primary", "node"]
KILLS: tuple[Kill, ...] = ("none", "primary", "node")
DURABILITIES = ("appendfsync", "replicated")  # waitaof is refused on a cluster
_GATEWAY_ORDERS = "{gw}:order:*"  # the sandbox gateway's records on a cluster (services.py)
_CHARGED = frozenset({"authorized", "captured"})
_KILL_POLL_S = 0.005
_SCAN_BATCH = 1000
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ClusterSaleConfig:
    nodes: tuple[int, ...] = (1, 3)  # one run per count (and per durability)
    durability: tuple[str, ...] = ("appendfsync",)
    kill: Kill = "none"
    kill_at: float = 0.3  # fraction of the units sold when the kill comes
    buyers: int = 6000
    units: int = 3000
    concurrency: int = 64
    client_processes: int = 1  # 0: the clients run in this event loop
    attempt_timeout_s: float = 5.0
    max_attempts: int = 12  # a failover takes seconds: retries must outlast it
    duration_limit_s: float = 300.0  # the whole invocation, every run
    server_log_level: str | None = None

    def validate(self) -> None:
        if not self.nodes or min(self.nodes) < 1:
            raise ValueError("--nodes: one or more counts, each at least 1")
        if not self.durability or set(self.durability) - set(DURABILITIES):
            raise ValueError(f"--durability: some of {', '.join(DURABILITIES)}")
        if self.kill not in KILLS:
            raise ValueError(f"--kill: one of {', '.join(KILLS)}")
        if self.kill == "node" and min(self.nodes) < 2:
            raise ValueError("--kill node needs --nodes 2 or more (one must survive)")
        if not 0 < self.kill_at < 1:
            raise ValueError("--kill-at is a fraction between 0 and 1")
        if self.buyers < 1 or self.units < 1 or self.concurrency < 1:
            raise ValueError("buyers, units and concurrency must be at least 1")
        if self.duration_limit_s <= 0 or self.attempt_timeout_s <= 0 or self.max_attempts < 1:
            raise ValueError("the limits must be positive")


@dataclass(frozen=True, slots=True)
class KillRecord:
    what: str  # "primary <port>" or "node<i>"
    at_s: float  # after the start of the race
    sold_at_kill: int
    pid: int
    promoted: str  # the replica made primary ("" for a node kill)
    takeover_s: float  # from the kill until CLUSTER FAILOVER TAKEOVER answered


async def run_cluster_sale(config: ClusterSaleConfig) -> dict[str, Any]:
    """Every run, bounded by `duration_limit_s` in all; returns the report."""
    config.validate()
    haproxy = find_haproxy()
    load_before = os.getloadavg()[0]
    deadline = time.monotonic() + config.duration_limit_s
    runs: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(config.duration_limit_s):
            for durability in config.durability:
                for nodes in config.nodes:
                    runs.append(await _one_run(config, nodes, durability, haproxy, deadline))
    except TimeoutError:
        raise RuntimeError(f"cluster sale: not done within {config.duration_limit_s} s "
                           f"(--duration-limit; {len(runs)} runs done)") from None
    return {"scenario": "cluster-sale", "kill": config.kill, "kill_at": config.kill_at,
            "buyers": config.buyers, "units": config.units, "concurrency": config.concurrency,
            "client_processes": config.client_processes, "runs": runs,
            "scaling": _scaling(runs), "machine": machine_info(load_before), "date": now_iso()}


async def _one_run(config: ClusterSaleConfig, nodes: int, durability: str, haproxy: str,
                   deadline: float) -> dict[str, Any]:
    log.info("run: %d nodes, durability %s, kill %s", nodes, durability, config.kill)
    with tempfile.TemporaryDirectory(prefix="cluster-sale-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        secret = secrets.token_hex(32)
        settings = {"LIVECART_JWT_SECRET": secret, "LIVECART_DURABILITY": durability,
                    "LIVECART_DRAIN_DELAY_S": "0"}
        if config.server_log_level:
            settings["LIVECART_LOG_LEVEL"] = config.server_log_level
        started = time.monotonic()
        async with LocalCluster(root / "valkey") as cluster:
            front = LocalFront(root, cluster.url, nodes=nodes, port=free_port("127.0.0.1"),
                               haproxy=haproxy)
            try:
                with _environ(settings):  # LocalFront gives its nodes our environment
                    await front.start()
                return await _sale(config, cluster, front, secret, deadline, started,
                                   nodes, durability)
            finally:
                await asyncio.shield(front.stop())


async def _sale(config: ClusterSaleConfig, cluster: LocalCluster, front: LocalFront,
                secret: str, deadline: float, started: float, nodes: int,
                durability: str) -> dict[str, Any]:
    host, port = loopback_host_port(front.url)
    shop = _Shop(host, port, TokenAuthority(secret), f"{int(time.time()):x}{os.getpid():x}")
    await shop.setup(config.units, config.buyers)
    setup_s = time.monotonic() - started
    stock_key = product_keys(shop.product).stock
    kills: list[KillRecord] = []
    during: Callable[[float], Awaitable[None]] | None = None
    threshold = max(1, int(config.units * config.kill_at))
    if config.kill == "primary":
        during = _kill_primary(cluster, stock_key, threshold, kills)
    elif config.kill == "node":
        during = _kill_node(cluster, front, stock_key, threshold, kills)
    livecart = [n.pid for n in front.nodes]
    valkey = [p for n in cluster.nodes if (p := n.pid) is not None]
    spec = RaceSpec(host, port, config.concurrency, None, config.attempt_timeout_s,
                    config.max_attempts, max(1.0, deadline - time.monotonic() - 30))
    before = _cpu_of(livecart, valkey, front.haproxy_pid)
    race = await run_race(spec, shop.buy_requests(), processes=config.client_processes,
                          during=during)
    cpu = _cpu_of(livecart, valkey, front.haproxy_pid)
    log.info("race done: %d replies in %.2f s; checking", race.completed, race.elapsed_s)
    store = await _store_url(cluster, stock_key)
    checks = await shop.verify(race, store)
    charged_only = await _charged_without_order(cluster, store, shop.product)
    used = None if kills else {k: round(cpu[k] - before[k], 2) for k in cpu}
    return _run_report(nodes, durability, race, checks, charged_only, kills, used, setup_s)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ for the block, the old values back afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- CPU ------------------------------------------------------------------------------------

def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of `pids` and their live descendants (/proc/<pid>/stat); a
    process gone meanwhile counts 0."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the name: state ppid ... utime (14th field of the line) stime (15th)
        children[int(fields[1])].append(int(entry))
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / _CLK_TCK


def _cpu_of(livecart: list[int], valkey: list[int], haproxy: int | None) -> dict[str, float]:
    return {"livecart": cpu_seconds(livecart), "valkey": cpu_seconds(valkey),
            "haproxy": cpu_seconds([haproxy] if haproxy else [])}


# -- the kills ------------------------------------------------------------------------------

async def _sold(client: RedisCluster, stock_key: str) -> int:
    return int(await client.hget(stock_key, f"sold:{VARIANT}") or 0)


async def _until_sold(client: RedisCluster, stock_key: str, threshold: int) -> int:
    while (sold := await _sold(client, stock_key)) < threshold:
        await asyncio.sleep(_KILL_POLL_S)
    return sold


async def _owner_and_replica(cluster: LocalCluster, key: str
                             ) -> tuple[EmbeddedValkey, EmbeddedValkey]:
    """The primary serving `key`'s slot now, and its replica."""
    client = RedisCluster.from_url(cluster.url)
    try:
        await client.initialize()
        owner = client.get_node_from_key(key)
        assert owner is not None
        port = int(owner.port)
    finally:
        await client.aclose()
    primary = next(n for n in cluster.nodes if n.port == port)
    return primary, await cluster.replica_of(port)


def _kill_primary(cluster: LocalCluster, stock_key: str, threshold: int,
                  kills: list[KillRecord]) -> Callable[[float], Awaitable[None]]:
    """kill -9 the slot's primary once `threshold` units are sold; promote its replica at
    once, as an operator (or a watchdog) would (tests/live/test_failover.py)."""
    async def kill(go_at: float) -> None:
        primary, replica = await _owner_and_replica(cluster, stock_key)
        client = RedisCluster.from_url(cluster.url)
        try:
            sold = await _until_sold(client, stock_key, threshold)
        finally:
            await client.aclose()
        pid = primary.pid or 0
        primary.kill_hard()
        killed_at = time.monotonic()
        log.warning("killed the Valkey primary on port %d (pid %d) with %d units sold",
                    primary.port, pid, sold)
        promote = redis.Redis(host=replica.host, port=replica.port)
        try:
            await promote.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        finally:
            await promote.aclose()
        kills.append(KillRecord(f"primary {primary.port}", round(killed_at - go_at, 3), sold,
                                pid, f"replica {replica.port}",
                                round(time.monotonic() - killed_at, 3)))
    return kill


def _kill_node(cluster: LocalCluster, front: LocalFront, stock_key: str, threshold: int,
               kills: list[KillRecord]) -> Callable[[float], Awaitable[None]]:
    """kill -9 the first livecart node (and its hub child, by PDEATHSIG) mid-sale."""
    async def kill(go_at: float) -> None:
        client = RedisCluster.from_url(cluster.url)
        try:
            sold = await _until_sold(client, stock_key, threshold)
        finally:
            await client.aclose()
        victim = front.nodes[0]
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
        log.warning("killed livecart %s (pid %d) with %d units sold", victim.name, victim.pid,
                    sold)
        kills.append(KillRecord(victim.name, round(time.monotonic() - go_at, 3), sold,
                                victim.pid, "", 0.0))
    return kill


# -- what the store holds after -------------------------------------------------------------

async def _store_url(cluster: LocalCluster, key: str) -> str:
    """The URL of the primary serving `key`'s slot now (after any failover)."""
    primary, _ = await _owner_and_replica(cluster, key)
    return primary.url


async def _charged_without_order(cluster: LocalCluster, store_url: str, product: str) -> int:
    """Gateway holds or charges (the sandbox's records, all in the `{gw}` slot) whose order
    the store does not hold: a buyer's money taken for an order that is gone. Each run has
    a cluster of its own, so every gateway record is this run's."""
    gateway, _ = await _owner_and_replica(cluster, _GATEWAY_ORDERS)
    gw = redis.Redis(host=gateway.host, port=gateway.port, decode_responses=True)
    store = redis.Redis.from_url(store_url, decode_responses=True)
    keys = product_keys(product)
    missing = 0
    try:
        records = [k async for k in gw.scan_iter(match=_GATEWAY_ORDERS, count=_SCAN_BATCH)]
        for i in range(0, len(records), _SCAN_BATCH):
            async with gw.pipeline(transaction=False) as pipe:
                for record in records[i:i + _SCAN_BATCH]:
                    pipe.hmget(record, "state", "order_id")
                charged = [oid for state, oid in await pipe.execute()
                           if state in _CHARGED and oid]
            async with store.pipeline(transaction=False) as pipe:
                for oid in charged:
                    pipe.exists(keys.order(oid))
                missing += sum(1 for found in await pipe.execute() if not found)
        return missing
    finally:
        await gw.aclose()
        await store.aclose()


def _run_report(nodes: int, durability: str, race: RaceResult, checks: dict[str, Any],
                charged_only: int, kills: list[KillRecord], cpu: dict[str, float] | None,
                setup_s: float) -> dict[str, Any]:
    sell_s = race.last_201_at - race.go_at if race.last_201_at else 0.0
    served = cpu["livecart"] + cpu["valkey"] if cpu else 0.0
    return {
        "nodes": nodes, "durability": durability,
        "answered": race.completed,
        "orders_acknowledged": checks["orders_acknowledged"],
        "units_sold": checks["stock"]["sold"],
        "buys_per_s": round(race.throughput_per_s, 1),
        "acknowledged_per_s": round(checks["orders_acknowledged"] / sell_s, 1) if sell_s else None,
        "latency_ms": race.latency().summary().as_dict(),
        "latency_ms_201": race.latency_201().summary().as_dict(),
        # None for a run with a kill: a killed process takes its CPU count with it.
        "cpu_s": cpu,
        "buys_per_cpu_s": round(race.completed / served, 1) if served else None,
        "oversold": checks["oversold"],
        "duplicate_orders": checks["duplicate_orders"],
        "lost_acknowledged": checks["lost_acknowledged"],
        "lost_detail": checks["lost_detail"],
        "charged_without_order": charged_only,
        "stock": checks["stock"],
        "stock_invariant_ok": checks["stock_invariant_ok"],
        "unresolved": checks["unresolved"],
        "orders_in_valkey": checks.get("orders_in_valkey"),
        "order_states": checks.get("order_states"),
        "statuses": {str(k): v for k, v in sorted(collections.Counter(race.statuses).items())},
        "problems": race.problems,
        "retries": {"connection_errors": race.connection_errors, "timeouts": race.timeouts,
                    "retried_statuses": {str(k): v for k, v in race.retried_statuses.items()},
                    "max_attempts_used": max(race.attempts, default=0)},
        "kills": [asdict(k) for k in kills],
        "race_seconds": round(race.elapsed_s, 3),
        "setup_seconds": round(setup_s, 2),
    }


def _scaling(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per durability, the most nodes against the fewest: throughput and per-CPU ratios."""
    out = []
    for durability in dict.fromkeys(r["durability"] for r in runs):
        mine = sorted((r for r in runs if r["durability"] == durability and r["cpu_s"]),
                      key=lambda r: r["nodes"])
        if len(mine) < 2 or mine[0]["nodes"] == mine[-1]["nodes"]:
            continue
        low, high = mine[0], mine[-1]
        per_cpu = (round(high["buys_per_cpu_s"] / low["buys_per_cpu_s"], 3)
                   if low["buys_per_cpu_s"] and high["buys_per_cpu_s"] else None)
        out.append({"durability": durability, "nodes": [low["nodes"], high["nodes"]],
                    "buys_per_s_ratio": round(high["buys_per_s"] / low["buys_per_s"], 3),
                    "buys_per_cpu_s_ratio": per_cpu})
    return out
