"""`kill -9` of a node's embedded Valkey, and the wait for its supervisor to start it again
from the AOF: what the flash sale and the auction load test do mid-run."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass

import redis.asyncio as redis

__all__ = ["ValkeyKill", "kill_valkey", "server_pid"]

log = logging.getLogger(__name__)

_BACK_TIMEOUT_S = 60.0
_BACK_POLL_S = 0.01


@dataclass(frozen=True, slots=True)
class ValkeyKill:
    old_pid: int
    new_pid: int  # the same as old_pid: it did not come back within the timeout
    killed_at: float  # time.monotonic()
    back_after_s: float  # until the new server answered INFO


async def server_pid(client: redis.Redis) -> int:
    return int((await client.info("server"))["process_id"])


async def kill_valkey(client: redis.Redis, old_pid: int | None = None) -> ValkeyKill:
    """SIGKILL the Valkey `client` talks to (its pid read now unless given), then poll until
    a new server answers (the node's supervisor restarts the embedded one)."""
    old_pid = old_pid if old_pid is not None else await server_pid(client)
    os.kill(old_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    log.warning("killed Valkey pid %d", old_pid)
    new_pid = old_pid
    while time.monotonic() - killed_at < _BACK_TIMEOUT_S:
        try:
            new_pid = await server_pid(client)
            if new_pid != old_pid:
                break
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass
        await asyncio.sleep(_BACK_POLL_S)
    return ValkeyKill(old_pid, new_pid, killed_at, round(time.monotonic() - killed_at, 3))
