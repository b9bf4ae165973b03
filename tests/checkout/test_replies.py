"""checkout/store/replies.py narrows redis-py's reply types to the shapes our client gets;
these check those shapes on the node's own client against the real Valkey, so a redis-py
that changed them (decoded strings, RESP3 maps) fails here instead of in a cast."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from checkout.store.replies import (entries, int_hash, members, stream_reads, text, text_entries,
                                    text_hash)
from live.node.services import connect
from live.node.valkey_server import EmbeddedValkey


@pytest.fixture
async def client(valkey: EmbeddedValkey) -> AsyncIterator[redis.Redis]:
    node_client = connect(valkey.url)
    await node_client.flushall()
    yield node_client
    await node_client.aclose()


async def test_strings_arrive_as_bytes_and_decode_once(client: redis.Redis) -> None:
    await client.hset("h", mapping={"units": 3, "name": "é"})
    await client.sadd("s", "p1")
    raw = await client.hgetall("h")
    assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in raw.items())
    assert text_hash(raw) == {"units": "3", "name": "é"}
    assert int_hash({b"units": b"3"}) == {"units": 3}
    assert [text(m) for m in await client.smembers("s")] == ["p1"]


async def test_sorted_set_ranges_are_members_only(client: redis.Redis) -> None:
    await client.zadd("z", {"a": 1, "b": 2})
    assert members(await client.zrange("z", 0, -1)) == ["a", "b"]
    assert members(await client.zrevrange("z", 0, -1)) == ["b", "a"]
    assert members(await client.zrangebyscore("z", "-inf", 1, start=0, num=10)) == ["a"]
    assert members(await client.zrange("missing", 0, -1)) == []


async def test_stream_ranges_are_id_and_fields_in_bytes(client: redis.Redis) -> None:
    await client.xadd("x", {"e": b'{"seq":1}'}, id="1-0")
    await client.xadd("x", {"e": b'{"seq":2}'}, id="2-0")
    assert entries(await client.xrange("x", min="2-0")) == [(b"2-0", {b"e": b'{"seq":2}'})]
    assert text_entries(await client.xrevrange("x", count=1)) == [("2-0", {"e": '{"seq":2}'})]
    assert entries(await client.xrange("missing")) == []


async def test_a_group_read_is_a_list_of_stream_and_entries(client: redis.Redis) -> None:
    await client.xgroup_create("outbox", "g", id="0", mkstream=True)
    await client.xadd("outbox", {"k": "v"}, id="1-0")
    reply = await client.xreadgroup("g", "me", {"outbox": ">"}, count=10)
    assert stream_reads(reply) == [[b"outbox", [(b"1-0", {b"k": b"v"})]]]
    assert stream_reads(await client.xreadgroup("g", "me", {"outbox": ">"}, block=1)) == []
