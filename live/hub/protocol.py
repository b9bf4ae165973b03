"""The hub's wire protocol, sans-I/O: bytes in, typed messages out; dicts in, bytes out.

Version 1 (docs/protocol.md). JSON text frames by default; msgpack binary frames when the
client asks for the `livecart.v1.msgpack` subprotocol. Nothing here touches a socket or a
clock: callers pass `now` in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

import msgpack
import orjson

from checkout.errors import LivecartError

__all__ = [
    "PROTOCOL_VERSION", "Wire", "SUBPROTOCOLS", "CloseCode", "ProtocolError", "MAX_FRAME_BYTES",
    "Like", "Pin", "Unpin", "StartDeal", "EndStream", "ClientMessage", "decode_client",
    "encode", "encode_frame", "ws_frame", "ws_first_fragment", "ws_continuations",
    "with_server_time", "RateLimiter", "wire_for_subprotocol",
]

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024


class Wire(StrEnum):
    JSON = "json"
    MSGPACK = "msgpack"


SUBPROTOCOLS = {"livecart.v1.json": Wire.JSON, "livecart.v1.msgpack": Wire.MSGPACK}


def wire_for_subprotocol(subprotocol: str | None) -> Wire:
    return SUBPROTOCOLS.get(subprotocol or "", Wire.JSON)


class CloseCode(IntEnum):
    """Close codes; `reconnect` says whether a client should come back (with backoff)."""

    BAD_FRAME = 4000  # malformed, unknown or oversized message: a client bug
    NOT_FOUND = 4004  # no such stream / brand / creator
    TOO_SLOW = 4008  # could not keep up: reconnect and resume from the last seq
    STREAM_ENDED = 4010  # the stream is over
    GOING_AWAY = 4011  # node shutting down: reconnect (another node)
    TOO_MANY_CONNECTIONS = 4013  # per-token or per-IP cap: retry later
    RATE_LIMITED = 4029  # kept flooding after error frames: retry later

    @property
    def reconnect(self) -> bool:
        return self in (CloseCode.TOO_SLOW, CloseCode.GOING_AWAY,
                        CloseCode.TOO_MANY_CONNECTIONS, CloseCode.RATE_LIMITED)


class ProtocolError(LivecartError):
    """The peer broke the protocol. `fatal` errors close the socket with `code`; the others
    are answered with an error frame and the connection carries on."""

    def __init__(self, code: str, message: str, *, fatal: bool = False,
                 close_code: CloseCode = CloseCode.BAD_FRAME, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal
        self.close_code = close_code
        self.ref = ref


@dataclass(frozen=True, slots=True)
class Like:
    count: int
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Pin:
    product_id: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Unpin:
    product_id: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class StartDeal:
    product_id: str
    price_minor: int
    quantity: int
    per_buyer_limit: int
    countdown_s: int
    duration_s: int
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class EndStream:
    ref: str | None = None


ClientMessage = Like | Pin | Unpin | StartDeal | EndStream

_MAX_ID = 64


def _id(data: dict[str, Any], field: str, ref: str | None) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_ID or not all(
            c.isascii() and (c.isalnum() or c in "_-") for c in value):
        raise ProtocolError("bad-field", f"{field} must be an id of 1-{_MAX_ID} [A-Za-z0-9_-]",
                            ref=ref)
    return value


def _int(data: dict[str, Any], field: str, lo: int, hi: int, ref: str | None,
         default: int | None = None) -> int:
    value = data.get(field, default)
    if type(value) is not int or not lo <= value <= hi:
        raise ProtocolError("bad-field", f"{field} must be an integer in {lo}..{hi}", ref=ref)
    return value


def decode_client(frame: str | bytes, wire: Wire) -> ClientMessage:
    """Decode one client frame. Raises ProtocolError; never anything else."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError("frame-too-large", f"frames are at most {MAX_FRAME_BYTES} bytes",
                            fatal=True)
    if wire is Wire.JSON and not isinstance(frame, str):
        raise ProtocolError("binary-frame", "this connection speaks JSON text frames", fatal=True)
    if wire is Wire.MSGPACK and not isinstance(frame, bytes):
        raise ProtocolError("text-frame", "this connection speaks msgpack binary frames",
                            fatal=True)
    try:
        data = (orjson.loads(frame) if wire is Wire.JSON
                else msgpack.unpackb(frame, raw=False, strict_map_key=True))
    except (orjson.JSONDecodeError, ValueError, msgpack.UnpackException, TypeError):
        raise ProtocolError("malformed", "the frame does not decode") from None
    if not isinstance(data, dict):
        raise ProtocolError("malformed", "a message is an object with a type")
    ref = data.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > _MAX_ID):
        raise ProtocolError("bad-field", f"ref must be a string of at most {_MAX_ID} chars")
    match data.get("type"):
        case "like":
            return Like(_int(data, "count", 1, 50, ref, default=1), ref)
        case "pin":
            return Pin(_id(data, "product_id", ref), ref)
        case "unpin":
            return Unpin(_id(data, "product_id", ref), ref)
        case "deal.start":
            return StartDeal(
                _id(data, "product_id", ref), _int(data, "price_minor", 1, 10**10, ref),
                _int(data, "quantity", 1, 1_000_000, ref),
                _int(data, "per_buyer_limit", 1, 100, ref, default=1),
                _int(data, "countdown_s", 10, 300, ref), _int(data, "duration_s", 10, 86400, ref),
                ref)
        case "stream.end":
            return EndStream(ref)
        case other:
            raise ProtocolError("unknown-type", f"unknown message type {str(other)[:40]!r}",
                                ref=ref)


