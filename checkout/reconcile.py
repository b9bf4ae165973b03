"""Reconciliation: every order against the gateway's record, stock and limits against the
orders, brand totals and creator earnings against the paid orders. It reads; it fixes
nothing, and it says what it found.

Work still owed is not a mismatch: an order mid-payment, a void or capture the sweeper has
yet to make, aggregates the aggregator has yet to fold are reported as `pending`. Run it
again once the node is quiet (or after `Aggregator.drain`) and they are gone; whatever is
left in `mismatches` means money or stock out of step, and needs an operator.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as redis

from checkout.aggregator import outbox_lag
from checkout.partitions import every_product
from checkout.store.keys import brand_agg_keys, creator_agg_keys, product_keys
from checkout.store.replies import int_hash, members
from checkout.order_states import CAPTURED, PENDING, OrderState
from checkout.orders import Order, order_from_fields
from checkout.payments import PaymentGateway, PaymentRecord

__all__ = ["Finding", "Reconciliation", "reconcile", "GATEWAY_STATES"]

S = OrderState
# What the gateway may hold for an order in each state once no work is owed on it. None:
# the gateway never saw it. A void of an order the gateway never saw leaves 'voided'.
GATEWAY_STATES: dict[OrderState, frozenset[str | None]] = {
    S.RESERVED: frozenset({None}),
    S.AUTHORIZED: frozenset({"authorized"}),
    S.PAID: frozenset({"captured"}),
    S.SHIPPED: frozenset({"captured"}),
    S.DELIVERED: frozenset({"captured"}),
    S.REFUNDED: frozenset({"captured"}),
    # captured (refunded in full): an instant charge that lost the race to this move
    S.DECLINED: frozenset({None, "declined", "voided", "captured"}),
    S.EXPIRED: frozenset({None, "declined", "voided", "captured"}),
    S.CANCELLED: frozenset({None}),
    S.VOIDED: frozenset({"voided", "captured"}),  # captured: a capture beat the void, refunded
}
# Orders that did not sell: whatever the gateway captured for them goes back in full.
UNSOLD = frozenset({S.DECLINED, S.EXPIRED, S.VOIDED})
SOLD = CAPTURED | {S.AUTHORIZED}  # units out of stock for good, unless restocked


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # gateway | stock | limit | brand | creator | aggregates | payment
    subject: str  # order id, product/variant, brand, creator, ...
    detail: str

    def public(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail}


@dataclass
class Reconciliation:
    orders: int = 0
    products: int = 0
    mismatches: list[Finding] = field(default_factory=list)
    pending: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def public(self) -> dict[str, Any]:
        return {"ok": self.ok, "orders": self.orders, "products": self.products,
                "mismatches": [f.public() for f in self.mismatches],
                "pending": [f.public() for f in self.pending]}


async def reconcile(client: redis.Redis, gateway: PaymentGateway, partitions: int
                    ) -> Reconciliation:
    """Check everything livecart holds about money and stock, over the products of every
    one of the `partitions` (whichever node sweeps them); see the module docstring."""
    report = Reconciliation()
    orders: list[Order] = []
    for product in await every_product(client, partitions):
        report.products += 1
        product_orders = await _orders_of(client, product)
        orders += product_orders
        await _check_product(client, gateway, product, product_orders, report)
    report.orders = len(orders)
    lag = await outbox_lag(client, partitions)
    if lag:
        report.pending.append(Finding("aggregates", "outbox", f"{lag} entries not folded yet"))
    else:
        await _check_totals(client, orders, report)
    return report


async def _orders_of(client: redis.Redis, product: str) -> list[Order]:
    k = product_keys(product)
    pattern = k.order("") + "*"  # the order id part is encoded: the glob goes after it
    orders = []
    async for key in client.scan_iter(match=pattern, count=1000):
        raw = await client.hgetall(key)
        if raw:
            orders.append(order_from_fields(raw))
    return orders


async def _check_product(client: redis.Redis, gateway: PaymentGateway, product: str,
                         orders: list[Order], report: Reconciliation) -> None:
    k = product_keys(product)
    voids_owed = set(members(await client.zrange(k.voids, 0, -1)))
    captures_owed = set(members(await client.zrange(k.captures, 0, -1)))
    for order in orders:
        record = await gateway.status(order.id)
        _check_gateway(order, record, order.id in voids_owed, order.id in captures_owed, report)
    stock = int_hash(await client.hgetall(k.stock))
    lots = [orjson.loads(v) for v in (await client.hgetall(k.lots)).values()]
    for variant in sorted({f.split(":", 1)[1] for f in stock}):
        mine = [o for o in orders if o.fields["variant"] == variant]
        levels = {b: stock.get(f"{b}:{variant}", 0)
                  for b in ("avail", "held", "sold", "lot", "total")}
        expected_lot = sum(1 for lot in lots
                           if lot["variant"] == variant and lot["state"] == "held")
        if levels["lot"] != expected_lot:  # auctions' lots (auction_lot.lua)
            report.mismatches.append(Finding(
                "stock", f"{product}/{variant}",
                f"lot {levels['lot']}, auctions hold {expected_lot}"))
        expected_held = _units(o for o in mine if o.state in PENDING)
        expected_sold = _units(o for o in mine if _sold(o))
        subject = f"{product}/{variant}"
        if levels["held"] != expected_held:
            report.mismatches.append(Finding(
                "stock", subject, f"held {levels['held']}, orders hold {expected_held}"))
        if levels["sold"] != expected_sold:
            report.mismatches.append(Finding(
                "stock", subject, f"sold {levels['sold']}, orders sold {expected_sold}"))
        if levels["total"] != (levels["avail"] + levels["held"] + levels["sold"]
                               + levels["lot"]) or min(
                levels.values()) < 0:
            report.mismatches.append(Finding("stock", subject, f"buckets out of step {levels}"))
    bought = int_hash(await client.hgetall(k.bought))
    per_buyer: dict[str, int] = defaultdict(int)
    for order in orders:
        if order.state in PENDING or _sold(order):
            per_buyer[order.fields["buyer"]] += order.fields["qty"]
    for buyer in sorted(set(per_buyer) | {f[2:] for f in bought if f.startswith("b:")}):
        counted = bought.get(f"b:{buyer}", 0)
        if counted != per_buyer.get(buyer, 0):
            report.mismatches.append(Finding(
                "limit", f"{product}/{buyer}",
                f"limit counts {counted}, orders hold {per_buyer.get(buyer, 0)}"))


def _check_gateway(order: Order, record: PaymentRecord, void_owed: bool, capture_owed: bool,
                   report: Reconciliation) -> None:
    state, seen = order.state, record.state
    if state is S.PAYING:
        report.pending.append(Finding("payment", order.id, f"mid-payment; gateway: {seen}"))
        return
    if void_owed and seen in ("authorized", "captured"):
        report.pending.append(Finding("gateway", order.id, f"{state}; a void is owed"))
        return
    if capture_owed and state is S.AUTHORIZED and seen == "captured":
        report.pending.append(Finding("gateway", order.id, "captured; the move to paid is owed"))
        return
    if order.fields.get("refund_pending_minor"):
        report.pending.append(Finding("gateway", order.id, f"{state}; a refund is owed"))
        return
    if seen not in GATEWAY_STATES[state]:
        report.mismatches.append(Finding("gateway", order.id,
                                         f"order {state}, gateway {seen or 'never saw it'}"))
        return
    amount = order.fields["amount_minor"]
    if seen in ("authorized", "captured") and record.amount_minor != amount:
        report.mismatches.append(Finding("gateway", order.id,
                                         f"amount {amount}, gateway {record.amount_minor}"))
    refunded_expected = (record.captured_minor if state in UNSOLD
                         else order.fields.get("refunded_minor") or 0)
    if seen == "captured" and record.refunded_minor != refunded_expected:
        report.mismatches.append(Finding(
            "gateway", order.id, f"order {state}, gateway refunded {record.refunded_minor}"))


async def _check_totals(client: redis.Redis, orders: list[Order],
                        report: Reconciliation) -> None:
    """Brand totals and creator earnings as the aggregator folded them, against the orders."""
    brands: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    creators: dict[tuple[str, str], int] = defaultdict(int)
    for order in orders:
        f = order.fields
        totals = brands[f["brand"]]
        if order.state in SOLD:  # sales, restocked or not (a refund leaves gmv as it was)
            totals["units"] += f["qty"]
            totals["orders"] += 1
            totals["gmv_minor"] += f["amount_minor"]
        if order.state in CAPTURED:
            totals["captured_minor"] += f["amount_minor"]
            totals["refunded_minor"] += f.get("refunded_minor") or 0
        if order.state in CAPTURED and f["creator"]:
            net = f["commission_minor"] - (f.get("commission_reversed_minor") or 0)
            totals["commission_minor"] += net
            creators[(f["creator"], f["currency"])] += net
    for brand, expected in sorted(brands.items()):
        folded = int_hash(await client.hgetall(brand_agg_keys(brand).totals))
        for name, value in sorted(expected.items()):
            if folded.get(name, 0) != value:
                report.mismatches.append(Finding(
                    "brand", brand, f"{name} is {folded.get(name, 0)}, orders say {value}"))
    for (creator, currency), earned in sorted(creators.items()):
        folded_earned = int(await client.hget(creator_agg_keys(creator).totals,
                                              f"earned_minor:{currency}") or 0)
        if folded_earned != earned:
            report.mismatches.append(Finding(
                "creator", creator,
                f"earned {folded_earned} {currency}, paid orders say {earned}"))


def _sold(order: Order) -> bool:
    """Its units are out of stock: sold, and not given back by a refund with restock."""
    return order.state in SOLD and order.fields.get("restocked") != "1"


def _units(orders: Iterable[Order]) -> int:
    return sum(o.fields["qty"] for o in orders)
