"""The node's redis-py client (live/node/redis_compat.py) against the real embedded Valkey:
commands packed by hiredis, and a pipeline's one deadline in place of one per reply."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from live.node.redis_compat import DeadlinePipeline, PackingConnection, check
from live.node.services import connect
from live.node.valkey_server import EmbeddedValkey


def _client(valkey: EmbeddedValkey, **options: Any) -> tuple[redis.ConnectionPool, redis.Redis]:
    """A pool of the node's connection class and a client on it, as the pipelines take them."""
    pool = redis.ConnectionPool.from_url(valkey.url, connection_class=PackingConnection,
                                         **options)
    return pool, redis.Redis.from_pool(pool)


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
    pool, client = _client(valkey, socket_timeout=0.2)
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


def _mixed(pipe: Any) -> None:
    """Replies of every kind the node's pipelines meet, and some they do not."""
    pipe.execute_command("SET", "compat:big", b"x" * 300_000)  # spans many socket reads
    pipe.execute_command("GET", "compat:big")
    pipe.execute_command("HSET", "compat:h", "a", "1", "b", "2")
    pipe.execute_command("HGETALL", "compat:h")  # a response callback (pairs to a dict)
    pipe.execute_command("EVALSHA", "0" * 40, 0)  # NoScriptError as a reply
    pipe.execute_command("EVAL", "return {1, 'two', {3}}", 0)  # nested array
    pipe.execute_command("HGET", "compat:big", "x")  # WRONGTYPE
    pipe.execute_command("GET", "compat:h", **{NEVER_DECODE: True})  # options: parse_response
    pipe.execute_command("EXISTS", "compat:h", keys=["compat:h"])
    pipe.execute_command("GET", "compat:none")


def _same(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y)
        assert (x.args == y.args) if isinstance(x, Exception) else x == y


class _Counted(DeadlinePipeline):
    """Counts the one-loop reads, so the test knows they were taken."""

    reads = 0

    async def _read_replies(self, connection: Any, commands: Any) -> list[Any]:
        _Counted.reads += 1
        return await super()._read_replies(connection, commands)


@pytest.mark.parametrize("decode", [False, True])
@pytest.mark.parametrize("protocol", [2, 3])
async def test_replies_read_together_are_redis_pys_own(valkey: EmbeddedValkey,
                                                       decode: bool, protocol: int) -> None:
    """The one-loop read of DeadlinePipeline gives what redis-py's pipeline gives, reply for
    reply (errors with their class and text, callbacks applied), and raise_on_error alike."""
    pool, client = _client(valkey, socket_timeout=5, decode_responses=decode, protocol=protocol)
    try:
        theirs = Pipeline(pool, client.response_callbacks, False, None)
        await client.delete("compat:h")
        _mixed(theirs)
        expected = await theirs.execute(raise_on_error=False)
        ours = _Counted(pool, client.response_callbacks, False, None)
        await client.delete("compat:h")
        _mixed(ours)
        reads = _Counted.reads
        _same(await ours.execute(raise_on_error=False), expected)
        assert _Counted.reads == reads + 1
        assert isinstance(expected[4], NoScriptError) and expected[3] == (
            {"a": "1", "b": "2"} if decode else {b"a": b"1", b"b": b"2"})

        raised = []
        for pipe in (Pipeline(pool, client.response_callbacks, False, None),
                     _Counted(pool, client.response_callbacks, False, None)):
            _mixed(pipe)
            with pytest.raises(redis.ResponseError) as caught:
                await pipe.execute()
            raised.append(caught.value)
        assert type(raised[0]) is type(raised[1]) and raised[0].args == raised[1].args
        assert await client.ping()  # every reply was read: the connections are in step
    finally:
        await client.delete("compat:big", "compat:h")
        await client.aclose()


async def test_a_connection_closed_mid_pipeline_is_a_connection_error_and_dropped(
        valkey: EmbeddedValkey) -> None:
    pool, client = _client(valkey, socket_timeout=5)
    pipe = _Counted(pool, client.response_callbacks, False, None)
    try:
        connection = await pool.get_connection()
        pipe.connection = connection
        pipe.execute_command("QUIT")  # the server answers OK and closes
        pipe.execute_command("PING")  # never answered
        with pytest.raises(redis.ConnectionError):
            await pipe._execute_pipeline(connection, pipe.command_stack, True)
        assert not connection.is_connected and _Counted.reads
        assert await client.ping()
    finally:
        await pipe.reset()
        await client.aclose()
