"""Two nodes on one Valkey behind Debian's HAProxy, running deploy/haproxy.cfg itself (its
ports and check interval replaced): HTTP and sockets through one port, WHIP/WHEP by stream
id, /readyz taking a node out, and a SIGTERM'd node moving its viewers to the other with
no gap. Node A runs in the test's process; node B is a real `livecart serve` subprocess,
so its SIGTERM is the one systemd sends (deploy/livecart.service)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import orjson
import pytest
import redis.asyncio as redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from conftest import TEST_SECRET, UNIT, Live, make_settings, start_hub, start_node, stop_node
from live.node.haproxy_config import TEMPLATE, render_haproxy_config
from live.node.valkey_server import EmbeddedValkey
from shop import Viewer, eventually, make_brand, make_live_stream, make_product

CONFIG = TEMPLATE
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"  # scripts/test.sh installs it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def haproxy_config(front: int, node1: tuple[int, int], node2: tuple[int, int]) -> str:
    """The shipped example, pointed at these ports, checking every 100 ms, with a
    connection cap this machine's open-file limit allows."""
    return render_haproxy_config(CONFIG.read_text(), front=f"127.0.0.1:{front}",
                                 nodes=[node1, node2], check_interval="100ms", maxconn=2000)


@dataclass
class Pair:
    """Node A (node1, in-process), node B (node2, a subprocess), HAProxy in front."""

    a: Live
    b_url: str
    b_proc: asyncio.subprocess.Process
    front: str  # http://127.0.0.1:port
    http: httpx.AsyncClient  # through HAProxy

    @property
    def front_ws(self) -> str:
        return self.front.replace("http", "ws", 1)

    async def node_of(self, path: str) -> str:
        r = await self.http.get(path)
        assert r.status_code == 200, r.text
        return r.headers["X-Livecart-Node"]


