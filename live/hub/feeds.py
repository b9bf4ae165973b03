"""Live money feeds: a brand's own sales, a creator's earnings. Read once a second, sent
only when something changed; each socket is checked for its brand/creator at the handshake."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from checkout.ids import BrandId, CreatorId
from checkout.store.keys import stream_agg_keys, stream_unique_viewers_key
from checkout.reports import brand_report, creator_earnings
from live.hub.protocol import Earnings, Sales, ServerMessage, Wire, encode_server, wire_for_subprotocol
from live.hub.handshake import HubContext, Route

__all__ = ["brand_feed", "creator_feed", "FEED_INTERVAL_S"]

FEED_INTERVAL_S = 1.0


async def _periodic(conn: ServerConnection, produce: Callable[[], Awaitable[ServerMessage]],
                    interval_s: float) -> None:
    wire = wire_for_subprotocol(conn.subprotocol)
    last = None
    try:
        while True:
            data = await produce()
            if data != last:
                await conn.send(encode_server(data, wire), text=wire is Wire.JSON)
                last = data
            try:
                await asyncio.wait_for(conn.wait_closed(), interval_s)
                return
            except asyncio.TimeoutError:
                continue
    except ConnectionClosed:
        return


async def brand_feed(server: HubContext, conn: ServerConnection, route: Route) -> None:
    services = server.services

    async def produce() -> Sales:
        report = await brand_report(services.client, BrandId(route.target))
        minutes = report.pop("per_minute")
        for stream in report["streams"]:
            buyers = await services.client.pfcount(stream_agg_keys(stream["stream_id"]).buyers)
            viewers = await services.client.pfcount(stream_unique_viewers_key(stream["stream_id"]))
            stream["buyers"], stream["viewers"] = buyers, viewers
            # Buyers off the room (links, showcase) also count: cap at 1 rather than show 600%.
            stream["conversion"] = round(min(1.0, buyers / viewers), 4) if viewers else 0.0
        return Sales({**report, "orders_last_minute": minutes[-2]["orders"],
                      "per_minute": minutes[-15:]})

    await _periodic(conn, produce, FEED_INTERVAL_S)


async def creator_feed(server: HubContext, conn: ServerConnection, route: Route) -> None:
    services = server.services

    async def produce() -> Earnings:
        return Earnings(await creator_earnings(services.client, CreatorId(route.target), limit=20))

    await _periodic(conn, produce, FEED_INTERVAL_S)