def encode(message: dict[str, Any], wire: Wire) -> bytes:
    """Encode a server message once; the same bytes go to every socket of that wire."""
    if wire is Wire.JSON:
        return orjson.dumps(message)
    return msgpack.packb(message, use_bin_type=True)


def _frame_head(first_byte: int, size: int) -> bytes:
    if size < 126:
        return bytes((first_byte, size))
    if size < 1 << 16:
        return struct.pack("!BBH", first_byte, 126, size)
    return struct.pack("!BBQ", first_byte, 127, size)


def ws_frame(payload: bytes, wire: Wire) -> bytes:
    """One complete server-to-client WebSocket frame (RFC 6455 5.2: FIN, unmasked, no
    extension): built once per message, the same bytes are written to every socket, so a
    broadcast frames nothing per socket. Valid because the hub negotiates no compression."""
    first_byte = 0x81 if wire is Wire.JSON else 0x82  # FIN + text / binary
    return _frame_head(first_byte, len(payload)) + payload


def ws_first_fragment(head: bytes, wire: Wire) -> bytes:
    """The first frame of a message sent in fragments (RFC 6455 5.4): a text / binary frame,
    not FIN, holding only `head`, the few dozen bytes that differ between sockets."""
    return _frame_head(0x1 if wire is Wire.JSON else 0x2, len(head)) + head


def ws_continuations(rest: bytes | memoryview, size: int) -> tuple[bytes, ...]:
    """The continuation frames that follow `ws_first_fragment`: `rest` in frames of `size`
    bytes, FIN on the last. They do not depend on the head, so they are built once and the
    same bytes are written to every socket. Only control frames (ping, close) may be
    written between the fragments of a message."""
    frames = []
    for start in range(0, max(len(rest), 1), size):  # an empty rest still ends the message
        chunk = rest[start:start + size]
        fin = 0x80 if start + size >= len(rest) else 0
        frames.append(_frame_head(fin, len(chunk)) + chunk)
    return tuple(frames)


def with_server_time(payload: bytes, wire: Wire, now_ms: int) -> tuple[bytes, memoryview]:
    """An encoded non-empty map with `server_time_ms` put first, as (a new head, the rest of
    `payload`, the same whatever `now_ms`): a snapshot encoded once for many sockets gets
    each its own clock reading without being copied or encoded again."""
    if wire is Wire.JSON:
        return b'{"server_time_ms":%d,' % now_ms, memoryview(payload)[1:]
    count, skip = _msgpack_map_header(payload)
    packer = msgpack.Packer()
    head = packer.pack_map_header(count + 1) + packer.pack("server_time_ms") + packer.pack(now_ms)
    return head, memoryview(payload)[skip:]


def _msgpack_map_header(payload: bytes) -> tuple[int, int]:
    """(entries, header length) of the msgpack map `payload` starts with."""
    first = payload[0]
    if 0x80 <= first <= 0x8F:
        return first & 0x0F, 1
    if first == 0xDE:
        return struct.unpack_from("!H", payload, 1)[0], 3
    if first == 0xDF:
        return struct.unpack_from("!I", payload, 1)[0], 5
    raise ValueError("not a msgpack map")


def encode_frame(message: dict[str, Any], wire: Wire) -> bytes:
    return ws_frame(encode(message, wire), wire)


class RateLimiter:
    """A token bucket. `allow(now)` takes one token if there is one."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def idle(self, now: float) -> bool:
        """Refilled to its burst: forgetting the bucket changes nothing."""
        return self._tokens + (now - self._stamp) * self.rate >= self.burst

    def allow(self, now: float) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
