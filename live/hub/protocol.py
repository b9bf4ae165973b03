"""The hub's wire protocol, sans-I/O, both directions as values.

Version 1 (docs/protocol.md; chat: docs/chat.md). JSON text frames by default; msgpack binary frames when the
client asks for the `livecart.v1.msgpack` subprotocol. Client messages (`Like`,
`ProductSeen`, `ProductTap`, `Pin`, ...)
and server messages (`Snapshot`, `State`, `Event`, `Ack`, `Error`, `Sales`, `Earnings`) are
frozen dataclasses; `decode_client`/`encode_client` and `encode_server`/`decode_server`
are the only ways to and from bytes, so the server, the load generators and the tests share
one statement of the wire. Nothing here touches a socket or a clock: callers pass `now` in.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

import msgpack
import orjson

from checkout.errors import LivecartError

__all__ = [
    "PROTOCOL_VERSION", "Wire", "SUBPROTOCOLS", "CloseCode", "ProtocolError", "MAX_FRAME_BYTES",
    "Like", "ProductSeen", "ProductTap", "Pin", "Unpin", "StartDeal", "EndStream", "Chat",
    "React", "ClientMessage", "decode_client", "MAX_CHAT_INPUT",
    "encode_client", "Snapshot", "State", "Event", "EVENT_TYPES", "Ack", "Error", "Sales",
    "Earnings", "ChatBatch", "Notice", "ServerMessage", "encode_server", "decode_server", "server_frame", "event_frame",
    "ws_frame", "ws_first_fragment", "ws_continuations", "with_server_time", "RateLimiter",
    "wire_for_subprotocol",
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
class ProductSeen:
    """A viewer's page showed the product's card (at least half of it): a view."""

    product_id: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class ProductTap:
    """A viewer tapped the product's card to open its details / Buy sheet: a click."""

    product_id: str
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


@dataclass(frozen=True, slots=True)
class Chat:
    """A chat message as typed: live/chat/text.py normalises and checks it."""

    text: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class React:
    """A reaction, one of live/chat/text.py's REACTIONS, summed per tick like likes."""

    emoji: str
    ref: str | None = None


ClientMessage = Like | ProductSeen | ProductTap | Pin | Unpin | StartDeal | EndStream | Chat | React

MAX_CHAT_INPUT = 2000  # characters of a chat frame's text before normalising (200 after)
_EMOJI_NAME_MAX = 16

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
        case "product_seen":
            return ProductSeen(_id(data, "product_id", ref), ref)
        case "product_tap":
            return ProductTap(_id(data, "product_id", ref), ref)
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
        case "chat":
            text = data.get("text")
            if not isinstance(text, str) or len(text) > MAX_CHAT_INPUT:
                raise ProtocolError("bad-field",
                                    f"text must be a string of at most {MAX_CHAT_INPUT} characters",
                                    ref=ref)
            return Chat(text, ref)
        case "react":
            emoji = data.get("emoji")
            if not isinstance(emoji, str) or not 0 < len(emoji) <= _EMOJI_NAME_MAX:
                raise ProtocolError("bad-field", "emoji must be a reaction's name", ref=ref)
            return React(emoji, ref)
        case other:
            raise ProtocolError("unknown-type", f"unknown message type {str(other)[:40]!r}",
                                ref=ref)


def _client_fields(message: ClientMessage) -> dict[str, Any]:
    match message:
        case Like(count=count):
            return {"type": "like", "count": count}
        case ProductSeen(product_id=product):
            return {"type": "product_seen", "product_id": product}
        case ProductTap(product_id=product):
            return {"type": "product_tap", "product_id": product}
        case Pin(product_id=product):
            return {"type": "pin", "product_id": product}
        case Unpin(product_id=product):
            return {"type": "unpin", "product_id": product}
        case StartDeal():
            return {"type": "deal.start", "product_id": message.product_id,
                    "price_minor": message.price_minor, "quantity": message.quantity,
                    "per_buyer_limit": message.per_buyer_limit,
                    "countdown_s": message.countdown_s, "duration_s": message.duration_s}
        case EndStream():
            return {"type": "stream.end"}
        case Chat(text=text):
            return {"type": "chat", "text": text}
        case React(emoji=emoji):
            return {"type": "react", "emoji": emoji}
    raise TypeError(f"not a client message: {message!r}")


