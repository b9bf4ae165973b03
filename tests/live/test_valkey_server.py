"""EmbeddedValkey against the real valkey-server binary: start, crash, restart, stop."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from live.node.valkey_server import DataDirInUse, EmbeddedValkey, ValkeyStartError

UNIT = float(os.environ.get("LIVECART_TEST_TIME_UNIT", "1.0"))  # CI can scale every timeout


def _client(url: str) -> aioredis.Redis:
    """A client that retries across a server restart (from_url alone does not retry at all)."""
    return aioredis.from_url(url, retry=Retry(NoBackoff(), 3), retry_on_error=[ConnectionError])


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_set_get(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path) as valkey:
        assert valkey.url == f"redis://127.0.0.1:{valkey.port}"
        client = aioredis.from_url(valkey.url)
        try:
            await client.set("k", "v")
            assert await client.get("k") == b"v"
            assert await client.config_get("appendonly") == {"appendonly": "yes"}
            assert await client.config_get("appendfsync") == {"appendfsync": "always"}
        finally:
            await client.aclose()
    assert (tmp_path / "valkey.conf").exists()


async def test_data_survives_kill_and_supervised_restart(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path) as valkey:
        port, old_pid = valkey.port, valkey.pid
        assert old_pid is not None
        client = _client(valkey.url)
        try:
            await client.set("order:1", "paid")
            valkey.kill_hard()
            await valkey.wait_ready(timeout=5 * UNIT)
            assert valkey.restarts == 1
            assert valkey.port == port
            assert valkey.pid not in (None, old_pid)
            assert not _alive(old_pid)
            # the old connection is dead; redis-py reconnects to the same URL
            assert await client.get("order:1") == b"paid"
        finally:
            await client.aclose()


async def test_stop_is_idempotent_and_leaves_no_process(tmp_path: Path) -> None:
    valkey = EmbeddedValkey(tmp_path)
    await valkey.stop()  # never started: no-op
    await valkey.start()
    pid = valkey.pid
    assert pid is not None and _alive(pid)
    await valkey.stop()
    await valkey.stop()
    assert valkey.pid is None
    assert not _alive(pid)
    assert valkey.restarts == 0  # a requested stop is not a crash
    with pytest.raises(ValkeyStartError):
        await valkey.wait_ready(timeout=UNIT)


async def test_restart_after_stop_keeps_port_and_data(tmp_path: Path) -> None:
    valkey = EmbeddedValkey(tmp_path)
    await valkey.start()
    port = valkey.port
    client = _client(valkey.url)
    try:
        await client.set("k", "1")
        await valkey.stop()
        await valkey.start()
        assert valkey.port == port
        assert await client.get("k") == b"1"
    finally:
        await client.aclose()
        await valkey.stop()


async def test_invalid_config_raises_with_log_tail(tmp_path: Path) -> None:
    valkey = EmbeddedValkey(tmp_path, extra_config={"no-such-directive": "1"})
    with pytest.raises(ValkeyStartError, match="no-such-directive"):
        await valkey.start()
    assert valkey.pid is None
    await valkey.stop()


async def test_busy_port_raises(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "a") as first:
        second = EmbeddedValkey(tmp_path / "b", port=first.port)
        with pytest.raises(ValkeyStartError, match="Address already in use"):
            await second.start()
        await second.stop()


async def test_one_server_per_data_dir(tmp_path: Path) -> None:
    """Two servers on one AOF would each sell the same stock: the second refuses, before
    it writes anything there, and may start once the first is gone."""
    async with EmbeddedValkey(tmp_path) as first:
        conf = (tmp_path / "valkey.conf").read_bytes()
        second = EmbeddedValkey(tmp_path)
        with pytest.raises(DataDirInUse, match=f"pid {os.getpid()}") as refused:
            await second.start()
        assert refused.value.holder_pid == os.getpid()
        assert (tmp_path / "valkey.conf").read_bytes() == conf
        assert second.pid is None and first.running
    await second.start()
    await second.stop()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="appendfsync"):
        EmbeddedValkey(tmp_path, appendfsync="sometimes")
    with pytest.raises(ValueError, match="invalid config line"):
        EmbeddedValkey(tmp_path, extra_config={"dir": "/x\nport 1"})


async def test_supervisor_gives_up_after_too_many_restarts(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path, max_restarts_per_minute=1) as valkey:
        valkey.kill_hard()
        await valkey.wait_ready(timeout=5 * UNIT)
        valkey.kill_hard()
        with pytest.raises(ValkeyStartError, match="gave up"):
            await valkey.wait_ready(timeout=5 * UNIT)
        assert valkey.pid is None


_ORPHAN_SCRIPT = """
import asyncio, sys, pathlib
from live.node.valkey_server import EmbeddedValkey

async def main():
    valkey = EmbeddedValkey(pathlib.Path(sys.argv[1]))
    await valkey.start()
    print(valkey.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_child_dies_with_killed_parent(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert parent.stdout is not None
        line = await asyncio.wait_for(parent.stdout.readline(), 10 * UNIT)
        child = int(line)
        assert _alive(child)
    finally:
        parent.kill()
        await parent.wait()
    async with asyncio.timeout(5 * UNIT):
        while _alive(child):
            await asyncio.sleep(0.01)


async def test_data_dir_stays_locked_until_the_orphaned_server_exits(tmp_path: Path) -> None:
    """A killed node's valkey-server is still writing the AOF until it exits: no new
    server may start on that dir in between."""
    root = Path(__file__).resolve().parents[2]
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(root)})
    assert parent.stdout is not None
    try:
        child = int(await asyncio.wait_for(parent.stdout.readline(), 10 * UNIT))
        os.kill(child, signal.SIGSTOP)  # hold the orphan between its parent's death and its own
    finally:
        parent.kill()
        await parent.wait()
    try:
        with pytest.raises(DataDirInUse):
            await EmbeddedValkey(tmp_path).start()
    finally:
        os.kill(child, signal.SIGCONT)  # it now acts on the SIGTERM its parent's death sent
    async with asyncio.timeout(5 * UNIT):
        while _alive(child):
            await asyncio.sleep(0.01)
    # The server's own children (an AOF rewrite forked at start) inherit the lock too and
    # write in the dir until they exit: the lock is free once the last of them has gone.
    async with asyncio.timeout(10 * UNIT):
        while not _lock_is_free(tmp_path / "valkey.lock"):
            await asyncio.sleep(0.01)
    async with EmbeddedValkey(tmp_path) as valkey:
        assert valkey.running


def _lock_is_free(path: Path) -> bool:
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True