async def _start_b(valkey: EmbeddedValkey, data_dir: Path, port: int, ws_port: int,
                   front: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "LIVECART_JWT_SECRET": TEST_SECRET, "LIVECART_PUBLIC_URL": front,
           "LIVECART_PUBLIC_WS_URL": front.replace("http", "ws", 1),
           "LIVECART_DRAIN_DELAY_S": str(1.0 * UNIT), "LIVECART_LOG_LEVEL": "warning"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "live.node.cli", "serve", "--port", str(port), "--ws-port",
        str(ws_port), "--redis-url", valkey.url, "--data-dir", str(data_dir), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


@pytest.fixture
async def pair(valkey: EmbeddedValkey, rclient: redis.Redis, tmp_path: Path
               ) -> AsyncIterator[Pair]:
    front_port = _free_port()
    front = f"http://127.0.0.1:{front_port}"
    b_port, b_ws = _free_port(), _free_port()
    b_proc = await _start_b(valkey, tmp_path / "b", b_port, b_ws, front)
    settings = make_settings(valkey, tmp_path / "a", public_url=front,
                             public_ws_url=front.replace("http", "ws", 1))
    services, server, task, url = await start_node(settings)
    ws_url = await start_hub(services, url)
    a_port, a_ws = int(url.rsplit(":", 1)[1]), int(ws_url.rsplit(":", 1)[1])
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config(front_port, (a_port, a_ws), (b_port, b_ws)))
    with (tmp_path / "haproxy.log").open("wb") as log:  # its health checks and requests
        proxy = await asyncio.create_subprocess_exec(HAPROXY, "-db", "-f", str(cfg), stdout=log,
                                                     stderr=asyncio.subprocess.STDOUT)
    b_url = f"http://127.0.0.1:{b_port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as a_http, \
                httpx.AsyncClient(base_url=front, timeout=10 * UNIT) as http:
            async def b_ready() -> bool:
                assert b_proc.returncode is None, "node B exited"
                try:
                    return (await http.get(f"{b_url}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(b_ready, "node B ready", timeout_s=30)
            pair = Pair(Live(url, services, a_http, ws_url), b_url, b_proc, front, http)
            async def both_serve() -> bool:
                assert proxy.returncode is None, (tmp_path / "haproxy.log").read_text()
                return await _both_serve(pair)

            await eventually(both_serve, "HAProxy sending to both nodes")
            yield pair
    finally:
        for proc in (proxy, b_proc):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        await stop_node(services, server, task)


async def _both_serve(pair: Pair) -> bool:
    try:
        return {await pair.node_of("/readyz") for _ in range(4)} == {"node1", "node2"}
    except httpx.TransportError:
        return False


async def _live_stream(a: Live) -> str:
    await make_brand(a)
    product = await make_product(a, sku="SKU-1", stock=5)
    stream = await make_live_stream(a, [product["id"]])
    return str(stream["id"])


async def _pin_toggle(a: Live, stream: str, product: str, pinned: bool) -> None:
    """One sequenced event, made through node A's own port."""
    auth = a.auth("creator", "cleo")
    if pinned:
        r = await a.http.delete(f"/api/v1/streams/{stream}/pins/{product}", headers=auth)
    else:
        r = await a.http.post(f"/api/v1/streams/{stream}/pins", json={"product_id": product},
                              headers=auth)
    assert r.status_code == 200, r.text


async def test_http_sockets_and_video_through_one_port(pair: Pair) -> None:
    a = pair.a
    stream = await _live_stream(a)
    product = (await a.http.get(f"/api/v1/streams/{stream}")).json()["lineup"][0]
    # HTTP: balanced over both nodes.
    nodes = Counter([await pair.node_of(f"/api/v1/streams/{stream}") for _ in range(6)])
    assert set(nodes) == {"node1", "node2"}, nodes
    # The pages open their sockets on the same origin, through HAProxy.
    page = await pair.http.get(f"/s/{stream}")
    assert f'<meta name="livecart-ws" content="{pair.front_ws}">' in page.text
    assert pair.front_ws in page.headers["Content-Security-Policy"]
    # Sockets through HAProxy, one on each node; a pin made on node A reaches both.
    room = f"{pair.front_ws}/ws/streams/{stream}"
    async with connect(room) as one, connect(room) as two:
        assert {one.response.headers["X-Livecart-Node"],
                two.response.headers["X-Livecart-Node"]} == {"node1", "node2"}
        for ws in (one, two):
            assert orjson.loads(await ws.recv())["type"] == "snapshot"
        await _pin_toggle(a, stream, product, pinned=False)
        for ws in (one, two):
            async with asyncio.timeout(5 * UNIT):
                while (message := orjson.loads(await ws.recv()))["type"] != "pin":
                    pass
            assert message["product_id"] == product
    # WHIP and WHEP of a stream go to one node, chosen by the stream id (here refused, 401
    # for a WHIP without a token and 415/400 for a WHEP without an offer, by that node).
    owners = {}
    for i in range(12):
        sid = f"s_route{i}"
        whip = await pair.http.post(f"/api/v1/streams/{sid}/whip", content=b"x")
        whep = await pair.http.post(f"/api/v1/streams/{sid}/whep", content=b"x")
        stop = await pair.http.delete(f"/api/v1/streams/{sid}/whep/session1")
        hls = await pair.http.get(f"/hls/{sid}/index.m3u8")  # its recording's node too
        # A blocking reload's query reaches that node intact (this one is refused there).
        held = await pair.http.get(f"/hls/{sid}/index.m3u8?_HLS_msn=x&_HLS_part=0")
        assert held.status_code == 400 and "_HLS_msn" in held.text, held.text
        replay = await pair.http.get(f"/api/v1/streams/{sid}/replay")  # and its replay
        drop = await pair.http.delete(f"/api/v1/streams/{sid}/recording")
        assert {whip.status_code, whep.status_code, stop.status_code,
                hls.status_code, replay.status_code, drop.status_code} < {400, 401, 404, 415}
        owners[sid] = {r.headers["X-Livecart-Node"] for r in (whip, whep, stop, hls, held,
                                                                 replay, drop)}
        assert len(owners[sid]) == 1, owners
    assert set().union(*owners.values()) == {"node1", "node2"}, owners
    # /readyz failing takes a node out of every backend; passing again brings it back.
    a.services.draining = True
    await eventually(lambda: _only(pair, "node2"), "node1 out of HAProxy")
    async with connect(room) as ws:
        assert ws.response.headers["X-Livecart-Node"] == "node2"
    a.services.draining = False
    await eventually(lambda: _both_serve(pair), "node1 back in HAProxy")


async def _only(pair: Pair, node: str) -> bool:
    return {await pair.node_of("/healthz") for _ in range(6)} == {node}


async def test_a_sigterm_moves_the_nodes_viewers_to_the_other_with_no_gap(pair: Pair) -> None:
    a = pair.a
    stream = await _live_stream(a)
    product = (await a.http.get(f"/api/v1/streams/{stream}")).json()["lineup"][0]
    room = f"{pair.front_ws}/ws/streams/{stream}"
    last: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    viewers = [Viewer(room) for _ in range(4)]
    tasks = [asyncio.create_task(v.run(last)) for v in viewers]
    try:
        for v in viewers:
            await asyncio.wait_for(v.joined.wait(), 10 * UNIT)
        assert Counter(v.nodes[0] for v in viewers) == {"node1": 2, "node2": 2}
        start = {v.start for v in viewers}
        assert len(start) == 1, start  # every viewer joined at the same seq
        toggles = 0
        for _ in range(5):
            await _pin_toggle(a, stream, product, pinned=toggles % 2 == 1)
            toggles += 1
        pair.b_proc.send_signal(signal.SIGTERM)
        # Draining: B says 503, HAProxy takes it out, while the show goes on.
        async with httpx.AsyncClient(base_url=pair.b_url) as b_http:
            await eventually(lambda: _draining(b_http), "node B's /readyz 503")
        while pair.b_proc.returncode is None:
            await _pin_toggle(a, stream, product, pinned=toggles % 2 == 1)
            toggles += 1
            await asyncio.sleep(0.05 * UNIT)  # a show's pace; the node's exit ends the loop
        assert pair.b_proc.returncode == 0  # a clean exit: the drain, then the services closed
        for _ in range(3):
            await _pin_toggle(a, stream, product, pinned=toggles % 2 == 1)
            toggles += 1
        top = start.pop() + toggles  # one event per toggle
        last.set_result(top)
        await eventually(lambda: all(v.seqs and v.seqs[-1] >= top for v in viewers),
                         "every viewer at the last event")
    finally:
        for task in tasks:
            task.cancel()
    for v in viewers:
        # Every event, once, in order, from the join to the end: none lost in the move.
        assert v.seqs == list(range(top - toggles + 1, top + 1)), v.seqs
        if v.nodes[0] == "node2":
            assert v.closes == [4011], v.closes  # told to go, once
            assert v.nodes == ["node2", "node1"], v.nodes  # back through HAProxy, on A
            assert v.snapshots == 1  # resumed from its seq, not a fresh snapshot
        else:
            assert v.nodes == ["node1"] and not v.closes


async def _draining(http: httpx.AsyncClient) -> bool:
    r = await http.get("/readyz")
    return r.status_code == 503 and r.json()["type"].endswith("/draining")


BEHIND_A_PROXY = pytest.mark.parametrize("node_settings", [{
    "forwarded_allow_ips": ("127.0.0.1",), "ws_max_per_ip": 1, "signin_per_ip": 1}])


@BEHIND_A_PROXY
async def test_behind_a_trusted_proxy_the_limits_count_each_client(live: Live) -> None:
    """Every viewer comes from HAProxy's address: with it trusted, the per-address caps
    count the X-Forwarded-For client (the rightmost hop that is not the proxy)."""
    stream = await _live_stream(live)
    room = f"{live.ws_url}/ws/streams/{stream}"

    def via(*hops: str) -> dict[str, str]:
        return {"X-Forwarded-For": ", ".join(hops)}

    async with connect(room, additional_headers=via("203.0.113.1")), \
            connect(room, additional_headers=via("203.0.113.2")), \
            connect(room, additional_headers=via("198.51.100.9, 203.0.113.3, 127.0.0.1")):
        for forged in (via("203.0.113.9, 203.0.113.1"), via("203.0.113.2")):
            with pytest.raises(InvalidHandshake, match="429"):  # ws_max_per_ip=1
                async with connect(room, additional_headers=forged):
                    pass
    # HTTP too: the sign-in mails per address.
    for ip, status in (("203.0.113.1", 202), ("203.0.113.2", 202), ("203.0.113.1", 429)):
        r = await live.http.post("/auth/email/start", json={"email": f"x{status}{ip}@example.com"},
                                 headers={**via(ip), "Origin": live.url})
        assert r.status_code == status, r.text


@pytest.mark.parametrize("node_settings", [{"ws_max_per_ip": 1}])
async def test_a_forwarded_for_from_anyone_else_is_not_believed(live: Live) -> None:
    stream = await _live_stream(live)
    room = f"{live.ws_url}/ws/streams/{stream}"
    async with connect(room, additional_headers={"X-Forwarded-For": "203.0.113.1"}):
        with pytest.raises(InvalidHandshake, match="429"):
            async with connect(room, additional_headers={"X-Forwarded-For": "203.0.113.2"}):
                pass
