"""`LocalCluster` ports: outside the kernel's ephemeral range, and a node of a new cluster
whose port or bus port was taken between the pick and the bind starts on another pair
(issue 15: one `loadtest cluster-sale` start in three failed on it)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import redis.asyncio as redis

from live.node import valkey_cluster
from live.node.valkey_cluster import LocalCluster, _ephemeral_range, _free_pair


def test_picked_pairs_are_free_distinct_and_outside_the_ephemeral_range() -> None:
    low, high = _ephemeral_range()
    taken: set[int] = set()
    for _ in range(20):
        port, bus = _free_pair("127.0.0.1", taken)
        assert port != bus and not {port, bus} & taken
        assert not low <= port <= high and not low <= bus <= high, (port, bus, low, high)
        taken |= {port, bus}


async def test_a_node_whose_bus_port_was_taken_since_the_pick_starts_on_another_pair(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as holder:  # another process took the bus port after the pick
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy_bus = holder.getsockname()[1]
        real = _free_pair
        first = real("127.0.0.1", {busy_bus})[0]
        picks = iter([(first, busy_bus)])

        def pick(host: str, taken: set[int]) -> tuple[int, int]:
            return next(picks, None) or real(host, taken)

        monkeypatch.setattr(valkey_cluster, "_free_pair", pick)
        async with LocalCluster(tmp_path, primaries=2, replicas=0) as cluster:
            ports = json.loads((tmp_path / "cluster.json").read_text())["ports"]
            assert busy_bus not in {bus for _, bus in ports}
            assert [n.port for n in cluster.nodes] == [p for p, _ in ports]
            probe = redis.Redis.from_url(cluster.url, decode_responses=True)
            try:
                info = await probe.execute_command("CLUSTER", "INFO")
            finally:
                await probe.aclose()
            assert "cluster_state:ok" in info and "cluster_known_nodes:2" in info
    assert f"bus port {busy_bus} taken since picked" in caplog.text
