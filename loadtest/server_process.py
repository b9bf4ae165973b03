"""Start and stop a server under test as a child process: `livecart serve` or the baseline.

The child gets a free loopback port, its own temporary data dir (removed on stop unless
`keep_data`) and, for livecart, a known token secret, so the load generator can mint tokens
locally. Its output goes to a log file in that dir (a pipe nobody reads would block it).
`stop()` is idempotent: SIGTERM, then SIGKILL after a timeout; an atexit hook is the fallback.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Self

from loadtest.http_client import ConnectionFailed, HttpConnection, RequestTimeout, encode_request

__all__ = ["ServerProcess", "ServerStartError", "free_port", "valkey_url_from_data_dir"]

log = logging.getLogger(__name__)

_READY_POLL_S = 0.05
_PORT_ATTEMPTS = 3


class ServerStartError(RuntimeError):
    """The child exited or did not become ready; the message has the log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def valkey_url_from_data_dir(data_dir: Path) -> str | None:
    """The embedded Valkey's URL, read from the config livecart wrote under `data_dir`."""
    config = Path(data_dir) / "valkey" / "valkey.conf"
    try:
        text = config.read_text()
    except OSError:
        return None
    match = re.search(r"^port (\d+)$", text, re.MULTILINE)
    return f"redis://127.0.0.1:{match.group(1)}" if match else None


class ServerProcess:
    """One server child on 127.0.0.1; `async with` starts it and waits for /readyz."""

    def __init__(self, argv: list[str], *, name: str, env: dict[str, str] | None = None,
                 data_dir: Path | None = None, keep_data: bool = False,
                 ready_timeout_s: float = 60.0, stop_timeout_s: float = 15.0) -> None:
        self._argv = argv
        self.name = name
        self._env = env or {}
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self._keep_data = keep_data
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.host = "127.0.0.1"

    @classmethod
    def livecart(cls, *, durability: str = "appendfsync", secret: str | None = None,
                 log_level: str | None = None, data_dir: Path | None = None,
                 keep_data: bool = False, settings: dict[str, str] | None = None,
                 access_log: bool = False) -> Self:
        """`livecart serve` with an embedded Valkey in a fresh data dir; `settings` are more
        LIVECART_* variables (e.g. {"LIVECART_VIDEO_ICE_HOSTS": "127.0.0.1"}); `access_log`:
        a line per request in its log (what the HLS load test counts at the origin)."""
        secret = secret or secrets.token_hex(32)
        # The hub's WebSocket port defaults to HTTP port + 1, which nobody checked was free.
        env = {"LIVECART_JWT_SECRET": secret, "LIVECART_WS_PORT": "0", **(settings or {})}
        if log_level:
            env["LIVECART_LOG_LEVEL"] = log_level
        argv = [sys.executable, "-m", "live.node.cli", "serve", "--durability", durability]
        server = cls(argv + (["--access-log"] if access_log else []), name="livecart", env=env,
                     data_dir=data_dir, keep_data=keep_data)
        server.secret = secret
        return server

    @classmethod
    def baseline(cls, *, log_level: str = "info", loop: str = "uvloop") -> Self:
        """The bare starlette app (loadtest.baseline) on the same uvicorn settings."""
        return cls([sys.executable, "-m", "loadtest.baseline", "--log-level", log_level,
                    "--loop", loop], name="baseline")

    secret: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def node_data_dir(self) -> Path:
        """livecart's `--data-dir` (the embedded Valkey lives in its `valkey/`)."""
        return self.data_dir / "data"

    @property
    def valkey_url(self) -> str | None:
        return valkey_url_from_data_dir(self.node_data_dir)

    async def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError(f"{self.name} already started")
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = free_port(self.host)
            self._spawn()
            try:
                await self._wait_ready()
                atexit.register(self._atexit_kill)
                return
            except ServerStartError as exc:
                await self._reap()
                if "address already in use" in str(exc).lower() and attempt < _PORT_ATTEMPTS:
                    continue
                raise

    async def stop(self) -> None:
        await self._reap()
        atexit.unregister(self._atexit_kill)
        if self._own_dir and not self._keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.strip().splitlines()[-lines:])

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("LIVECART_REDIS_URL", "LIVECART_DATA_DIR", "LIVECART_PORT")}
        env.update(self._env)
        argv = [*self._argv, "--port", str(self.port)]
        if self.name == "livecart":
            argv += ["--data-dir", str(self.node_data_dir)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                          stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True)

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ready_timeout_s
        probe = encode_request("GET", "/readyz", f"{self.host}:{self.port}")
        while True:
            if self._proc.poll() is not None:
                raise ServerStartError(f"{self.name} exited with {self._proc.returncode} during "
                                       f"startup; log tail:\n{self.log_tail()}")
            conn = HttpConnection(self.host, self.port, connect_timeout_s=1.0)
            try:
                reply = await conn.request(probe, 2.0)
                if reply.status == 200:
                    return
            except (ConnectionFailed, RequestTimeout):
                pass
            finally:
                conn.close()
            if loop.time() > deadline:
                raise ServerStartError(f"{self.name} not ready on {self.url} within "
                                       f"{self._ready_timeout_s} s; log tail:\n{self.log_tail()}")
            await asyncio.sleep(_READY_POLL_S)

    async def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s pid %d ignored SIGTERM; killing its process group",
                            self.name, proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
        else:
            proc.wait()

    def _atexit_kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGTERM)
