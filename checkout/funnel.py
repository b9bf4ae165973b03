"""A show's product funnel for the brands it sells for: views, clicks, cart adds, orders.

- Views and clicks come from the viewers' sockets (the hub's `product_seen` and
  `product_tap` frames), summed per tick in a `FunnelBatch` and written by `write_funnel`:
  one funnel.lua call per show, all of them in one pipeline, whatever the number of frames.
  A view is a viewer counted once per product and show (a HyperLogLog, like the room's
  unique viewers); a click is every tap.
- Cart adds are counted where an add with a stream succeeds (`count_cart_add`).
- Orders, units, GMV and buyers are the aggregator's (apply_stream.lua folds them per stream and
  product, as it folds the stream's own totals: counted at authorization, taken back when
  the order is voided, a refund leaving them as they are).
- `file_show` keeps, per brand, the shows that featured its products (`brand_shows_key`),
  and `show_funnel` reads one show's rows for one brand: only that brand's products, though
  a show can sell for several brands. Rates are computed on reading, never stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis

from checkout.ids import BrandId, ProductId, StreamId
from checkout.store.keys import (brand_shows_key, product_keys, stream_agg_keys,
                                 stream_funnel_key, stream_seen_key)
from checkout.store.replies import int_hash, members, text
from checkout.store.scripts import SCRIPTS, call_script, call_script_each

__all__ = ["Tally", "FunnelBatch", "write_funnel", "count_cart_add", "file_show",
           "brand_shows", "featured", "show_funnel", "rate"]

_COUNTS = ("clicks", "cart_adds", "cart_units")


@dataclass(slots=True)
class Tally:
    """One product's counts in one show since the last write."""

    clicks: int = 0
    cart_adds: int = 0
    cart_units: int = 0
    seen: list[str] = field(default_factory=list)  # viewer ids (the HyperLogLog dedupes)


class FunnelBatch:
    """What the hub's sockets counted since the last tick, summed per show and product."""

    def __init__(self) -> None:
        self._shows: dict[str, dict[str, Tally]] = {}

    def __bool__(self) -> bool:
        return bool(self._shows)

    def _tally(self, stream: str, product: str) -> Tally:
        return self._shows.setdefault(stream, {}).setdefault(product, Tally())

    def seen(self, stream: str, product: str, viewer: str) -> None:
        self._tally(stream, product).seen.append(viewer)

    def tapped(self, stream: str, product: str) -> None:
        self._tally(stream, product).clicks += 1

    def take(self) -> dict[str, dict[str, Tally]]:
        """The counts so far; the batch starts over empty."""
        shows, self._shows = self._shows, {}
        return shows


def _call(stream: str, tallies: Mapping[str, Tally]) -> tuple[list[str], list[str | int]]:
    """funnel.lua's KEYS and ARGV for one show's batch (the script's header)."""
    keys = [stream_funnel_key(stream)]
    args: list[str | int] = [len(tallies)]
    for product, tally in tallies.items():
        keys.append(stream_seen_key(stream, product))
        args += [product, tally.clicks, tally.cart_adds, tally.cart_units, len(tally.seen),
                 *tally.seen]
    return keys, args


async def write_funnel(client: redis.Redis, shows: Mapping[str, Mapping[str, Tally]]) -> None:
    """One funnel.lua call per show, in one pipeline (each call stays in its show's slot)."""
    calls = [_call(stream, tallies) for stream, tallies in shows.items() if tallies]
    await call_script_each(client, SCRIPTS["funnel"], calls)


async def count_cart_add(client: redis.Redis, stream: StreamId, product: ProductId,
                         units: int) -> None:
    """A cart add from the show succeeded: one more add, `units` more units."""
    await write_funnel(client, {stream: {product: Tally(cart_adds=1, cart_units=units)}})


async def file_show(client: redis.Redis, stream: StreamId, products: Iterable[str],
                    when_ms: int) -> None:
    """File the show with each brand whose product it features, at `when_ms` (a show
    filed again moves to its new time). Each brand's index is in its own slot."""
    wanted = list(dict.fromkeys(products))
    if not wanted:
        return
    async with client.pipeline(transaction=False) as pipe:
        for product in wanted:
            pipe.hget(product_keys(product).product, "brand_id")
        brands = {text(b) for b in await pipe.execute() if b}
    async with client.pipeline(transaction=False) as pipe:
        for brand in sorted(brands):
            pipe.zadd(brand_shows_key(brand), {stream: when_ms})
        await pipe.execute()


async def brand_shows(client: redis.Redis, brand: BrandId, cursor: int,
                      limit: int) -> tuple[list[StreamId], int | None]:
    """A page of the brand's shows, latest first, and the next cursor."""
    ids = members(await client.zrevrange(brand_shows_key(brand), cursor, cursor + limit - 1))
    return [StreamId(i) for i in ids], cursor + limit if len(ids) == limit else None


async def featured(client: redis.Redis, brand: BrandId, stream: StreamId) -> bool:
    """Whether the show featured the brand's products (it is in the brand's shows)."""
    return await client.zscore(brand_shows_key(brand), stream) is not None


def rate(part: int, whole: int) -> float:
    """part / whole, 0 when there is no whole, at most 1: buyers who came by a link or the
    API never tapped the card, and one viewer may tap it many times, so a raw ratio could
    read 600%."""
    return round(min(1.0, part / whole), 4) if whole > 0 else 0.0


async def show_funnel(client: redis.Redis, brand: BrandId, stream: StreamId,
                      lineup: Iterable[str]) -> list[dict[str, Any]]:
    """The brand's products in the show, lineup order first, each with its funnel: views,
    clicks, cart adds and units, orders, units, GMV, buyers, click-through and conversion.
    The products are the lineup's and any other that has counts in the show (it left the
    lineup since); those of another brand are left out."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(stream_funnel_key(stream))
        pipe.hgetall(stream_agg_keys(stream).totals)
        funnel_raw, sales_raw = await pipe.execute()
    funnel, sales = int_hash(funnel_raw), int_hash(sales_raw)
    counted = {f.rpartition(":")[0] for f in funnel}
    counted |= {f.split(":")[1] for f in sales if f.startswith("product:")}
    candidates = list(dict.fromkeys([*lineup, *sorted(counted)]))
    async with client.pipeline(transaction=False) as pipe:
        for product in candidates:
            pipe.hmget(product_keys(product).product, "brand_id", "title", "currency")
        cards = await pipe.execute()
    mine = [(p, text(title), text(currency)) for p, (owner, title, currency)
            in zip(candidates, cards) if owner is not None and text(owner) == brand]
    async with client.pipeline(transaction=False) as pipe:
        for product, _, _ in mine:
            pipe.pfcount(stream_seen_key(stream, product))
            pipe.pfcount(stream_agg_keys(stream).buyers_of(product))
        counts = await pipe.execute()
    rows = []
    for i, (product, title, currency) in enumerate(mine):
        views, buyers = counts[2 * i], counts[2 * i + 1]
        row: dict[str, Any] = {"product_id": product, "title": title, "currency": currency,
                               "views": views}
        row.update({name: funnel.get(f"{product}:{name}", 0) for name in _COUNTS})
        row.update({name: sales.get(f"product:{product}:{name}", 0)
                    for name in ("orders", "units", "gmv_minor")})
        row.update(buyers=buyers, click_through=rate(row["clicks"], views),
                   conversion=rate(buyers, row["clicks"]))
        rows.append(row)
    return rows
