"""check_server against a real embedded Valkey."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from live.node.valkey_check import ServerInfo, ValkeyRequirementError, check_server, parse_version
from live.node.valkey_server import EmbeddedValkey


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    async with EmbeddedValkey(tmp_path) as valkey:
        client = aioredis.from_url(valkey.url, decode_responses=True)
        try:
            yield client
        finally:
            await client.aclose()


async def test_good_config_passes(client: aioredis.Redis) -> None:
    info = await check_server(client)
    assert isinstance(info, ServerInfo)
    assert info.version_tuple >= (9, 0)  # valkey_version wins over the frozen redis_version 7.2.4
    assert info.appendonly and info.appendfsync == "always"
    assert info.maxmemory_policy == "noeviction"
    assert not info.cluster_enabled


async def test_aof_off_fails(client: aioredis.Redis) -> None:
    await client.config_set("appendonly", "no")
    with pytest.raises(ValkeyRequirementError, match="AOF is off: set `appendonly yes`"):
        await check_server(client)


async def test_eviction_policy_fails(client: aioredis.Redis) -> None:
    await client.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(ValkeyRequirementError,
                       match="maxmemory-policy is allkeys-lru: set `maxmemory-policy noeviction`"):
        await check_server(client)


async def test_falls_back_to_info_without_config(client: aioredis.Redis) -> None:
    await client.acl_setuser("app", enabled=True, nopass=True, commands=["+@all", "-config"],
                             keys=["*"], channels=["*"])
    pool_kwargs = client.connection_pool.connection_kwargs
    limited = aioredis.Redis(host=pool_kwargs["host"], port=pool_kwargs["port"], username="app",
                             password="", decode_responses=True)
    try:
        info = await check_server(limited)
        assert info.appendonly and info.appendfsync == "unknown"
        await client.config_set("maxmemory-policy", "volatile-lru")
        with pytest.raises(ValkeyRequirementError, match="maxmemory-policy is volatile-lru"):
            await check_server(limited)
    finally:
        await limited.aclose()


def test_parse_version() -> None:
    assert parse_version("7.2.4") == (7, 2, 4)
    assert parse_version("8.0.0-rc1") == (8, 0, 0)
    assert parse_version("") == ()
    assert parse_version("7.0.15") < (7, 2, 0)
