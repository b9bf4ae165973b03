"""A creator's earnings broken down (per show, per brand, per product) and the statement of
a period as CSV, both from what apply_creator.lua folded: the breakdown fields of the creator's
totals hash and the commission ledger. Integers in minor units throughout, so a statement's
totals are the ledger's to the cent."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as redis

from checkout.errors import Refused
from checkout.ids import CreatorId, product_of_order
from checkout.money import minor_digits
from checkout.store.keys import creator_agg_keys
from checkout.store.replies import int_hash, text_entries

__all__ = ["earnings_breakdown", "statement_csv", "StatementTooLarge", "STATEMENT_COLUMNS"]

STATEMENT_COLUMNS = ("booked_at", "order_id", "kind", "brand_id", "product_id", "stream_id",
                     "currency", "sale_minor", "commission_minor", "sale", "commission")
_CHUNK = 1000  # ledger entries read per XRANGE


class StatementTooLarge(Refused):
    def __init__(self, rows: int) -> None:
        super().__init__(422, "statement-too-large",
                         f"the period has more than {rows} ledger entries (statement_max_rows)")


async def earnings_breakdown(client: redis.Redis, creator: CreatorId) -> dict[str, Any]:
    """{"shows": [...], "replays": [...], "brands": [...], "products": [...]}: each row an id
    and currency with its commission, sales and orders (net of refunds); show "-" holds link
    sales; a show's replay sales (channel `replay`) are its row in "replays", not in "shows"."""
    fields = int_hash(await client.hgetall(creator_agg_keys(creator).totals))
    groups: dict[str, dict[tuple[str, str], dict[str, int]]] = {
        "show": {}, "replay": {}, "brand": {}, "product": {}}
    for field, value in fields.items():
        parts = field.split(":")
        if len(parts) != 4 or parts[0] not in groups:
            continue  # the totals (earned_minor:<currency>, orders)
        dim, id_, currency, metric = parts
        row = groups[dim].setdefault((id_, currency), {})
        row[metric + ("_minor" if metric != "orders" else "")] = value
    out: dict[str, Any] = {"creator_id": creator}
    for dim, rows in groups.items():
        name = {"show": "stream_id", "replay": "stream_id", "brand": "brand_id",
                "product": "product_id"}[dim]
        listed: list[dict[str, Any]] = [
            {name: id_, "currency": currency, "commission_minor": 0, "sales_minor": 0,
             "orders": 0, **metrics} for (id_, currency), metrics in rows.items()]
        out[dim + "s"] = sorted(listed, key=lambda r: (-r["commission_minor"], r[name]))
    return out


def _decimal(minor: int, currency: str) -> str:
    """Minor units as a decimal string ('-1.50'), by integer arithmetic."""
    digits = minor_digits(currency)
    sign, value = ("-" if minor < 0 else ""), abs(minor)
    if digits == 0:
        return f"{sign}{value}"
    whole, part = divmod(value, 10**digits)
    return f"{sign}{whole}.{part:0{digits}d}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


async def statement_csv(client: redis.Redis, creator: CreatorId, start_ms: int, end_ms: int,
                        max_rows: int) -> str:
    """Every ledger entry booked in [start_ms, end_ms) (the time apply_creator.lua entered it, which
    is its entry id), oldest first, then one `total` row per currency."""
    ledger = creator_agg_keys(creator).ledger
    rows: list[list[str]] = []
    totals: dict[str, list[int]] = {}
    cursor = str(start_ms)
    while True:  # an id of milliseconds alone stands for all of that millisecond's entries
        chunk = text_entries(await client.xrange(ledger, cursor, str(end_ms - 1), count=_CHUNK))
        for entry_id, e in chunk:
            if len(rows) >= max_rows:
                raise StatementTooLarge(max_rows)
            sale, commission = int(e["amount_minor"]), int(e["commission_minor"])
            currency = e["currency"]
            total = totals.setdefault(currency, [0, 0])
            total[0] += sale
            total[1] += commission
            rows.append([_iso(int(entry_id.split("-")[0])), e["order"], e["kind"], e["brand"],
                         e.get("product") or product_of_order(e["order"]) or "",
                         e.get("stream", ""), currency, str(sale), str(commission),
                         _decimal(sale, currency), _decimal(commission, currency)])
        if len(chunk) < _CHUNK:
            break
        cursor = "(" + chunk[-1][0]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(STATEMENT_COLUMNS)
    writer.writerows(rows)
    for currency, (sale, commission) in sorted(totals.items()):
        writer.writerow(["total", "", "", "", "", "", currency, sale, commission,
                         _decimal(sale, currency), _decimal(commission, currency)])
    return out.getvalue()
