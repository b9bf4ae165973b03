"""The money reports, read from the aggregates (checkout/aggregator.py folds them): a
brand's totals and payout, a creator's earnings and ledger. Shared by the HTTP API and the
live money feeds."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as redis

from checkout.ids import BrandId, CreatorId, StreamId
from checkout.store.keys import brand_agg_keys, creator_agg_keys, stream_agg_keys
from checkout.store.replies import int_hash, text_entries

__all__ = ["brand_report", "creator_earnings", "stream_stats", "STREAM_METRICS"]

# A show's row in the brand's report: what it sold live, and apart what its replay sold
# (channel `replay`, after it ended); a show with none of one has zeros there.
STREAM_METRICS = ("units", "orders", "gmv_minor", "replay_units", "replay_orders",
                  "replay_gmv_minor")


async def brand_report(client: redis.Redis, brand_id: BrandId) -> dict[str, Any]:
    """Totals that add up to the cent: payout = captured - refunded - net commission."""
    keys = brand_agg_keys(brand_id)
    totals = int_hash(await client.hgetall(keys.totals))
    per_product: dict[str, dict[str, int]] = {}
    per_stream: dict[str, dict[str, int]] = {}
    for field, value in int_hash(await client.hgetall(keys.breakdown)).items():
        if field.startswith("stream:"):
            stream, _, metric = field[7:].partition(":")
            per_stream.setdefault(stream, {})[metric] = value
        else:
            product, _, metric = field.partition(":")
            per_product.setdefault(product, {})[metric] = value
    now_min = int(time.time() // 60) * 60
    minutes = int_hash(await client.hgetall(keys.minutes))
    per_minute = [{"minute": m, "gmv_minor": minutes.get(str(m), 0),
                   "orders": minutes.get(f"{m}:orders", 0)}
                  for m in range(now_min - 59 * 60, now_min + 60, 60)]
    captured = totals.get("captured_minor", 0)
    refunded = totals.get("refunded_minor", 0)
    commission = totals.get("commission_minor", 0)
    return {
        "brand_id": brand_id,
        "units": totals.get("units", 0), "orders": totals.get("orders", 0),
        "gmv_minor": totals.get("gmv_minor", 0), "captured_minor": captured,
        "refunded_minor": refunded, "commission_minor": commission,
        "payout_minor": captured - refunded - commission,
        "products": [{"product_id": p, **m} for p, m in sorted(per_product.items())],
        "streams": [{"stream_id": s, **{k: m.get(k, 0) for k in STREAM_METRICS}}
                    for s, m in sorted(per_stream.items())],
        "per_minute": per_minute,
    }


async def creator_earnings(client: redis.Redis, creator: CreatorId,
                           limit: int = 100) -> dict[str, Any]:
    keys = creator_agg_keys(creator)
    totals = int_hash(await client.hgetall(keys.totals))
    entries = await client.xrevrange(keys.ledger, count=limit)
    ledger: list[dict[str, Any]] = [fields for _, fields in text_entries(entries)]
    for entry in ledger:
        entry["commission_minor"] = int(entry["commission_minor"])
        entry["amount_minor"] = int(entry["amount_minor"])
        entry.setdefault("channel", "")  # entries folded before the ledger named it
    earned = {k.split(":", 1)[1]: v for k, v in totals.items() if k.startswith("earned_minor:")}
    # Of which from shows' replays: the 'replay:<stream>:<currency>:commission' breakdowns.
    replay: dict[str, int] = {}
    for field, value in totals.items():
        parts = field.split(":")
        if len(parts) == 4 and parts[0] == "replay" and parts[3] == "commission":
            replay[parts[2]] = replay.get(parts[2], 0) + value
    return {"creator_id": creator, "earned_minor": earned, "replay_earned_minor": replay,
            "orders": totals.get("orders", 0), "ledger": ledger}


async def stream_stats(client: redis.Redis, stream_id: StreamId) -> dict[str, Any]:
    """A stream's live sales and the head of its 'just bought' ticker; its replay's sales
    apart (`replay`), which neither the live counters nor the ticker show."""
    keys = stream_agg_keys(stream_id)
    totals = int_hash(await client.hgetall(keys.totals))
    ticker = [orjson.loads(x) for x in await client.lrange(keys.ticker, 0, 19)]
    return {"stream_id": stream_id, "units": totals.get("units", 0),
            "orders": totals.get("orders", 0), "gmv_minor": totals.get("gmv_minor", 0),
            "replay": {"units": totals.get("replay_units", 0),
                       "orders": totals.get("replay_orders", 0),
                       "gmv_minor": totals.get("replay_gmv_minor", 0)},
            "just_bought": ticker}
