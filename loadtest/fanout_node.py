"""The livecart node under the fan-out test: start it, find its hub, be its host, read the
truth back (API and Valkey), profile it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as redis

from checkout.store.keys import stream_events_key, stream_seq_key
from checkout.store.replies import entries
from loadtest.http_client import (ConnectionFailed, HttpConnection, RequestTimeout,
                                  encode_request, run_requests)
from loadtest.server_process import ServerProcess

__all__ = ["Host", "start_livecart", "hub_port", "hub_pid", "truth", "read_seq", "logged_events",
           "log_errors", "py_spy"]

_HOST_TIMEOUT_S = 30.0
_HOST_ATTEMPTS = 5
_SPY_FORMATS = {".json": "speedscope", ".txt": "raw"}  # else an SVG flame graph


class Host:
    """The stream's creator, toggling one product's pin over REST, one request at a time."""

    def __init__(self, host: str, port: int, token: str, stream: str, product: str) -> None:
        self._conn = HttpConnection(host, port)
        authority = f"{host}:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        self._pin = encode_request(
            "POST", f"/api/v1/streams/{stream}/pins", authority,
            {**auth, "Content-Type": "application/json"}, orjson.dumps({"product_id": product}))
        self._unpin = encode_request("DELETE", f"/api/v1/streams/{stream}/pins/{product}",
                                     authority, auth)
        self.pinned = False
        self.errors: list[str] = []

    async def toggle(self) -> str:
        """Pin if unpinned, else unpin; returns "pin" or "unpin" (the event it caused).

        A failed attempt is retried, as a host's console would: a pin of a pinned product
        (an unpin of an unpinned one) changes nothing and logs no event, so however often
        it is sent, one toggle makes exactly one event."""
        op = "unpin" if self.pinned else "pin"
        raw = self._unpin if self.pinned else self._pin
        for attempt in range(1, _HOST_ATTEMPTS + 1):
            try:
                reply = await self._conn.request(raw, _HOST_TIMEOUT_S)
            except (ConnectionFailed, RequestTimeout) as exc:
                problem = repr(exc)
            else:
                if reply.status == 200:
                    self.pinned = not self.pinned
                    return op
                problem = f"{reply.status} {reply.body[:200]!r}"
            self.errors.append(f"{op} attempt {attempt}: {problem}")
            await asyncio.sleep(0.05 * attempt)
        raise RuntimeError(f"{op} failed {_HOST_ATTEMPTS} times: {self.errors[-1]}")

    def close(self) -> None:
        self._conn.close()


def start_livecart(viewers: int, log_level: str | None) -> ServerProcess:
    """`livecart serve` (as `ServerProcess.livecart`), with the hub's caps raised for one IP
    (every viewer comes from 127.0.0.1, as fast as it can). Not started: `async with` it."""
    secret = secrets.token_hex(32)
    env = {"LIVECART_JWT_SECRET": secret, "LIVECART_WS_PORT": "0",
           "LIVECART_WS_MAX_PER_IP": str(max(20_000, 2 * viewers)),
           "LIVECART_WS_NEW_PER_IP_S": "1000000", "LIVECART_WS_NEW_BURST_PER_IP": "1000000"}
    if log_level:
        env["LIVECART_LOG_LEVEL"] = log_level
    server = ServerProcess([sys.executable, "-m", "live.node.cli", "serve", "--durability",
                            "appendfsync"], name="livecart", env=env)
    server.secret = secret
    return server


def hub_pid(server: ServerProcess) -> int:
    """The process that fans out: the hub's own (`--hub process`, the banner names it), or
    the node's (`--hub inline`)."""
    assert server.pid is not None
    match = re.search(r"\(its own process, pid (\d+)\)", server.log_tail(400))
    return int(match.group(1)) if match else server.pid


def hub_port(server: ServerProcess) -> int:
    """The hub's port (LIVECART_WS_PORT=0 lets the OS pick), from the banner in its log."""
    match = re.search(r"hub\s+ws://[^:/\s]+:(\d+)/", server.log_tail(400))
    if not match:
        raise RuntimeError(f"no hub port in the server log:\n{server.log_tail(40)}")
    return int(match.group(1))


async def _get_json(host: str, port: int, path: str, token: str) -> Any:
    raw = encode_request("GET", path, f"{host}:{port}", {"Authorization": f"Bearer {token}"})
    reply = (await run_requests(host, port, [raw], concurrency=1))[0]
    if reply.status != 200:
        raise RuntimeError(f"GET {path}: {reply.status} {reply.body[:300]!r}")
    return orjson.loads(reply.body)


async def truth(shop: Any, token: str) -> tuple[dict[str, Any], list[str]]:
    """What every viewer should show: stock per variant of the product, and the pins."""
    stock = await _get_json(shop.host, shop.port, f"/api/v1/products/{shop.product}/stock", token)
    stream = await _get_json(shop.host, shop.port, f"/api/v1/streams/{shop.stream}", token)
    levels = {item["variant"]: int(item["available"]) for item in stock["items"]}
    return {shop.product: levels}, list(stream["pinned"])


async def read_seq(client: redis.Redis, stream: str) -> int:
    return int(await client.get(stream_seq_key(stream)) or 0)


async def logged_events(client: redis.Redis, stream: str, lo: int,
                        hi: int) -> list[dict[str, Any]]:
    """Logged events lo < seq <= hi."""
    if hi <= lo:
        return []
    reply = await client.xrange(stream_events_key(stream), min=f"{lo + 1}-0", max=f"{hi}-0")
    return [orjson.loads(fields[b"e"]) for _, fields in entries(reply)]


@contextlib.asynccontextmanager
async def py_spy(path: Path | None, pid: int) -> AsyncIterator[None]:
    """`py-spy record` on the server while the block runs (its numbers are then perturbed)."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    proc = subprocess.Popen([str(spy) if spy.exists() else "py-spy", "record", "-o", str(path),
                             "--pid", str(pid), "--rate", "100", "--nonblocking",
                             "--format", _SPY_FORMATS.get(path.suffix, "flamegraph")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(1.0)  # attached
        yield
    finally:
        proc.send_signal(2)  # SIGINT: py-spy writes its file and exits
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


def log_errors(text: str) -> dict[str, Any]:
    """How many ERROR records the server logged, and the first one in full."""
    lines = text.splitlines()
    first: list[str] = []
    count = 0
    for i, line in enumerate(lines):
        if " ERROR " in line or " CRITICAL " in line:
            count += 1
            if not first:
                first = [line]
                for more in lines[i + 1:i + 60]:
                    if re.match(r"\d{4}-\d\d-\d\d ", more):
                        break
                    first.append(more)
    return {"count": count, "first": "\n".join(first)}
