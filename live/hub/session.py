"""One socket in a stream's room: snapshot or resume, then commands until it closes."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from checkout.errors import Refused
from checkout.ids import ProductId, StreamId
from checkout.store.keys import stream_unique_viewers_key
from checkout.store.unavailable import UNAVAILABLE
from live.chat.store import ChatRefusal, ChatStore
from live.chat.text import REACTIONS, ChatRefused, normalise
from live.hub.chatter import Chatter, chat_user
from live.hub.claims import claim_comment
from live.hub.rooms import Hub, Room, Subscriber, send_snapshot, write_frame
from live.hub.protocol import (Ack, Chat, ChatBatch, ClientMessage, CloseCode, EndStream, Error,
                               Like, Notice, Pin, ProductSeen, ProductTap, ProtocolError,
                               RateLimiter, React, ServerMessage, StartDeal, Unpin,
                               decode_client, event_frame, server_frame, wire_for_subprotocol)
from live.hub.sockets import WebSocketSink
from live.hub.state import read_events_after, read_snapshot
from live.streams.lifecycle import StreamAction
from live.streams.store import DealIn
from live.hub.handshake import HubContext, Route

__all__ = ["room_session"]

log = logging.getLogger(__name__)

_OVER = ("ended", "cancelled")


@dataclass(slots=True)
class _Audience:
    """What a socket's product frames count as: its viewer id (the one the room's unique
    viewers count), None for the host console and the OBS source, which are no audience;
    and the products whose view it has counted (at most `WsLimits.seen_per_socket`)."""

    viewer: str | None
    seen: set[str] = field(default_factory=set)


async def room_session(server: HubContext, conn: ServerConnection, route: Route) -> None:
    services = server.services
    hub: Hub = services.hub
    stream = await services.streams.get(StreamId(route.target))
    if stream is None:
        await conn.close(CloseCode.NOT_FOUND, "no such stream")
        return
    wire = wire_for_subprotocol(conn.subprotocol)
    room = await hub.room(StreamId(route.target), stream["lineup"])
    sub = Subscriber(WebSocketSink(conn), wire, counted=_is_viewer(route, stream["creator_id"]))
    if route.principal is not None:
        sub.chat_user = chat_user(route.principal)
        sub.full_chat = route.principal.can_moderate(stream["creator_id"])
    room.subscribers.add(sub)
    who = route.principal.subject if route.principal else f"anon:{route.ip}:{id(conn)}"
    audience = _Audience(who if sub.counted else None)
    try:
        if sub.counted:
            await services.client.pfadd(stream_unique_viewers_key(route.target), who)
        if not await _start(hub, services.chat, room, sub, conn, route):
            await conn.wait_closed()  # returning now would let websockets close it 1000
            return
        if stream["state"] in _OVER:
            await conn.close(CloseCode.STREAM_ENDED, "the stream is over")
            return
        chatter = Chatter(services, room.stream_id, stream["creator_id"], route.principal,
                          stream["purchase_mode"])
        await _serve_commands(server, room, sub, conn, route, chatter, audience)
    except ConnectionClosed:
        pass
    finally:
        await hub.leave(room, sub)


def _is_viewer(route: Route, host: str) -> bool:
    """Whether the socket is in the audience: not an OBS source (`client=obs`), and not
    the stream's host or an operator (the host console, a preview)."""
    if route.obs:
        return False
    return route.principal is None or not route.principal.can_act_for_creator(host)


async def _start(hub: Hub, chat: ChatStore, room: Room, sub: Subscriber, conn: ServerConnection,
                 route: Route) -> bool:
    """Resume from `since` when the log still has it; otherwise a fresh snapshot. False if
    the socket is closing instead."""
    client = hub.client
    now = time.monotonic()
    events = None
    if route.since is not None:
        events = await read_events_after(client, room.stream_id, route.since,
                                         hub.limits.replay_limit)
    if events is not None:
        assert route.since is not None
        for raw in events:
            write_frame(sub, event_frame(raw, sub.wire), hub.limits, droppable=False, now=now)
        room.activate(sub, route.since + len(events), now)
    else:
        snapshot = await room.snapshot(sub.wire, now, lambda: read_snapshot(
            client, chat, room.stream_id))
        if snapshot is None:
            await conn.close(CloseCode.NOT_FOUND, "no such stream")
            return False
        if not await send_snapshot(sub, snapshot, hub.limits, int(time.time() * 1000)):
            return False  # closed, or being closed as too slow
        now = time.monotonic()
        room.activate(sub, snapshot.seq, now)
        # The snapshot's chat may be a second old: what was heard since (the page dedupes).
        recent = room.chat_since(snapshot.taken_at)
        if recent:
            write_frame(sub, server_frame(ChatBatch(recent), sub.wire), hub.limits,
                        droppable=True, now=now)
    if room.state:
        # The room's state may be newer than what the snapshot read: never leave it stale.
        write_frame(sub, server_frame(room.full_state(), sub.wire), hub.limits, droppable=True,
                    now=now)
    return True


