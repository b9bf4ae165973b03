"""The HTTP server's own limits, with raw sockets against a real node: a request that is never
finished is cut off, oversized headers are refused, connections past the cap get a 503."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import AsyncIterator
from urllib.parse import urlsplit

import pytest

from conftest import UNIT, Live
from live.web.problems import PROBLEM_BASE
from shop import eventually

SHORT = {"http_header_timeout_s": 0.2 * UNIT, "http_body_timeout_s": 0.2 * UNIT}


@contextlib.asynccontextmanager
async def connection(live: Live) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    url = urlsplit(live.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    async with asyncio.timeout(10 * UNIT):
        return await reader.read()


async def response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response on a kept-alive connection: its status and body."""
    async with asyncio.timeout(10 * UNIT):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":")[1]) for line in lines
                      if line.lower().startswith("content-length:"))
        return int(lines[0].split()[1]), await reader.readexactly(length)


def problem_status(raw: bytes) -> int:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), raw
    assert b"connection: close" in head.lower(), raw
    problem = json.loads(body)
    assert problem["type"].startswith(PROBLEM_BASE), problem
    return int(problem["status"])


@pytest.mark.parametrize("node_settings", [SHORT])
async def test_half_sent_headers_are_cut_off(live: Live) -> None:
    async with connection(live) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nAccept: app")  # and nothing more
        raw = await until_closed(reader)
    assert problem_status(raw) == 408
    async with connection(live) as (reader, writer):  # a connection that never says a word
        assert problem_status(await until_closed(reader)) == 408
    async with connection(live) as (reader, writer):  # dripping bytes does not extend it
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        closed = asyncio.create_task(until_closed(reader))
        while not closed.done():
            writer.write(b"X: y\r\n")
            await asyncio.sleep(0.05 * UNIT)
        assert problem_status(closed.result()) == 408


@pytest.mark.parametrize("node_settings", [SHORT])
async def test_unfinished_body_is_cut_off(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    token = live.token("operator", "ops")
    async with connection(live) as (reader, writer):
        writer.write(b"POST /api/v1/brands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + token.encode() + b"\r\n"
                     b"Content-Length: 100\r\n\r\n{\"id\": \"acme\"")  # 14 of 100 bytes
        assert await until_closed(reader) == b""
    async with connection(live) as (reader, writer):  # answered without reading the body
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert (await until_closed(reader)).startswith(b"HTTP/1.1 200 ")
    # The handler saw the client go away: that is not an error of ours.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (await live.http.get("/healthz")).status_code == 200


@pytest.mark.parametrize("node_settings", [{"http_max_header_bytes": 4096}])
async def test_oversized_headers_are_refused(live: Live) -> None:
    async with connection(live) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(8):
            writer.write(b"X-Pad: " + b"a" * 1000 + b"\r\n")
        raw = await until_closed(reader)
    assert problem_status(raw) == 431
    async with connection(live) as (reader, writer):  # headers up to the cap are fine
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 3000 + b"\r\n\r\n")
        assert (await response(reader))[0] == 200


@pytest.mark.parametrize("node_settings", [{"http_max_connections": 2, "http_keep_alive_s": 60}])
async def test_connections_past_the_cap_get_503(live: Live) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    async with connection(live) as (reader_a, writer_a):
        writer_a.write(request)
        assert (await response(reader_a))[0] == 200
        async with connection(live) as (reader_b, writer_b):
            writer_b.write(request)
            assert (await response(reader_b))[0] == 200
            async with connection(live) as (reader_c, writer_c):
                writer_c.write(request)
                assert (await until_closed(reader_c)).startswith(b"HTTP/1.1 503 ")
            writer_b.write(request)  # the two under the cap are still served
            assert (await response(reader_b))[0] == 200
    # Both closed: there is room again.
    await eventually(lambda: _served(live, request), "a request served once under the cap")


async def _served(live: Live, request: bytes) -> bool:
    async with connection(live) as (reader, writer):
        writer.write(request)
        return (await response(reader))[0] == 200


@pytest.mark.parametrize("node_settings", [{"ws_open_timeout_s": 0.2 * UNIT}])
async def test_half_sent_hub_handshake_is_cut_off(live: Live) -> None:
    url = urlsplit(live.ws_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(b"GET /ws/streams/s_1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        async with asyncio.timeout(5 * UNIT):  # under websockets' own 10 s default
            assert await reader.read() == b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