def encode_client(message: ClientMessage, wire: Wire) -> str | bytes:
    """The frame a client sends for `message` (text for JSON, bytes for msgpack)."""
    data = _client_fields(message)
    if message.ref is not None:
        data["ref"] = message.ref
    raw = _dump(data, wire)
    return raw.decode() if wire is Wire.JSON else raw


# Server to client. Every message the hub sends is one of these; `fields()` is its wire
# form (a map with `type` first). Events are written by the stream's Lua script
# (checkout/store/lua/stream.lua) as JSON in the stream's log; the hub forwards those bytes
# untouched and clients read them back as `Event`.

# `auction.bid` is no longer written (bids ride in the tick's `state`, docs/auctions.md); a
# log kept from before still holds them, and clients still apply them.
EVENT_TYPES = frozenset({"pin", "unpin", "deal.scheduled", "deal.closed", "lineup.changed",
                         "stream.state", "stream.ingest", "stream.cover", "chat.deleted",
                         "chat.banned", "chat.unbanned", "chat.cleared", "chat.announcement", "chat.settings",
                         "auction.created", "auction.opened", "auction.bid", "auction.closed",
                         "auction.second_chance"})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole room at `seq`: the first frame of a socket (or after a resume that
    cannot be served). `server_time_ms` is put in per socket (`with_server_time`)."""

    seq: int
    stream: Mapping[str, Any]
    tray: list[str]
    pinned: list[str]
    deals: Mapping[str, Any]
    products: Mapping[str, Any]
    stock: Mapping[str, Mapping[str, int]]
    deal_sold: Mapping[str, int]
    viewers: int
    likes: int
    sales: Mapping[str, int]
    just_bought: list[Mapping[str, Any]]
    v: int = PROTOCOL_VERSION
    server_time_ms: int | None = None
    # docs/chat.md: {messages (the last ones, oldest first), announcement, settings}
    chat: Mapping[str, Any] = field(default_factory=dict)
    reactions: Mapping[str, int] = field(default_factory=dict)
    # docs/auctions.md: the show's latest auction, in its events' fields (a late joiner's card)
    auction: Mapping[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "snapshot"}
        if self.server_time_ms is not None:
            data["server_time_ms"] = self.server_time_ms
        data.update(v=self.v, seq=self.seq, stream=self.stream, tray=self.tray,
                    pinned=self.pinned, deals=self.deals, products=self.products,
                    stock=self.stock, deal_sold=self.deal_sold, viewers=self.viewers,
                    likes=self.likes, sales=self.sales, just_bought=self.just_bought,
                    chat=self.chat, reactions=self.reactions, auction=self.auction)
        return data


_STATE_PARTS = ("stock", "deal_sold", "viewers", "likes", "sales", "just_bought", "reactions",
                "auction")


@dataclass(frozen=True, slots=True)
class State:
    """What changed since the last tick, absolute values, latest wins; a part left None
    did not change. `just_bought` holds the sales since the last tick, newest first."""

    stock: Mapping[str, Mapping[str, int]] | None = None
    deal_sold: Mapping[str, int] | None = None
    viewers: int | None = None
    likes: int | None = None
    sales: Mapping[str, int] | None = None
    just_bought: list[Mapping[str, Any]] | None = None
    reactions: Mapping[str, int] | None = None
    # The show's auction after its latest accepted bid (docs/auctions.md): {auction,
    # price_minor, next_minor, high_paddle, bids, ends_ms, reserve_met}; a client applies it
    # to the same auction when `bids` is more than it has.
    auction: Mapping[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "state"}
        for name in _STATE_PARTS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in _STATE_PARTS)


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the stream's log: `seq` has no gaps and no repeats."""

    seq: int
    type: str  # one of EVENT_TYPES
    at_ms: int
    data: Mapping[str, Any] = field(default_factory=dict)  # the event's own fields

    def fields(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, "at_ms": self.at_ms, **self.data}