async def _serve_commands(server: HubContext, room: Room, sub: Subscriber,
                          conn: ServerConnection, route: Route, chatter: Chatter,
                          audience: _Audience) -> None:
    limits = server.limits
    limiter = RateLimiter(limits.message_rate, limits.message_burst, time.monotonic())
    strikes = 0
    closing: asyncio.Task[None] | None = None
    # Keep reading while a close we started completes: a full incoming queue would stop
    # the library from reading the peer's close frame.
    async for frame in conn:
        if closing is not None:
            continue
        now = time.monotonic()
        received_ms = int(time.time() * 1000)
        if not limiter.allow(now):
            strikes += 1
            if strikes > limits.strikes_before_close:
                closing = asyncio.create_task(
                    conn.close(CloseCode.RATE_LIMITED, "too many messages"))
                continue
            _reply(sub, Error("rate-limited", f"at most {limits.message_rate:g} messages a second"),
                   server)
            continue
        try:
            message = decode_client(frame, sub.wire)
            reply: ServerMessage | None = await _dispatch(server, room, sub, route, chatter,
                                                          message, audience, received_ms)
        except ProtocolError as exc:
            if exc.fatal:
                closing = asyncio.create_task(conn.close(exc.close_code, exc.message[:120]))
                continue
            reply = Error(exc.code, exc.message, exc.ref)
        except UNAVAILABLE as exc:  # Valkey away or full: say so, the socket stays
            log.warning("Valkey unavailable for a %s frame on %s: %s", type(message).__name__,
                        room.stream_id, type(exc).__name__)
            reply = Error("unavailable", "storage is busy or restarting; try again", message.ref)
        if reply is not None:
            _reply(sub, reply, server)


def _reply(sub: Subscriber, message: ServerMessage, server: HubContext) -> None:
    write_frame(sub, server_frame(message, sub.wire), server.services.hub.limits,
                droppable=False, now=time.monotonic())


async def _dispatch(server: HubContext, room: Room, sub: Subscriber, route: Route,
                    chatter: Chatter, message: ClientMessage, audience: _Audience,
                    received_ms: int) -> Ack | Notice | None:
    services = server.services
    host = chatter.host
    if isinstance(message, Chat):
        return await _chat(server, room, sub, chatter, message, received_ms)
    if isinstance(message, React):
        if message.emoji not in REACTIONS:
            raise ProtocolError("bad-field", f"emoji must be one of {', '.join(REACTIONS)}",
                                ref=message.ref)
        services.hub.add_reaction(room.stream_id, message.emoji)
        return None if message.ref is None else Ack(message.ref)
    if isinstance(message, Like):
        services.hub.add_likes(room.stream_id, message.count)
        return None if message.ref is None else Ack(message.ref)
    if isinstance(message, ProductSeen | ProductTap):
        _count_product(services.hub, room, message, audience, server.limits.seen_per_socket)
        return None if message.ref is None else Ack(message.ref)
    principal = route.principal
    if principal is None or not principal.can_act_for_creator(host):
        raise ProtocolError("forbidden", "only the stream's host can do that", ref=message.ref)
    try:
        match message:
            case Pin(product_id=product):
                await services.streams.pin(room.stream_id, ProductId(product))
            case Unpin(product_id=product):
                await services.streams.unpin(room.stream_id, ProductId(product))
            case StartDeal():
                record = await services.catalog.product(ProductId(message.product_id))
                if record is None:
                    raise ProtocolError("not-found", "no such product", ref=message.ref)
                await services.streams.start_deal(room.stream_id, DealIn(
                    product_id=ProductId(message.product_id), price_minor=message.price_minor,
                    quantity=message.quantity, per_buyer_limit=message.per_buyer_limit,
                    countdown_s=message.countdown_s, duration_s=message.duration_s),
                    record)
            case EndStream():
                await services.streams.act(room.stream_id, StreamAction.END)
    except Refused as exc:  # the stream's rules said no: an error frame, the socket stays
        raise ProtocolError(exc.kind, exc.detail, ref=message.ref) from None
    return Ack(message.ref)


async def _chat(server: HubContext, room: Room, sub: Subscriber, chatter: Chatter,
                message: Chat, received_ms: int) -> Ack | Notice | None:
    """Post one message: the sender sees it at once (everyone else with the next tick), a
    held one is said to be held; a refusal is an error frame (docs/chat.md). A buyer's
    comment that claims is answered with the claim's notice; the same comment again is
    not posted twice (`duplicate`) but is the same claim, so it is answered the same."""
    try:
        posted = await chatter.post(message.text, room.lineup, received_ms, room.bans_epoch)
    except ChatRefused as exc:
        raise ProtocolError(exc.code, exc.message, ref=message.ref) from None
    except ChatRefusal as exc:
        claimed = (await _claim(server, room, chatter, normalise(message.text), message.ref)
                   if exc.kind == "duplicate" else None)
        if claimed is None:
            raise ProtocolError(exc.kind, exc.detail, ref=message.ref) from None
        return claimed
    if posted.held:
        return Notice("held", "your message is held for a moderator's review", message.ref)
    _reply(sub, ChatBatch([posted.message]), server)
    claimed = await _claim(server, room, chatter, posted.message["text"], message.ref)
    if claimed is not None:
        _reply(sub, claimed, server)
    return None if message.ref is None else Ack(message.ref)


async def _claim(server: HubContext, room: Room, chatter: Chatter, text: str,
                 ref: str | None) -> Notice | None:
    author = chatter.author
    if author is None:
        return None
    return await claim_comment(server.services, room, author, text, chatter.purchase_mode, ref)


def _count_product(hub: Hub, room: Room, message: ProductSeen | ProductTap,
                   audience: _Audience, seen_cap: int) -> None:
    """A view or a click of a lineup product, summed into the hub's tick (checkout/funnel.py):
    a view once per socket and product, a tap each time (the socket's message rate bounds
    them). A product outside the lineup is refused like a pin of one; the host console's
    and the OBS source's frames count nothing."""
    product = message.product_id
    if product not in room.lineup:
        raise ProtocolError("not-in-lineup", f"{product} is not in this stream's lineup",
                            ref=message.ref)
    if audience.viewer is None:
        return
    if isinstance(message, ProductTap):
        hub.funnel.tapped(room.stream_id, product)
    elif product not in audience.seen and len(audience.seen) < seen_cap:
        audience.seen.add(product)
        hub.funnel.seen(room.stream_id, product, audience.viewer)
