"""The Valkey key layout, in one place.

Everything a buy touches lives in the product's hash slot (`{p:<id>}`), so the buy script
runs unchanged on a Valkey Cluster. Streams, buyers, creators and brands have slots of their
own; aggregates fed from the outboxes share the `{agg}` slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from checkout.ids import BrandId, BuyerId, CreatorId, OrderId, ProductId, StreamId

__all__ = ["ProductKeys", "product_keys", "stream_key", "stream_events_key", "brand_products_key",
           "creator_links_key", "stream_seq_key", "stream_viewers_key", "stream_likes_key",
           "stream_unique_viewers_key", "cart_key", "buyer_events_key", "creator_streams_key", "link_key", "wallet_key", "buyer_orders_key",
           "idem_binding_key", "agg_key", "ACTIVE_PRODUCTS", "BRANDS", "STREAMS_INDEX"]

ACTIVE_PRODUCTS = "lc:products"  # set of product ids that have an outbox and reservations
BRANDS = "lc:brands"  # hash brand id -> JSON profile
STREAMS_INDEX = "lc:streams"  # sorted set of stream ids by scheduled time


@dataclass(frozen=True, slots=True)
class ProductKeys:
    product: str  # hash: catalog fields
    stock: str  # hash: avail:<v>, held:<v>, sold:<v>, total:<v>
    offers: str  # hash: <stream> -> offer JSON; dealsold:<stream> -> units
    invited: str  # set of creator ids allowed when commission is invite-only
    audit: str  # stream: stock changes (who, when, delta, why)
    outbox: str  # stream: order events for aggregates
    expiry: str  # sorted set: order id -> hold expiry (ms)
    bought: str  # hash: 'b:<buyer>', 'deal:<id>:<buyer>' -> units held or bought (limits)
    captures: str  # sorted set: authorized order id -> when its capture is owed (ms)
    voids: str  # sorted set: order id -> since when the gateway owes it a void (ms)
    tag: str

    def order(self, order: OrderId | str) -> str:
        return f"lc:{self.tag}:order:{order}"

    def idem(self, buyer: BuyerId | str, key: str) -> str:
        return f"lc:{self.tag}:idem:{buyer}:{key}"

    def stock_op(self, op_id: str) -> str:
        return f"lc:{self.tag}:stockop:{op_id}"

    def waitlist(self, variant: str) -> str:
        return f"lc:{self.tag}:waitlist:{variant}"


def product_keys(product: ProductId | str) -> ProductKeys:
    tag = "{p:" + product + "}"
    return ProductKeys(
        product=f"lc:{tag}:product", stock=f"lc:{tag}:stock", offers=f"lc:{tag}:offers",
        invited=f"lc:{tag}:invited", audit=f"lc:{tag}:audit", outbox=f"lc:{tag}:outbox",
        expiry=f"lc:{tag}:expiry", bought=f"lc:{tag}:bought", captures=f"lc:{tag}:captures",
        voids=f"lc:{tag}:voids",
        tag=tag,
    )


def stream_key(stream: StreamId | str) -> str:
    return f"lc:{{s:{stream}}}:stream"


def stream_events_key(stream: StreamId | str) -> str:
    return f"lc:{{s:{stream}}}:events"


def stream_seq_key(stream: StreamId | str) -> str:
    return f"lc:{{s:{stream}}}:seq"


def stream_viewers_key(stream: StreamId | str) -> str:
    """Hash: node id -> '<count>:<expires_ms>' (a node's share, valid until it expires)."""
    return f"lc:{{s:{stream}}}:viewers"


def stream_likes_key(stream: StreamId | str) -> str:
    return f"lc:{{s:{stream}}}:likes"


def stream_unique_viewers_key(stream: StreamId | str) -> str:
    """HyperLogLog of who joined the room (conversion = buyers / this)."""
    return f"lc:{{s:{stream}}}:uniq"


def cart_key(buyer: BuyerId | str) -> str:
    return f"lc:{{u:{buyer}}}:cart"


def buyer_events_key(buyer: BuyerId | str) -> str:
    return f"lc:{{u:{buyer}}}:events"


def brand_products_key(brand: BrandId | str) -> str:
    return f"lc:{{b:{brand}}}:products"


def creator_links_key(creator: CreatorId | str) -> str:
    return f"lc:{{c:{creator}}}:links"


def creator_streams_key(creator: CreatorId | str) -> str:
    return f"lc:{{c:{creator}}}:streams"


def link_key(code: str) -> str:
    return f"lc:link:{code}"


def wallet_key(buyer: BuyerId | str) -> str:
    return f"lc:{{u:{buyer}}}:wallet"


def buyer_orders_key(buyer: BuyerId | str) -> str:
    return f"lc:{{u:{buyer}}}:orders"


def idem_binding_key(buyer: BuyerId | str, key: str) -> str:
    """Binds an Idempotency-Key to one request fingerprint, whatever product it names."""
    return f"lc:{{u:{buyer}}}:idem:{key}"


def agg_key(name: str) -> str:
    return f"lc:{{agg}}:{name}"
