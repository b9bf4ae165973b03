"""N `livecart serve` processes and Debian's HAProxy in front of them, on one machine.

What `livecart cluster --nodes N` adds on top of its Valkey Cluster (for development and
tests, not production: deploy/ has the systemd unit and the HAProxy config for that). Each
node is a real `livecart serve` subprocess with its own data dir, free ports and the same
JWT secret, told that browsers reach it through HAProxy's front; HAProxy runs
deploy/haproxy.cfg rendered for those ports. Children get their own session (a Ctrl-C in
the terminal reaches only us, and we stop them in order) and die with us (PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from checkout.errors import LivecartError
from live.accounts.auth import secret_from_env_or_file
from live.node.haproxy_config import TEMPLATE, render_haproxy_config
from live.node.valkey_server import _pdeathsig_preexec, free_port

__all__ = ["FrontStartError", "LocalFront", "LocalNode", "find_haproxy"]

_HOST = "127.0.0.1"
_READY_TIMEOUT_S = 60.0  # a node imports aiortc and friends: seconds on a busy machine
_STOP_TIMEOUT_S = 30.0  # past the nodes' drain (LIVECART_DRAIN_DELAY_S, 3 s by default)
_POLL_S = 0.1


class FrontStartError(LivecartError, RuntimeError):
    """A node or HAProxy did not start, or HAProxy is not installed."""


def find_haproxy() -> str:
    """The `haproxy` binary: on PATH, or in Debian's /usr/sbin (not on a user's PATH)."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FrontStartError("haproxy not found (Debian: apt-get install haproxy); "
                              "--nodes 0 runs the Valkey Cluster alone")
    return found


@dataclass
class LocalNode:
    """One `livecart serve` child."""

    name: str  # node1.. as HAProxy names it (its X-Livecart-Node header)
    port: int
    ws_port: int
    log: Path
    proc: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


class LocalFront:
    """`await start()` / `await stop()` (idempotent; stop also undoes a failed start)."""

    def __init__(self, data_dir: Path, redis_url: str, *, nodes: int, port: int,
                 haproxy: str) -> None:
        self._data_dir = data_dir
        self._redis_url = redis_url
        self._count = nodes
        self._port = port
        self._haproxy = haproxy
        self._proxy: asyncio.subprocess.Process | None = None
        self.nodes: list[LocalNode] = []

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self._port}"

    @property
    def haproxy_log(self) -> Path:
        return self._data_dir / "haproxy.log"

    @property
    def haproxy_pid(self) -> int | None:
        return None if self._proxy is None else self._proxy.pid

    async def start(self) -> None:
        """Start the nodes, wait for each /readyz, then HAProxy, and wait for the front's."""
        try:
            secret = secret_from_env_or_file(self._data_dir, os.environ.get("LIVECART_JWT_SECRET"))
            env = {**os.environ, "LIVECART_JWT_SECRET": secret.decode(),
                   "LIVECART_PUBLIC_URL": self.url,
                   "LIVECART_PUBLIC_WS_URL": self.url.replace("http", "ws", 1)}
            env.setdefault("LIVECART_FORWARDED_ALLOW_IPS", _HOST)  # HAProxy's address
            for i in range(1, self._count + 1):
                self.nodes.append(await self._start_node(f"node{i}", env))
            async with httpx.AsyncClient(timeout=5.0) as http:
                for node in self.nodes:
                    await self._until_ready(http, node.url, node.proc, f"{node.name} ({node.log})")
                await self._start_haproxy()
                assert self._proxy is not None
                await self._until_ready(http, self.url, self._proxy, f"HAProxy ({self.haproxy_log})")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """HAProxy, then every node at once (SIGTERM: each drains), then wait for them."""
        proxy, self._proxy = self._proxy, None
        nodes, self.nodes = self.nodes, []
        if proxy is not None:
            await _terminate(proxy)
        await asyncio.gather(*[_terminate(node.proc) for node in nodes])

    async def _start_node(self, name: str, env: dict[str, str]) -> LocalNode:
        data_dir = self._data_dir / f"livecart-{name.removeprefix('node')}"
        data_dir.mkdir(parents=True, exist_ok=True)
        port, ws_port = free_port(_HOST), free_port(_HOST)
        log = data_dir / "livecart.log"
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "live.node.cli", "serve", "--host", _HOST,
                "--port", str(port), "--ws-port", str(ws_port), "--redis-url", self._redis_url,
                "--data-dir", str(data_dir), env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_pdeathsig_preexec())
        return LocalNode(name, port, ws_port, log, proc)

    async def _start_haproxy(self) -> None:
        ports = [(node.port, node.ws_port) for node in self.nodes]
        if not TEMPLATE.exists():
            raise FrontStartError(f"{TEMPLATE} is missing: run from a livecart source checkout")
        config = self._data_dir / "haproxy.cfg"
        config.write_text(render_haproxy_config(
            TEMPLATE.read_text(), front=f"{_HOST}:{self._port}", nodes=ports,
            maxconn=_maxconn()))
        with self.haproxy_log.open("ab") as out:
            self._proxy = await asyncio.create_subprocess_exec(
                self._haproxy, "-db", "-f", str(config), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_pdeathsig_preexec())

    @staticmethod
    async def _until_ready(http: httpx.AsyncClient, url: str,
                           proc: asyncio.subprocess.Process, what: str) -> None:
        """Poll `url`/readyz until 200; FrontStartError if `proc` exits or time runs out."""
        async def ready() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await http.get(f"{url}/readyz")).status_code == 200
            return False

        try:
            async with asyncio.timeout(_READY_TIMEOUT_S):
                while not await ready():
                    if proc.returncode is not None:
                        raise FrontStartError(f"{what} exited with {proc.returncode}")
                    await asyncio.sleep(_POLL_S)
        except TimeoutError:
            raise FrontStartError(f"{what} not ready after {_READY_TIMEOUT_S:.0f} s") from None


def _maxconn() -> int:
    """HAProxy's connection cap: what this machine's open-file limit allows (each
    connection is two sockets), at most the example's 200000."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 200_000
    return max(100, min(200_000, (hard - 100) // 2))


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM and wait; SIGKILL past the stop timeout."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(_STOP_TIMEOUT_S):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