@dataclass(frozen=True, slots=True)
class Ack:
    ref: str | None

    def fields(self) -> dict[str, Any]:
        return {"type": "ack", "ref": self.ref}


@dataclass(frozen=True, slots=True)
class Error:
    """A refused or malformed message; the socket stays open."""

    code: str
    message: str
    ref: str | None = None

    def fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.ref is not None:
            data["ref"] = self.ref
        return data


@dataclass(frozen=True, slots=True)
class Sales:
    """A brand's live money feed (checkout.reports.brand_report plus the room's counts)."""

    report: Mapping[str, Any]

    def fields(self) -> dict[str, Any]:
        return {"type": "sales", **self.report}


@dataclass(frozen=True, slots=True)
class Earnings:
    """A creator's live earnings feed (checkout.reports.creator_earnings)."""

    report: Mapping[str, Any]

    def fields(self) -> dict[str, Any]:
        return {"type": "earnings", **self.report}


@dataclass(frozen=True, slots=True)
class ChatBatch:
    """Chat messages for one socket, oldest first: a tick's (sampled for viewers of a busy
    room, docs/chat.md) or the sender's own message echoed at once."""

    messages: Sequence[Mapping[str, Any]]

    def fields(self) -> dict[str, Any]:
        return {"type": "chat", "messages": self.messages}


@dataclass(frozen=True, slots=True)
class Notice:
    """A private word to one socket: a message held for review, a comment's claim."""

    code: str
    message: str
    ref: str | None = None
    data: Mapping[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "notice", "code": self.code, "message": self.message}
        if self.ref is not None:
            out["ref"] = self.ref
        if self.data is not None:
            out["data"] = self.data
        return out


ServerMessage = Snapshot | State | Event | Ack | Error | Sales | Earnings | ChatBatch | Notice


def _dump(data: Mapping[str, Any], wire: Wire) -> bytes:
    if wire is Wire.JSON:
        return orjson.dumps(data)
    return msgpack.packb(data, use_bin_type=True)


def encode_server(message: ServerMessage, wire: Wire) -> bytes:
    """Encode a server message once; the same bytes go to every socket of that wire."""
    return _dump(message.fields(), wire)


def server_frame(message: ServerMessage, wire: Wire) -> bytes:
    """`message` as one complete WebSocket frame (`ws_frame`)."""
    return ws_frame(encode_server(message, wire), wire)


def event_frame(raw_json: bytes, wire: Wire) -> bytes:
    """A logged event (the JSON its script wrote) as one frame: JSON sockets get the logged
    bytes as they are, msgpack sockets the same map re-encoded."""
    return ws_frame(raw_json if wire is Wire.JSON else _dump(orjson.loads(raw_json), wire), wire)


def _load(frame: str | bytes, wire: Wire) -> Any:
    if wire is Wire.JSON:
        return orjson.loads(frame)
    return msgpack.unpackb(frame, raw=False, strict_map_key=True)


def decode_server(frame: str | bytes, wire: Wire) -> ServerMessage:
    """What a client makes of a server frame. Raises ProtocolError on anything else."""
    try:
        data = _load(frame, wire)
    except (orjson.JSONDecodeError, ValueError, msgpack.UnpackException, TypeError):
        raise ProtocolError("malformed", "the frame does not decode") from None
    if not isinstance(data, dict):
        raise ProtocolError("malformed", "a message is an object with a type")
    kind = data.pop("type", None)
    try:
        match kind:
            case "snapshot":
                return Snapshot(**data)
            case "state":
                return State(**data)
            case "ack":
                return Ack(**data)
            case "error":
                return Error(**data)
            case "sales":
                return Sales(data)
            case "earnings":
                return Earnings(data)
            case "chat":
                return ChatBatch(**data)
            case "notice":
                return Notice(**data)
            case str() if kind in EVENT_TYPES:
                seq, at_ms = data.pop("seq"), data.pop("at_ms")
                return Event(seq, kind, at_ms, data)
    except (TypeError, KeyError) as exc:
        raise ProtocolError("bad-field", f"{kind} message: {exc}") from None
    raise ProtocolError("unknown-type", f"unknown message type {str(kind)[:40]!r}")


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
