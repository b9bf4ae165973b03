"""What the hub relies on in `websockets` beyond its documented API, in one place, with the
versions it was checked against and a start-up self-check (`check`) that fails loudly.

- Frames are written straight to `connection.transport` (protocol.ws_frame builds them
  once per room): websockets keeps no state for the unfragmented data frames it sends,
  and every frame it sends itself (pings, the close) is flushed at once, so nothing
  interleaves. Framing per socket was a third of a broadcast's time (BENCHMARKS.md).
- `Connection.drain()` waits for the transport to fall below websockets' write limit
  (its asyncio flow control since 13.0, undocumented): the join snapshot is written in
  fragments gated on it.
"""

from __future__ import annotations

from importlib.metadata import version

from websockets.asyncio.connection import Connection
from websockets.protocol import State

from checkout.errors import LivecartError

__all__ = ["WEBSOCKETS_VERSIONS", "WebsocketsCompatError", "check", "drain", "is_open"]

# [lowest, highest) release checked; pyproject.toml bounds the install the same way.
WEBSOCKETS_VERSIONS = ((14, 0), (18, 0))


class WebsocketsCompatError(LivecartError, RuntimeError):
    """A websockets behaviour the hub relies on is not where it was."""


def check(connection_class: type = Connection) -> None:
    """Fail loudly if a websockets internal below moved; run once at start."""
    major, minor, *_ = (int(p) for p in version("websockets").split(".")[:2])
    low, high = WEBSOCKETS_VERSIONS
    if not low <= (major, minor) < high:
        raise WebsocketsCompatError(f"websockets {version('websockets')} is outside the "
                                    f"checked range {low} to {high} (live/hub/ws_compat.py)")
    if not callable(getattr(connection_class, "drain", None)):
        raise WebsocketsCompatError("websockets' Connection has no drain()")


def is_open(connection: Connection) -> bool:
    return connection.protocol.state is State.OPEN


async def drain(connection: Connection) -> None:
    """Wait until websockets' flow control lets more be written to `connection`."""
    await connection.drain()
