"""A hub socket as the room sees it: `WebSocketSink` puts a websockets server connection
behind the room's `Sink` interface (live/hub/rooms.py), so the room itself never touches
websockets and its fan-out is tested without sockets (tests/live/test_room.py)."""

from __future__ import annotations

import asyncio
import socket
import struct

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from live.hub.protocol import CloseCode
from live.hub.ws_compat import drain

__all__ = ["WebSocketSink"]


class WebSocketSink:
    """Writes go straight to the transport (see live/hub/ws_compat.py): a broadcast frames
    nothing per socket and never awaits one viewer."""

    __slots__ = ("conn",)

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn

    def is_open(self) -> bool:
        return self.conn.protocol.state is State.OPEN

    def buffered(self) -> int:
        return self.conn.transport.get_write_buffer_size()

    def write(self, frame: bytes) -> None:
        self.conn.transport.write(frame)

    async def drained(self) -> bool:
        """Wait for websockets' flow control (the buffer below `write_limit`); False if
        the connection closed or was lost meanwhile."""
        if not self.is_open():
            return False
        try:
            await drain(self.conn)
        except OSError:  # the connection was lost while we waited
            return False
        return self.is_open()

    async def close_or_drop(self, code: CloseCode, reason: str, drop_after_s: float) -> None:
        """Close with `code`; a peer that has not taken the close frame `drop_after_s`
        later is reset instead. The close frame queues behind the bytes the peer has not
        read and websockets' `close()` waits for them before its own timeout starts."""
        try:
            async with asyncio.timeout(drop_after_s):
                await self.conn.close(code, reason)
        except TimeoutError:
            # A reset, not a FIN: closed gracefully, the kernel would keep the unread bytes
            # of an orphaned socket for minutes, probing a peer that does not read.
            sock = self.conn.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.conn.transport.abort()
