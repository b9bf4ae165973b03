"""The node's redis-py client (live/node/redis_compat.py) against the real embedded Valkey:
commands packed by hiredis, and a pipeline's one deadline in place of one per reply."""

from __future__ import annotations

import pytest
import redis.asyncio as redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from live.node.redis_compat import DeadlinePipeline, PackingConnection, check
from live.node.services import connect
from live.node.valkey_server import EmbeddedValkey


def test_the_installed_redis_py_has_what_it_needs() -> None:
    check()


async def test_pipeline_replies_read_under_one_deadline(valkey: EmbeddedValkey) -> None:
    client = connect(valkey.url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            assert isinstance(pipe, DeadlinePipeline)
            for i in range(50):
                pipe.execute_command("SET", f"compat:{i}", i)
                pipe.execute_command("GET", f"compat:{i}")
            pipe.execute_command("HGET", "compat:0", "x")  # WRONGTYPE: an error as a reply
            replies = await pipe.execute(raise_on_error=False)
        assert replies[1::2][:50] == [str(i).encode() for i in range(50)]
        assert isinstance(replies[-1], redis.ResponseError)
        connection = await client.connection_pool.get_connection()
        assert isinstance(connection, PackingConnection) and not connection.in_deadline
        await client.connection_pool.release(connection)
        assert await client.get("compat:7") == b"7"  # a lone command keeps its own timeout
    finally:
        await client.delete(*(f"compat:{i}" for i in range(50)))
        await client.aclose()


async def test_a_pipeline_past_its_deadline_is_a_timeout_and_the_connection_is_dropped(
        valkey: EmbeddedValkey) -> None:
    pool = redis.ConnectionPool.from_url(valkey.url, socket_timeout=0.2,
                                         connection_class=PackingConnection)
    client = redis.Redis.from_pool(pool)
    pipe = DeadlinePipeline(pool, client.response_callbacks, False, None)
    try:
        pipe.execute_command("PING")
        pipe.execute_command("BLPOP", "compat:never", 2)  # blocks past the deadline
        with pytest.raises(RedisTimeoutError):
            await pipe.execute()
        assert await client.ping()  # a fresh connection: nothing of the cut reply left
    finally:
        await pipe.reset()
        await client.aclose()
