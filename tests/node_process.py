"""`livecart serve` in a process of its own (test helper): for a real `kill -9` of a node."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from conftest import TEST_SECRET, UNIT

__all__ = ["free_port", "serve_process"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve_process(redis_url: str, data_dir: Path, port: int,
                        **env: str) -> asyncio.subprocess.Process:
    """A node on `redis_url` serving HTTP on `port`, once uvicorn says it runs; `env` is
    added to the environment (LIVECART_* settings)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "live.node.cli", "serve", "--port", str(port), "--ws-port",
        str(free_port()), "--data-dir", str(data_dir), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "LIVECART_REDIS_URL": redis_url, "LIVECART_JWT_SECRET": TEST_SECRET,
             **env})
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30 * UNIT):
        while not any("Uvicorn running" in line for line in lines):
            line = (await proc.stdout.readline()).decode()
            assert line, "server exited: " + "".join(lines)
            lines.append(line)
    return proc
