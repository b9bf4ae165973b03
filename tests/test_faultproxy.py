"""FaultProxy in front of a real Valkey: pass-through, lost replies, cut connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from faultproxy import FaultProxy
from live.node.valkey_server import EmbeddedValkey


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[FaultProxy]:
    async with EmbeddedValkey(tmp_path) as valkey, FaultProxy(valkey.host, valkey.port) as proxy:
        yield proxy


def _client(proxy: FaultProxy, retries: int) -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=proxy.port, retry=Retry(NoBackoff(), retries),
                          retry_on_error=[ConnectionError])


async def test_pass_through(proxy: FaultProxy) -> None:
    client = _client(proxy, 0)
    try:
        await client.set("k", b"x" * 200_000)  # bigger than one chunk
        assert await client.get("k") == b"x" * 200_000
        assert proxy.connections_total == 1 and proxy.connections_open == 1
    finally:
        await client.aclose()


async def test_lost_reply_makes_a_retrying_client_run_incr_twice(proxy: FaultProxy) -> None:
    client = _client(proxy, 3)
    try:
        await client.ping()  # connect (and its handshake replies) before arming the fault
        proxy.drop_next_reply()
        assert await client.incr("counter") == 2  # ran once unseen, then again on retry
        assert proxy.replies_dropped == 1
        assert proxy.connections_total == 2
        assert int(await client.get("counter")) == 2
    finally:
        await client.aclose()


async def test_lost_reply_without_retry_raises(proxy: FaultProxy) -> None:
    client = _client(proxy, 0)
    try:
        await client.ping()
        proxy.drop_next_reply()
        with pytest.raises(ConnectionError):
            await client.incr("counter")
        assert await client.get("counter") == b"1"  # it ran anyway
    finally:
        await client.aclose()


async def test_cut_all(proxy: FaultProxy) -> None:
    client = _client(proxy, 0)
    try:
        await client.ping()
        assert proxy.cut_all() == 1
        with pytest.raises(ConnectionError):
            await client.ping()
        assert await client.ping()  # a fresh connection goes through
        assert proxy.connections_total == 2
    finally:
        await client.aclose()
    await proxy.close()
    await proxy.close()  # idempotent
