"""The Valkey key layout, in one place.

Everything a buy touches lives in the product's hash slot (`{p:<id>}`), so the buy script
runs unchanged on a Valkey Cluster. Streams, buyers, creators and brands have slots of their
own; the aggregates fed from the outboxes live in their owners' slots (a brand's in
`{b:<brand>}`, a stream's in `{s:<stream>}`, a creator's in `{c:<creator>}`), so no one
shard folds every sale; webhooks live in their owners' partitions (`{wh:<k>}`), so no one
shard delivers every brand's.

Every variable part of a key (an id, a buyer, an Idempotency-Key) goes through `key_part`:
`:` separates parts and `{`/`}` choose the hash slot, and buyer ids and Idempotency-Keys may
contain `:`, so a raw part could pose as two (buyer `a:b` + key `c` = buyer `a` + key `b:c`)
or move a key to another slot. Ids of `ID_PATTERN` come out unchanged. This is pre-1.0 with
no deployed data, so keys written before the encoding existed are not migrated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from checkout.ids import BrandId, BuyerId, CreatorId, OrderId, ProductId, StreamId

__all__ = ["key_part", "ProductKeys", "product_keys", "stream_key", "stream_events_key", "brand_products_key",
           "creator_links_key", "stream_seq_key", "stream_viewers_key", "stream_likes_key",
           "stream_unique_viewers_key", "stream_funnel_key", "stream_seen_key",
           "brand_shows_key", "cart_key", "buyer_events_key", "creator_streams_key", "link_key", "wallet_key", "token_owner_key", "buyer_orders_key",
           "idem_binding_key", "BrandAggKeys", "brand_agg_keys", "StreamAggKeys",
           "stream_agg_keys", "CreatorAggKeys", "creator_agg_keys",
           "PartitionKeys", "partition_keys", "NODES", "BRANDS", "STREAMS_INDEX",
           "ShowKeys", "show_keys", "ProgramKeys", "program_keys", "creator_programs_key",
           "PROGRAMS", "HookKeys", "hook_keys", "LEGACY_HOOKS", "ChatKeys", "chat_keys",
           "channel_chat_keys",
           "AuctionKeys", "auction_keys", "stream_auction_key", "AUCTIONS_DUE",
           "StockHistoryKeys", "stock_history_keys"]

NODES = "lc:nodes"  # sorted set: node id -> until when its heartbeat holds (ms)
BRANDS = "lc:brands"  # hash brand id -> JSON profile
STREAMS_INDEX = "lc:streams"  # sorted set of stream ids by scheduled time
PROGRAMS = "lc:programs"  # sorted set: brand id -> when its affiliate program started (ms)
# Sorted set: '<stream>/<auction>' -> when the auction desk looks at it next (ms): an open
# auction's (lower-bound) deadline, a second chance's, a charge's retry. One member per
# auction, written a few times in its life: a small index, not a hot slot.
AUCTIONS_DUE = "lc:auctions:due"
_SHOWS = "lc:{shows}"  # the discovery indexes (live/streams/shows.py), all in one slot


def key_part(value: str) -> str:
    """One variable part of a key, percent-encoded (RFC 3986): injective, and the result
    holds no `:`, `{`, `}` or `*`, so it can neither split into two parts nor pick a slot."""
    if _UNRESERVED.fullmatch(value):  # nearly every id: what quote() leaves as it is
        return value
    return quote(value, safe="")


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # RFC 3986 unreserved: never percent-encoded


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
    refunds: str  # sorted set: order id with a refund opened, not settled -> when it is owed (ms)
    lots: str  # hash: auction lot id '<stream>/<auction>' -> its record (auction_lot.lua)
    tag: str

    def order(self, order: OrderId | str) -> str:
        return f"lc:{self.tag}:order:{key_part(order)}"

    def idem(self, buyer: BuyerId | str, key: str) -> str:
        return f"lc:{self.tag}:idem:{key_part(buyer)}:{key_part(key)}"

    def stock_op(self, op_id: str) -> str:
        return f"lc:{self.tag}:stockop:{key_part(op_id)}"

    def waitlist(self, variant: str) -> str:
        return f"lc:{self.tag}:waitlist:{key_part(variant)}"


def product_keys(product: ProductId | str) -> ProductKeys:
    tag = "{p:" + key_part(product) + "}"
    return ProductKeys(
        product=f"lc:{tag}:product", stock=f"lc:{tag}:stock", offers=f"lc:{tag}:offers",
        invited=f"lc:{tag}:invited", audit=f"lc:{tag}:audit", outbox=f"lc:{tag}:outbox",
        expiry=f"lc:{tag}:expiry", bought=f"lc:{tag}:bought", captures=f"lc:{tag}:captures",
        voids=f"lc:{tag}:voids", refunds=f"lc:{tag}:refunds", lots=f"lc:{tag}:lots",
        tag=tag,
    )


def stream_key(stream: StreamId | str) -> str:
    return f"lc:{{s:{key_part(stream)}}}:stream"


def stream_events_key(stream: StreamId | str) -> str:
    return f"lc:{{s:{key_part(stream)}}}:events"


def stream_seq_key(stream: StreamId | str) -> str:
    return f"lc:{{s:{key_part(stream)}}}:seq"


def stream_viewers_key(stream: StreamId | str) -> str:
    """Hash: node id -> '<count>:<expires_ms>' (a node's share, valid until it expires)."""
    return f"lc:{{s:{key_part(stream)}}}:viewers"


@dataclass(frozen=True, slots=True)
class StockHistoryKeys:
    """A live show's stock as its room saw it (stock_history.lua, docs/recording.md)."""

    history: str  # stream: one entry per change the hubs saw: at_ms, product -> levels JSON
    last: str  # hash: product -> '<read ms> <levels JSON>', the last recorded of each


def stock_history_keys(stream: StreamId | str) -> StockHistoryKeys:
    base = f"lc:{{s:{key_part(stream)}}}"
    return StockHistoryKeys(history=f"{base}:stockhist", last=f"{base}:stocklast")


def stream_likes_key(stream: StreamId | str) -> str:
    return f"lc:{{s:{key_part(stream)}}}:likes"


def stream_unique_viewers_key(stream: StreamId | str) -> str:
    """HyperLogLog of who joined the room (conversion = buyers / this)."""
    return f"lc:{{s:{key_part(stream)}}}:uniq"


def stream_funnel_key(stream: StreamId | str) -> str:
    """Hash: '<product>:clicks', '<product>:cart_adds', '<product>:cart_units' of the show
    (checkout/funnel.py, funnel.lua)."""
    return f"lc:{{s:{key_part(stream)}}}:funnel"


def stream_seen_key(stream: StreamId | str, product: ProductId | str) -> str:
    """HyperLogLog of the viewers who saw the product's card in the show (its views)."""
    return f"lc:{{s:{key_part(stream)}}}:seen:{key_part(product)}"


@dataclass(frozen=True, slots=True)
class ChatKeys:
    """A show's chat, all in its stream's slot with the stream hash and its event log, so
    chat_post.lua and chat_moderate.lua each decide in one step (docs/chat.md)."""

    log: str  # stream: the posted messages (field m: the message JSON without its id)
    cfg: str  # hash: slow_s, followers_only, keyword, claim_mode, announcement, cleared_ms
    bans: str  # hash: chat user -> until ms (0: for good); the channel's bans are copied in
    last: str  # hash: chat user -> '<ms>|<text hash>' of its last message (rate, duplicates)
    held: str  # hash: held id -> the message JSON, until approved or rejected
    audit: str  # stream: moderation actions (who, what, target, when)
    buyers: str  # set: buyers with a paid order of this show (the `buyer` badge)
    reactions: str  # hash: emoji -> count
    claims: str  # stream: comment-to-buy claims and their outcomes (field c: JSON), capped
    claim_tries: str  # hash: '<buyer>|<claim>' -> its attempt; '<...>#r' -> what it recorded


def chat_keys(stream: StreamId | str) -> ChatKeys:
    tag = f"{{s:{key_part(stream)}}}"
    return ChatKeys(log=f"lc:{tag}:chat", cfg=f"lc:{tag}:chatcfg", bans=f"lc:{tag}:chatbans",
                    last=f"lc:{tag}:chatlast", held=f"lc:{tag}:held",
                    audit=f"lc:{tag}:chataudit", buyers=f"lc:{tag}:buyers",
                    reactions=f"lc:{tag}:reactions", claims=f"lc:{tag}:claims",
                    claim_tries=f"lc:{tag}:claimtries")


@dataclass(frozen=True, slots=True)
class AuctionKeys:
    """A live auction, in its stream's slot with the stream's event log and the show's chat
    bans, so auction.lua decides a bid, logs it and announces it in one step
    (docs/auctions.md)."""

    auction: str  # hash: the terms, the state, the price, the high bidder, the clock
    bids: str  # stream: every bid and its outcome (accepted or why refused), for the brand
    maxes: str  # hash: bidder -> their max bid (minor units)
    bid_ids: str  # hash: bid id -> its answer (a retried bid is answered the same)
    paddles: str  # hash: bidder -> paddle number (1, 2, ...: what viewers see of a bidder)
    max_at: str  # hash: bidder -> the bid count when their max was set (ties: the earlier)
    live: str  # the show's: its latest accepted bid's public fields (stream_auction_key)


def stream_auction_key(stream: StreamId | str) -> str:
    """A show's auction as viewers see it after its latest accepted bid (JSON: the public
    fields of docs/auctions.md). Bids are not sequenced events: the hub reads this each tick
    and sends what changed in its state frame, as it does stock and sales."""
    return f"lc:{{s:{key_part(stream)}}}:auctionlive"


def auction_keys(stream: StreamId | str, auction: str) -> AuctionKeys:
    base = f"lc:{{s:{key_part(stream)}}}:auction:{key_part(auction)}"
    return AuctionKeys(auction=base, bids=f"{base}:bids", maxes=f"{base}:maxes",
                       bid_ids=f"{base}:bidids", paddles=f"{base}:paddles",
                       max_at=f"{base}:maxat", live=stream_auction_key(stream))


def channel_chat_keys(creator: CreatorId | str) -> tuple[str, str]:
    """A creator channel's chat bans (hash: chat user -> until ms, 0 for good) and blocked
    words (set), in the creator's slot."""
    tag = f"{{c:{key_part(creator)}}}"
    return f"lc:{tag}:chatbans", f"lc:{tag}:blocked"


def cart_key(buyer: BuyerId | str) -> str:
    return f"lc:{{u:{key_part(buyer)}}}:cart"


def buyer_events_key(buyer: BuyerId | str) -> str:
    return f"lc:{{u:{key_part(buyer)}}}:events"


def brand_products_key(brand: BrandId | str) -> str:
    return f"lc:{{b:{key_part(brand)}}}:products"


def brand_shows_key(brand: BrandId | str) -> str:
    """Sorted set: the shows that featured the brand's products -> when (started, else
    scheduled, ms), filed by checkout/funnel.py after each lineup or lifecycle change."""
    return f"lc:{{b:{key_part(brand)}}}:shows"


def creator_links_key(creator: CreatorId | str) -> str:
    return f"lc:{{c:{key_part(creator)}}}:links"


def creator_streams_key(creator: CreatorId | str) -> str:
    return f"lc:{{c:{key_part(creator)}}}:streams"


def link_key(code: str) -> str:
    return f"lc:link:{key_part(code)}"


def wallet_key(buyer: BuyerId | str) -> str:
    """Hash: the buyer's addresses and cards and their defaults (checkout/wallets.py)."""
    return f"lc:{{u:{key_part(buyer)}}}:wallet"


def token_owner_key(token_digest: str) -> str:
    """String: the buyer who first saved a payment token, by the token's SHA-256 (hex), so
    no token appears in a key name (checkout/wallets.py)."""
    return f"lc:{{tk:{key_part(token_digest)}}}:owner"


def buyer_orders_key(buyer: BuyerId | str) -> str:
    return f"lc:{{u:{key_part(buyer)}}}:orders"


def idem_binding_key(buyer: BuyerId | str, key: str) -> str:
    """Binds an Idempotency-Key to one request fingerprint, whatever product it names."""
    return f"lc:{{u:{key_part(buyer)}}}:idem:{key_part(key)}"


@dataclass(frozen=True, slots=True)
class ShowKeys:
    """The discovery indexes: what is live and what is coming, across every creator and
    per creator, kept by show_index.lua in the one `{shows}` slot."""

    live: str  # sorted set: stream id -> started_ms
    upcoming: str  # sorted set: stream id -> scheduled_ms
    creators: str  # sorted set: creator id -> when they last scheduled or went live (ms)
    revs: str  # hash: stream id -> the stream's rev the indexes were last written for
    creator_live: str  # sorted set: the creator's live stream ids -> started_ms
    creator_upcoming: str  # sorted set: the creator's scheduled stream ids -> scheduled_ms
    creator_past: str  # sorted set: the creator's ended stream ids -> ended_ms


def show_keys(creator: CreatorId | str) -> ShowKeys:
    mine = f"{_SHOWS}:creator:{key_part(creator)}"
    return ShowKeys(live=f"{_SHOWS}:live", upcoming=f"{_SHOWS}:upcoming",
                    creators=f"{_SHOWS}:creators", revs=f"{_SHOWS}:revs",
                    creator_live=f"{mine}:live", creator_upcoming=f"{mine}:upcoming",
                    creator_past=f"{mine}:past")


def _applied(base: str, order: OrderId | str, kind: str, refund: str | None) -> str:
    """The dedupe record of one part's fold of one order event (per refund for refunds)."""
    parts = [order, kind] if refund is None else [order, kind, refund]
    return ":".join([f"{base}:applied", *map(key_part, parts)])


@dataclass(frozen=True, slots=True)
class BrandAggKeys:
    """A brand's aggregates, in the brand's slot: apply_brand.lua folds them."""

    totals: str  # hash: units, orders, gmv_minor, captured_minor, refunded_minor, commission_minor
    minutes: str  # hash: '<minute s>' -> GMV, '<minute s>:orders' -> orders
    breakdown: str  # hash: '<product>:units|gmv_minor', 'stream:<id>:units|gmv_minor'
    orders: str  # sorted set: sold order id -> created_ms (the brand's order list)

    def applied(self, order: OrderId | str, kind: str, refund: str | None = None) -> str:
        return _applied(self.totals, order, kind, refund)


def brand_agg_keys(brand: BrandId | str) -> BrandAggKeys:
    base = f"lc:{{b:{key_part(brand)}}}:agg"
    return BrandAggKeys(totals=base, minutes=f"{base}:min", breakdown=f"{base}:products",
                        orders=f"{base}:orders")


@dataclass(frozen=True, slots=True)
class StreamAggKeys:
    """A stream's sales aggregates, in the stream's slot: apply_stream.lua folds them."""

    totals: str  # hash: units, orders, gmv_minor, 'product:<id>:units|orders|gmv_minor'
    ticker: str  # list: the last sales, masked buyer, newest first
    buyers: str  # HyperLogLog: the show's buyers

    def buyers_of(self, product: ProductId | str) -> str:
        """HyperLogLog: the show's buyers of one product (the show's funnel)."""
        return f"{self.buyers}:{key_part(product)}"

    def applied(self, order: OrderId | str, kind: str, refund: str | None = None) -> str:
        return _applied(self.totals, order, kind, refund)


def stream_agg_keys(stream: StreamId | str) -> StreamAggKeys:
    base = f"lc:{{s:{key_part(stream)}}}:agg"
    return StreamAggKeys(totals=base, ticker=f"{base}:ticker", buyers=f"{base}:buyers")


@dataclass(frozen=True, slots=True)
class CreatorAggKeys:
    """A creator's earnings and commission ledger, in the creator's slot: apply_creator.lua
    folds them."""

    totals: str  # hash: earned_minor:<currency>, orders, '<show|brand|product>:<id>:<cur>:<metric>'
    ledger: str  # stream: one credit or reversal per commission moved

    def applied(self, order: OrderId | str, kind: str, refund: str | None = None) -> str:
        return _applied(self.totals, order, kind, refund)


def creator_agg_keys(creator: CreatorId | str) -> CreatorAggKeys:
    base = f"lc:{{c:{key_part(creator)}}}:agg"
    return CreatorAggKeys(totals=base, ledger=f"{base}:ledger")


@dataclass(frozen=True, slots=True)
class PartitionKeys:
    """One partition of the products (checkout/partitions.py), in a slot of its own."""

    products: str  # set: the product ids of the partition (outbox, holds and debts)
    lease: str  # string: the node id sweeping, folding (and delivering the webhooks of) the
    # partition, with an expiry


def partition_keys(partition: int) -> PartitionKeys:
    tag = f"{{pp:{partition}}}"
    return PartitionKeys(products=f"lc:{tag}:products", lease=f"lc:{tag}:lease")


@dataclass(frozen=True, slots=True)
class ProgramKeys:
    """A brand's affiliate program (checkout/programs.py), in the brand's slot: program.lua
    moves an application and its per-state lists together."""

    settings: str  # hash: default_bps, mode, created_ms, updated_ms
    rates: str  # hash: product id -> its own commission (bps), else the default applies
    applications: str  # hash: creator id -> the application (JSON)
    pending: str  # sorted sets: creator id -> when it entered that state (ms)
    approved: str
    rejected: str
    removed: str

    def state(self, state: str) -> str:
        return {"pending": self.pending, "approved": self.approved, "rejected": self.rejected,
                "removed": self.removed}[state]


def program_keys(brand: BrandId | str) -> ProgramKeys:
    base = f"lc:{{b:{key_part(brand)}}}:program"
    return ProgramKeys(settings=base, rates=f"{base}:rates", applications=f"{base}:apps",
                       pending=f"{base}:pending", approved=f"{base}:approved",
                       rejected=f"{base}:rejected", removed=f"{base}:removed")


def creator_programs_key(creator: CreatorId | str) -> str:
    """Sorted set: the brands a creator applied to -> when (ms); the state is the brand's."""
    return f"lc:{{c:{key_part(creator)}}}:programs"


@dataclass(frozen=True, slots=True)
class HookKeys:
    """Outbound webhooks (docs/webhooks.md) of the owners (`brand:<id>`, `operator`) of one
    webhook partition (checkout/webhook_events.py `owner_partition`), all in that
    partition's `{wh:<k>}` slot, so that one script registers an event, fans it out to the
    partition's subscribed endpoints and queues the deliveries. Every brand's events in one
    slot made one shard carry every webhook of a cluster. Per-endpoint and per-delivery keys
    are `prefix` + a part."""

    prefix: str
    outbox: str  # stream: deliveries ready to be attempted (consumer group `hooks`)
    retry: str  # sorted set: delivery id -> when its next attempt is due (ms)
    counter: str  # string: the last delivery number
    delivery_prefix: str  # delivery ids are this + the counter (unique across partitions)

    def endpoint(self, endpoint_id: str) -> str:
        return f"{self.prefix}ep:{key_part(endpoint_id)}"

    def owner(self, owner: str) -> str:
        """Set: the endpoints of one owner (`brand:<id>` or `operator`)."""
        return f"{self.prefix}owner:{key_part(owner)}"

    def event(self, event_id: str) -> str:
        return f"{self.prefix}evt:{key_part(event_id)}"

    def delivery(self, delivery_id: str) -> str:
        return f"{self.prefix}dl:{key_part(delivery_id)}"

    def queue(self, endpoint_id: str, resource: str) -> str:
        """List: one endpoint's deliveries about one resource, oldest first (the head is the
        one being attempted: what keeps them in order)."""
        return f"{self.prefix}q:{key_part(endpoint_id)}:{key_part(resource)}"

    def log(self, endpoint_id: str) -> str:
        """Sorted set: the endpoint's deliveries by creation time (ms)."""
        return f"{self.prefix}log:{key_part(endpoint_id)}"


def _hook_keys(prefix: str, delivery_prefix: str) -> HookKeys:
    return HookKeys(prefix=prefix, outbox=f"{prefix}outbox", retry=f"{prefix}retry",
                    counter=f"{prefix}counter", delivery_prefix=delivery_prefix)


def hook_keys(partition: int) -> HookKeys:
    """The webhook keys of one partition (`lc:{wh:<k>}:`); its delivery ids `dl_<k>_<n>`."""
    return _hook_keys(f"lc:{{wh:{partition}}}:", f"dl_{partition}_")


# Before webhooks were partitioned every owner's were here, in the one `{wh}` slot, with
# delivery ids `dl_<n>`: read only by the one-time move into the partitions at start
# (live/webhooks/migration.py).
LEGACY_HOOKS = _hook_keys("lc:{wh}:", "dl_")
