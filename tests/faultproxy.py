"""A small asyncio TCP proxy that injects faults between a client and a server (test helper).

Faults, settable at runtime:
- `drop_next_reply()`: the next chunk the server sends (on any connection) is swallowed and
  that connection is closed. The command ran on the server but the client never saw the
  reply, so it sees a connection error and may retry: the double-execution hazard.
- `cut_all()`: abort every open connection now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

__all__ = ["FaultProxy"]

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024


@dataclass(eq=False, slots=True)
class _Link:
    """One proxied connection: the client side and the server side."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def abort(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()
        self.closed.set()


class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards every connection to `target_host:target_port`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._drop_pending = 0
        self._closed = False
        self.connections_total = 0
        self.replies_dropped = 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultProxy not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connections_open(self) -> int:
        return len(self._links)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    def drop_next_reply(self, count: int = 1) -> None:
        """Swallow the next `count` server->client chunks, closing each one's connection."""
        self._drop_pending += count

    def cut_all(self) -> int:
        """Abort every open connection (new ones are still accepted); returns how many."""
        links = list(self._links)
        for link in links:
            link.abort()
        return len(links)

    async def close(self) -> None:
        """Stop listening, cut every connection and wait for the handlers. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        self.cut_all()
        if self._handlers:
            await asyncio.wait(list(self._handlers))
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if self._closed:
                return
            try:
                server_r, server_w = await asyncio.open_connection(*self._target)
            except OSError as exc:
                logger.debug("proxy cannot reach %s:%s: %s", *self._target, exc)
                return
            self.connections_total += 1
            link = _Link(client_w, server_w)
            self._links.add(link)
            try:
                await self._run(link, client_r, server_r)
            finally:
                self._links.discard(link)
                await _close(server_w)
        finally:
            await _close(client_w)
            self._handlers.discard(task)

    async def _run(self, link: _Link, client_r: asyncio.StreamReader,
                   server_r: asyncio.StreamReader) -> None:
        up = asyncio.create_task(self._pump(client_r, link.server, link, reply=False))
        down = asyncio.create_task(self._pump(server_r, link.client, link, reply=True))
        closed = asyncio.create_task(link.closed.wait())
        tasks = {up, down, closed}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: _Link, *, reply: bool) -> None:
        """Copy until EOF; a server->client chunk may be swallowed, closing the link."""
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                if reply and self._drop_pending > 0:
                    self._drop_pending -= 1
                    self.replies_dropped += 1
                    link.abort()
                    return
                writer.write(data)
                await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
