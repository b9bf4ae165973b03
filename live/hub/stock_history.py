"""A live show's stock as its room saw it, for the replay's "left then" (docs/recording.md,
"Stock then"). The hub already reads every room's stock each tick; after a tick that read a
change it records the changed products (stock_history.lua: only a live show, only what
differs from the last recorded value, so any number of hubs serving one show write each
change once). The history is a capped Valkey stream in the show's slot, cleared with the
show's recording."""

from __future__ import annotations

from typing import Any, Final

import orjson
import redis.asyncio as redis
from redis.typing import EncodableT

from checkout.store.keys import stock_history_keys, stream_key
from checkout.store.replies import entries
from checkout.store.scripts import SCRIPTS, call_script_each

__all__ = ["STOCK_HISTORY_MAX", "levels_json", "record_stock", "read_stock_history",
           "stock_history_key_names"]

# Entries kept per show (one per tick with a change): 20,000 ticks of changes is over half
# an hour of a buy storm changing stock every 100 ms tick, and a few MB at most per show.
# Beyond it the oldest go; the replay then takes a product's oldest kept level for the
# moments before it.
STOCK_HISTORY_MAX: Final = 20_000


def levels_json(levels: dict[str, int]) -> bytes:
    """A product's levels as the script compares them: keys sorted, one spelling."""
    return orjson.dumps(levels, option=orjson.OPT_SORT_KEYS)


async def record_stock(client: redis.Redis, changes: dict[str, tuple[int, dict[str, dict[str, int]]]],
                       limit: int = STOCK_HISTORY_MAX) -> dict[str, int]:
    """Record each show's changed stock: stream -> (read ms, product -> levels). One
    pipeline, one script call per show; returns how many products each appended."""
    calls = []
    for stream_id, (read_ms, stock) in changes.items():
        if not stock:
            continue
        keys = stock_history_keys(stream_id)
        args: list[EncodableT] = [read_ms, limit]
        for product, levels in stock.items():
            args += [product, levels_json(levels)]
        calls.append((stream_id, [stream_key(stream_id), keys.history, keys.last], args))
    results = await call_script_each(client, SCRIPTS["stock_history"],
                                     [(keys_, args_) for _, keys_, args_ in calls])
    return {stream_id: int(r) for (stream_id, _, _), r in zip(calls, results)
            if not isinstance(r, Exception)}


async def read_stock_history(client: redis.Redis, stream_id: str) -> list[dict[str, Any]]:
    """The show's recorded stock changes, oldest first: {at_ms, stock: product -> levels}
    (a state tick's `stock` field)."""
    out = []
    for _, fields in entries(await client.xrange(stock_history_keys(stream_id).history)):
        at_ms = int(fields.pop(b"at_ms"))
        out.append({"at_ms": at_ms,
                    "stock": {k.decode(): orjson.loads(v) for k, v in fields.items()}})
    return out


def stock_history_key_names(stream_id: str) -> list[str]:
    """The keys to delete with the show's recording."""
    keys = stock_history_keys(stream_id)
    return [keys.history, keys.last]
