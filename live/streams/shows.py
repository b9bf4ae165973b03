"""Discovery: the shows that are live now, the ones coming up, and the creators who host them.

The stream hashes live one per slot, so listing them by filtering would read every stream
ever made. Instead each lifecycle change files the stream in a few sorted sets in the
`{shows}` slot (show_index.lua, run right after stream.lua, newest rev wins), and a page is
a range of one set plus one pipeline of reads per listed stream: bounded by the page size.
A follow-up lost to a crash leaves an index behind its stream; the reader checks each
stream it lists against its own hash, leaves out the ones that moved on, and files them
again by what the hash says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import redis.asyncio as redis

from checkout.ids import CreatorId, ProductId, StreamId
from checkout.store.keys import ShowKeys, product_keys, show_keys, stream_key, stream_viewers_key
from checkout.store.replies import members, text
from checkout.store.scripts import SCRIPTS, call_script
from live.streams.viewers import sum_viewers

__all__ = ["ShowIndex", "ShowPage", "Listing"]

Listing = Literal["live", "upcoming"]
_STATE_OF: dict[Listing, str] = {"live": "live", "upcoming": "scheduled"}
_FIELDS = ("id", "creator_id", "title", "state", "scheduled_ms", "started_ms", "ended_ms",
           "cover_url", "pinned", "lineup", "rev")


@dataclass(frozen=True, slots=True)
class ShowPage:
    items: list[dict[str, Any]]
    next_cursor: int | None


def _stream(values: list[bytes | None]) -> dict[str, Any] | None:
    """An HMGET of `_FIELDS` as a stream record; None if the stream is gone."""
    raw = {name: text(v) for name, v in zip(_FIELDS, values) if v is not None}
    if "state" not in raw:
        return None
    out: dict[str, Any] = dict(raw)
    for name in ("scheduled_ms", "started_ms", "ended_ms", "rev"):
        out[name] = int(raw[name]) if raw.get(name) else None
    for name in ("pinned", "lineup"):
        out[name] = orjson.loads(raw.get(name) or "[]")
    return out


def _cover_product(stream: Mapping[str, Any]) -> ProductId | None:
    """The product whose image stands in for a missing cover: the first pinned, else the
    first of the lineup."""
    for products in (stream["pinned"], stream["lineup"]):
        if products:
            return ProductId(str(products[0]))
    return None


def _show(stream: Mapping[str, Any], viewers: int, cover: str) -> dict[str, Any]:
    return {"id": stream["id"], "title": stream["title"], "creator_id": stream["creator_id"],
            "state": stream["state"], "scheduled_ms": stream["scheduled_ms"],
            "started_ms": stream["started_ms"], "viewers": viewers, "cover_url": cover}


class ShowIndex:
    """Files streams by lifecycle state and reads pages of them."""

    def __init__(self, client: redis.Redis, *, late_grace_ms: int) -> None:
        self._client = client
        # A scheduled show not live this long after its time leaves the upcoming lists.
        self.late_grace_ms = late_grace_ms

    async def record(self, stream: Mapping[str, Any], now_ms: int) -> None:
        """File `stream` (a stream record as StreamStore returns it) by its state."""
        k = show_keys(stream["creator_id"])
        await call_script(self._client, SCRIPTS["show_index"], _script_keys(k), [
            stream["id"], int(stream.get("rev") or 0), stream["state"],
            stream.get("scheduled_ms") or 0, stream.get("started_ms") or 0,
            stream.get("ended_ms") or 0, stream["creator_id"], now_ms])

    async def page(self, listing: Listing, *, creator: CreatorId | None, cursor: int,
                   limit: int, now_ms: int) -> ShowPage:
        """Live shows newest first, or upcoming ones soonest first (late ones for
        `late_grace_ms`), of everyone or of one creator."""
        k = show_keys(creator or "")
        if listing == "live":
            key = k.creator_live if creator else k.live
            ids = [StreamId(s) for s in members(
                await self._client.zrevrange(key, cursor, cursor + limit - 1))]
        else:
            key = k.creator_upcoming if creator else k.upcoming
            ids = [StreamId(s) for s in members(await self._client.zrangebyscore(
                key, now_ms - self.late_grace_ms, "+inf", start=cursor, num=limit))]
        items = await self._read(ids, _STATE_OF[listing], now_ms)
        return ShowPage(items, cursor + limit if len(ids) == limit else None)

    async def creators(self, *, cursor: int, limit: int, now_ms: int) -> ShowPage:
        """Creators who have scheduled a show, most recently active first, each with the
        stream they are live in (if any) and when their next show is."""
        ids = [CreatorId(c) for c in members(await self._client.zrevrange(
            show_keys("").creators, cursor, cursor + limit - 1))]
        async with self._client.pipeline(transaction=False) as pipe:
            for creator in ids:
                k = show_keys(creator)
                pipe.zrevrange(k.creator_live, 0, 0)
                pipe.zrangebyscore(k.creator_upcoming, now_ms - self.late_grace_ms, "+inf",
                                   start=0, num=1, withscores=True)
            replies = await pipe.execute()
        items = []
        for i, creator in enumerate(ids):
            live, upcoming = replies[2 * i:2 * i + 2]
            items.append({"id": creator, "live_stream_id": text(live[0]) if live else None,
                          "next_show_ms": int(upcoming[0][1]) if upcoming else None})
        return ShowPage(items, cursor + limit if len(ids) == limit else None)

    async def live_for(self, creators: list[CreatorId], streams: list[StreamId], *,
                       limit: int, now_ms: int) -> list[dict[str, Any]]:
        """"For you": the live shows of `creators` and those of `streams` that are live,
        newest first, at most `limit` (one pipeline for the creators, one for the reads)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for creator in creators:
                pipe.zrevrange(show_keys(creator).creator_live, 0, 0)
            replies = await pipe.execute()
        ids = dict.fromkeys([StreamId(s) for r in replies for s in members(r)] + streams)
        items = await self._read(list(ids), "live", now_ms)
        items.sort(key=lambda s: s["started_ms"] or 0, reverse=True)
        return items[:limit]

    async def is_creator(self, creator: CreatorId) -> bool:
        """Whether `creator` has ever scheduled a show (the ones people can follow)."""
        return await self._client.zscore(show_keys("").creators, creator) is not None

    async def counts(self, creator: CreatorId, now_ms: int) -> dict[str, int]:
        """How many shows the creator has live, coming up and done."""
        k = show_keys(creator)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zcard(k.creator_live)
            pipe.zcount(k.creator_upcoming, now_ms - self.late_grace_ms, "+inf")
            pipe.zcard(k.creator_past)
            live, upcoming, past = await pipe.execute()
        return {"live": int(live), "upcoming": int(upcoming), "past": int(past)}

    async def _read(self, ids: list[StreamId], state: str, now_ms: int) -> list[dict[str, Any]]:
        """The listed streams still in `state`, with their viewer count and cover; the
        others are filed again by what their hash says."""
        async with self._client.pipeline(transaction=False) as pipe:
            for stream_id in ids:
                pipe.hmget(stream_key(stream_id), _FIELDS)
                pipe.hgetall(stream_viewers_key(stream_id))
            replies = await pipe.execute()
        listed: list[tuple[dict[str, Any], int]] = []
        for i in range(len(ids)):
            stream = _stream(replies[2 * i])
            if stream is None:
                continue
            if stream["state"] != state:
                await self.record(stream, now_ms)  # its follow-up was lost: repair it
                continue
            listed.append((stream, sum_viewers(replies[2 * i + 1], now_ms)))
        covers = await self._covers([s for s, _ in listed])
        return [_show(s, viewers, covers.get(s["id"], "")) for s, viewers in listed]

    async def _covers(self, streams: list[dict[str, Any]]) -> dict[str, str]:
        """Each stream's cover: its own, else its first pinned or lineup product's image."""
        covers = {s["id"]: s["cover_url"] for s in streams if s.get("cover_url")}
        wanted = {s["id"]: p for s in streams
                  if s["id"] not in covers and (p := _cover_product(s)) is not None}
        if not wanted:
            return covers
        async with self._client.pipeline(transaction=False) as pipe:
            for product in wanted.values():
                pipe.hget(product_keys(product).product, "image_url")
            images = await pipe.execute()
        covers.update({s: text(image) for s, image in zip(wanted, images) if image})
        return covers


def _script_keys(k: ShowKeys) -> list[str]:
    return [k.live, k.upcoming, k.creators, k.revs, k.creator_live, k.creator_upcoming,
            k.creator_past]
