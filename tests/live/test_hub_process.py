"""The hub in its own process (live/node/hub_process.py): a real child process with its
own loop, a real uvicorn for the HTTP API, the session Valkey, real sockets; and
`livecart serve` itself for the stops."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as redis
import uvicorn
from websockets.asyncio.client import connect

from conftest import UNIT, Live, make_settings
from live.node.app import create_app
from live.node.http_server import server_config
from live.node.hub_process import HubProcess, open_hub
from live.node.services import Services
from live.node.valkey_server import EmbeddedValkey
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product
from test_cli import _free_port, _stop_serve


@dataclass
class Node:
    live: Live
    hub: HubProcess


async def _start(valkey: EmbeddedValkey, data_dir: Path, **settings: Any) -> AsyncIterator[Node]:
    """A node as `livecart serve` assembles it (`open_hub`), HTTP on port 0."""
    s = make_settings(valkey, data_dir, ws_port=0, hub_mode="process", **settings)
    services = await Services.start(s)
    port, hub = await open_hub(services)
    assert hub is not None and port == hub.port
    app = create_app(s, services=services, hub_process=hub)
    server = uvicorn.Server(server_config(app, s, host="127.0.0.1", port=0,
                                          log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done(), "uvicorn started")
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
            yield Node(Live(url, services, http, f"ws://127.0.0.1:{port}"), hub)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10 * UNIT)
        await hub.stop()
        await services.close()


@pytest.fixture
async def node(valkey: EmbeddedValkey, rclient: redis.Redis,
               tmp_path: Path) -> AsyncIterator[Node]:
    async for n in _start(valkey, tmp_path, hub_restart_s=0.05):
        yield n


@pytest.fixture
async def node_without_restart(valkey: EmbeddedValkey, rclient: redis.Redis,
                               tmp_path: Path) -> AsyncIterator[Node]:
    async for n in _start(valkey, tmp_path, hub_restart_s=3600.0):
        yield n


async def _live_shop(live: Live) -> tuple[str, str]:
    await make_brand(live)
    product = await make_product(live, stock=5)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    return stream["id"], product["id"]


async def _stock_seen(live: Live, stream: str, product: str, level: int) -> None:
    """Join the room and wait for the product's stock to read `level`."""
    async with connect(f"{live.ws_url}/ws/streams/{stream}") as ws:
        async with asyncio.timeout(10 * UNIT):
            while True:
                message = orjson.loads(await ws.recv())
                if message["type"] == "snapshot":
                    stock = message["stock"][product]
                elif message["type"] == "state" and product in message.get("stock", {}):
                    stock = message["stock"][product]
                else:
                    continue
                if stock == {"default": level}:
                    return


def _gone(pid: int) -> bool:
    """The process is gone (or a zombie nobody reaped yet: it runs nothing any more)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_a_hub_in_its_own_process_serves_the_room_and_hears_the_http_buys(
        node: Node) -> None:
    live, hub = node.live, node.hub
    assert hub.up and hub.pid is not None and hub.pid != os.getpid()
    assert (await live.http.get("/readyz")).json() == {"status": "ready"}
    stream, product = await _live_shop(live)
    async with connect(f"{live.ws_url}/ws/streams/{stream}") as ws:
        snapshot = orjson.loads(await asyncio.wait_for(ws.recv(), 10 * UNIT))
        assert snapshot["type"] == "snapshot" and snapshot["stock"][product] == {"default": 5}
        r = await buy(live, "bob", product, stream=stream, quantity=2)
        assert r.status_code == 201, r.text
        async with asyncio.timeout(10 * UNIT):  # the buy, made in this process, reaches it
            while True:
                message = orjson.loads(await ws.recv())
                if message["type"] == "state" and message.get("stock", {}).get(product) == {
                        "default": 3}:
                    break
    pid = hub.pid
    await hub.stop()
    assert _gone(pid) and not hub.up


async def test_a_dead_hub_process_makes_the_node_not_ready(node_without_restart: Node) -> None:
    live, hub = node_without_restart.live, node_without_restart.hub
    assert hub.pid is not None
    os.kill(hub.pid, signal.SIGKILL)
    r = await eventually(lambda: _status(live, 503), "readyz answers 503")
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/not-ready") and "hub process" in r.json()["detail"]
    with pytest.raises(OSError):  # nobody on the hub's port
        async with connect(f"{live.ws_url}/ws/streams/s_x", open_timeout=5 * UNIT):
            pass
    # The HTTP API carries on without it: a buy still sells.
    stream, product = await _live_shop(live)
    assert (await buy(live, "bob", product, stream=stream)).status_code == 201


async def test_a_dead_hub_process_is_started_again_on_the_same_port(node: Node) -> None:
    live, hub = node.live, node.hub
    stream, product = await _live_shop(live)
    old = hub.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    await eventually(lambda: hub.restarts == 1 and hub.up, "the hub started again")
    assert hub.pid != old and _gone(old)
    assert (await live.http.get("/readyz")).status_code == 200
    assert (await buy(live, "bob", product, stream=stream)).status_code == 201
    await _stock_seen(live, stream, product, 4)  # same URL, the new process
    metrics = (await live.http.get("/metrics")).text
    assert re.search(r"^livecart_hub_restarts_total 1\.0$", metrics, re.M), metrics


async def _status(live: Live, status: int) -> httpx.Response | None:
    r = await live.http.get("/readyz")
    return r if r.status_code == status else None


def _hub_pid(out: str) -> int:
    match = re.search(r"\(its own process, pid (\d+)\)", out)
    assert match, out
    return int(match.group(1))


async def _serve_with_hub(tmp_path: Path) -> tuple[asyncio.subprocess.Process, int]:
    """`livecart serve` (the hub in its own process, the default) and its hub's pid."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "live.node.cli", "serve", "--port", str(_free_port()),
        "--ws-port", str(_free_port()), "--data-dir", str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "400"})
    assert proc.stdout is not None
    out = ""
    try:
        async with asyncio.timeout(30 * UNIT):
            while "Uvicorn running" not in out:
                line = (await proc.stdout.readline()).decode()
                assert line, "server exited: " + out
                out += line
    except BaseException:
        await _stop_serve(proc)
        raise
    return proc, _hub_pid(out)


async def test_serve_stops_its_hub_process_when_it_stops(tmp_path: Path) -> None:
    proc, hub = await _serve_with_hub(tmp_path)
    assert not _gone(hub)
    await _stop_serve(proc)  # SIGINT, as a terminal's Ctrl-C
    assert proc.returncode == 0
    await eventually(lambda: _gone(hub), "the hub process gone")


async def test_a_hub_process_whose_node_was_killed_stops_on_its_own(tmp_path: Path) -> None:
    proc, hub = await _serve_with_hub(tmp_path)
    proc.send_signal(signal.SIGKILL)  # no chance to stop it: its pipe's end closes
    await proc.wait()
    await eventually(lambda: _gone(hub), "the hub process gone")

