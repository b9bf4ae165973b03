"""`livecart cluster --nodes 2`, the whole thing as a developer runs it: a real subprocess
starting a 3+3 Valkey Cluster, two `livecart serve` children and Debian's HAProxy. Through
its front port the API works end to end (a stream goes live, a buy succeeds), both nodes
answer, and a Ctrl-C stops every process it started, its nodes' hub children included."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from conftest import TEST_SECRET, UNIT, Live
from live.accounts.auth import TokenAuthority
from live.node.valkey_server import free_port
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product


def _descendants(mark: str) -> list[int]:
    """Every process whose environment carries `mark`: the command's descendants inherit it
    (the nodes, their hubs, HAProxy; valkey-server overwrites its own with its title)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours
    return pids


def _state(pid: int) -> str:
    """The process's state letter, "" if it is gone ("Z": exited, its reaper not yet there)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_livecart_cluster_with_nodes_serves_through_haproxy_and_stops_all_on_ctrl_c(
        tmp_path: Path) -> None:
    mark = f"LIVECART_TEST_MARK={uuid.uuid4().hex}"
    port = free_port("127.0.0.1")
    env = {**os.environ, "LIVECART_JWT_SECRET": TEST_SECRET, "LIVECART_DRAIN_DELAY_S": "0.2",
           "LIVECART_LOG_LEVEL": "warning", mark.split("=")[0]: mark.split("=")[1]}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "live.node.cli", "cluster", "--nodes", "2", "--port", str(port),
        "--data-dir", str(tmp_path), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    lines: list[str] = []
    pids: list[int] = []
    children: list[int] = []
    try:
        async with asyncio.timeout(60 * UNIT):
            while not lines or not lines[-1].startswith("livecart at "):
                line = (await proc.stdout.readline()).decode()
                assert line, "livecart cluster exited: " + "".join(lines)
                lines.append(line)
        front = lines[-1].split()[2]
        assert front == f"http://127.0.0.1:{port}"
        pids = [int(line.split("pid ")[1].split()[0]) for line in lines if " pid " in line]
        assert len(pids) == 6 + 2 + 1, lines  # valkey-servers, nodes, HAProxy
        tokens = cast(Any, SimpleNamespace(tokens=TokenAuthority(TEST_SECRET)))
        async with httpx.AsyncClient(base_url=front, timeout=10 * UNIT) as http:
            assert (await http.get("/readyz")).status_code == 200
            live = Live(front, tokens, http, front.replace("http", "ws", 1))

            async def both_nodes() -> bool:
                seen = {(await http.get("/readyz")).headers["X-Livecart-Node"] for _ in range(4)}
                return seen == {"node1", "node2"}

            await eventually(both_nodes, "both nodes behind HAProxy")
            await make_brand(live)
            product = await make_product(live, stock=3)
            stream = await make_live_stream(live, [product["id"]])
            for _ in range(2):  # on both nodes (round robin), the stream is live
                got = await http.get(f"/api/v1/streams/{stream['id']}")
                assert got.json()["state"] == "live", got.text
            await give_wallet(live, "bob")
            r = await buy(live, "bob", product["id"], stream=stream["id"])
            assert r.status_code == 201, r.text
            children = _descendants(mark)  # the nodes' hub processes too
            assert set(pids[6:8]) < set(children), (pids, children)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(40 * UNIT):
            await proc.wait()
    assert proc.returncode == 0
    # Gone, or going: a node's multiprocessing helpers exit once its pipes close. valkey-server
    # rewrites its environ (its title): those by pid.
    def left() -> list[tuple[int, str]]:
        return [(pid, _state(pid)) for pid in {*pids, *children, *_descendants(mark)}
                if _state(pid) not in ("", "Z")]

    await eventually(lambda: not left(), "every process stopped", timeout_s=5)
