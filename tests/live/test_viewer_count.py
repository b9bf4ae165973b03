"""The viewer count counts viewers: over real sockets, the host's console (the stream's
creator), an operator and the OBS source (`client=obs`) are in the room but not in the
count, in the room's own `viewers`, in the discovery API, or among the unique viewers."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from checkout.store.keys import stream_unique_viewers_key
from conftest import UNIT, Live
from shop import eventually, make_brand, make_live_stream, make_product


def room(live: Live, stream_id: str, **query: str) -> str:
    tail = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{live.ws_url}/ws/streams/{stream_id}" + (f"?{tail}" if tail else "")


async def joined(ws: ClientConnection) -> dict[str, Any]:
    """The snapshot: by then the socket is in the room."""
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5 * UNIT))
    assert message["type"] == "snapshot"
    return message


async def listed_viewers(live: Live, stream_id: str) -> int:
    r = await live.http.get("/api/v1/shows", params={"state": "live"})
    assert r.status_code == 200, r.text
    [show] = [s for s in r.json()["items"] if s["id"] == stream_id]
    return int(show["viewers"])


async def test_host_operator_and_obs_sockets_are_not_viewers(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    sid = stream["id"]
    async with AsyncExitStack() as stack:
        staff = [await stack.enter_async_context(connect(url)) for url in (
            room(live, sid, access_token=live.token("creator", "cleo")),  # the host console
            room(live, sid, access_token=live.token("operator", "ops")),
            room(live, sid, client="obs"),  # the OBS browser source, no token
        )]
        viewers = [await stack.enter_async_context(connect(url)) for url in (
            room(live, sid),  # anonymous
            room(live, sid, access_token=live.token("buyer", "bob")),
            room(live, sid, access_token=live.token("creator", "dana"), client="viewer"),
        )]
        for ws in (*staff, *viewers):
            await joined(ws)
        # Every socket is in the room now: the next beat writes what this node counts.
        await live.services.hub.heartbeat()
        assert await listed_viewers(live, sid) == 3
        # The room tells its sockets the same number.
        await eventually(lambda: _state_viewers(viewers[0], 3), "viewers: 3 in the room")
        assert await live.services.client.pfcount(stream_unique_viewers_key(sid)) == 3

        await viewers[1].close()
        await eventually(lambda: live.services.hub.rooms[sid].viewer_count() == 2,
                         "the viewer gone from the room")
        await live.services.hub.heartbeat()
        assert await listed_viewers(live, sid) == 2


async def _state_viewers(ws: ClientConnection, expected: int) -> bool:
    """Reads the room's frames until one says how many watch; whether it says `expected`."""
    while True:
        message = orjson.loads(await asyncio.wait_for(ws.recv(), 5 * UNIT))
        if "viewers" in message:
            return bool(message["viewers"] == expected)


async def test_an_unknown_client_kind_is_refused_before_the_upgrade(live: Live) -> None:
    await make_brand(live)
    stream = await make_live_stream(live, [(await make_product(live))["id"]])
    try:
        async with connect(room(live, stream["id"], client="host")):
            raise AssertionError("the socket opened")
    except InvalidStatus as exc:
        assert exc.response.status_code == 400
        assert orjson.loads(exc.response.body)["type"].endswith("/bad-query")
