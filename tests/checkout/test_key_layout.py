"""The key layout: one key per (kind, parts), and a key's hash slot is the one it names.

Buyer ids (token subjects) and Idempotency-Keys may contain `:`, the part separator, so a
raw part could pose as two; any text could carry `{`/`}` and move a key to another slot.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

from conftest import Live
from hypothesis import given
from redis.crc import key_slot
from hypothesis import strategies as st
from shop import buy, give_wallet, make_brand, make_live_stream, make_product, stock_of

from checkout.store import keys
from checkout.ids import ID_PATTERN
from checkout.partitions import partition_of
from checkout.webhook_events import OPERATOR_OWNER, brand_owner, owner_partition

# (name, builder, number of parts, the hash tag its parts put the key in)
Builder = tuple[str, Callable[..., str], int, Callable[..., str | None]]


def _product_tag(product: str, *_: str) -> str:
    return "p:" + keys.key_part(product)


BUILDERS: list[Builder] = [
    ("product", lambda p: keys.product_keys(p).product, 1, _product_tag),
    ("stock", lambda p: keys.product_keys(p).stock, 1, _product_tag),
    ("order", lambda p, o: keys.product_keys(p).order(o), 2, _product_tag),
    ("idem", lambda p, b, k: keys.product_keys(p).idem(b, k), 3, _product_tag),
    ("stock_op", lambda p, op: keys.product_keys(p).stock_op(op), 2, _product_tag),
    ("waitlist", lambda p, v: keys.product_keys(p).waitlist(v), 2, _product_tag),
    ("stream", keys.stream_key, 1, lambda s: "s:" + keys.key_part(s)),
    ("stream_events", keys.stream_events_key, 1, lambda s: "s:" + keys.key_part(s)),
    ("viewers", keys.stream_viewers_key, 1, lambda s: "s:" + keys.key_part(s)),
    ("funnel", keys.stream_funnel_key, 1, lambda s: "s:" + keys.key_part(s)),
    ("seen", keys.stream_seen_key, 2, lambda s, _: "s:" + keys.key_part(s)),
    ("cart", keys.cart_key, 1, lambda u: "u:" + keys.key_part(u)),
    ("wallet", keys.wallet_key, 1, lambda u: "u:" + keys.key_part(u)),
    ("token_owner", keys.token_owner_key, 1, lambda t: "tk:" + keys.key_part(t)),
    ("buyer_orders", keys.buyer_orders_key, 1, lambda u: "u:" + keys.key_part(u)),
    ("idem_binding", keys.idem_binding_key, 2, lambda u, _: "u:" + keys.key_part(u)),
    ("brand_products", keys.brand_products_key, 1, lambda b: "b:" + keys.key_part(b)),
    ("brand_shows", keys.brand_shows_key, 1, lambda b: "b:" + keys.key_part(b)),
    ("creator_links", keys.creator_links_key, 1, lambda c: "c:" + keys.key_part(c)),
    ("link", keys.link_key, 1, lambda _: None),
    ("brand_totals", lambda b: keys.brand_agg_keys(b).totals, 1, lambda b: "b:" + keys.key_part(b)),
    ("brand_orders", lambda b: keys.brand_agg_keys(b).orders, 1, lambda b: "b:" + keys.key_part(b)),
    ("brand_applied", lambda b, o, k: keys.brand_agg_keys(b).applied(o, k), 3,
     lambda b, *_: "b:" + keys.key_part(b)),
    ("stream_totals", lambda s: keys.stream_agg_keys(s).totals, 1, lambda s: "s:" + keys.key_part(s)),
    ("stream_buyers_of", lambda s, p: keys.stream_agg_keys(s).buyers_of(p), 2,
     lambda s, _: "s:" + keys.key_part(s)),
    ("creator_ledger", lambda c: keys.creator_agg_keys(c).ledger, 1, lambda c: "c:" + keys.key_part(c)),
    ("creator_refund_applied", lambda c, o, k, r: keys.creator_agg_keys(c).applied(o, k, r), 4,
     lambda c, *_: "c:" + keys.key_part(c)),
    # Webhooks: every key of an owner's in its partition's slot, whatever the ids.
    ("hook_endpoint", lambda e: keys.hook_keys(3).endpoint(e), 1, lambda _: "wh:3"),
    ("hook_owner", lambda o: keys.hook_keys(3).owner(o), 1, lambda _: "wh:3"),
    ("hook_event", lambda e: keys.hook_keys(3).event(e), 1, lambda _: "wh:3"),
    ("hook_delivery", lambda d: keys.hook_keys(3).delivery(d), 1, lambda _: "wh:3"),
    ("hook_queue", lambda e, r: keys.hook_keys(3).queue(e, r), 2, lambda *_: "wh:3"),
    ("hook_log", lambda e: keys.hook_keys(3).log(e), 1, lambda _: "wh:3"),
    ("hook_endpoint_12", lambda e: keys.hook_keys(12).endpoint(e), 1, lambda _: "wh:12"),
    ("legacy_hook_delivery", lambda d: keys.LEGACY_HOOKS.delivery(d), 1, lambda _: "wh"),
]
# Few characters, most of them special, so that shifted separators are likely.
PART = st.text(alphabet="a:{}%*3A", max_size=6) | st.text(max_size=8)


def hash_tag(key: str) -> str | None:
    """What Valkey Cluster hashes: the text between the first `{` and the next `}`."""
    match = re.search(r"\{([^}]*)\}", key)
    return match.group(1) if match and match.group(1) else None


@st.composite
def built(draw: st.DrawFn) -> tuple[str, tuple[str, ...], str]:
    name, build, arity, _ = draw(st.sampled_from(BUILDERS))
    parts = tuple(draw(PART) for _ in range(arity))
    return name, parts, build(*parts)


@given(st.text())
def test_a_key_part_round_trips_and_holds_no_separator_or_brace(value: str) -> None:
    part = keys.key_part(value)
    assert unquote(part) == value
    assert not set(part) & set(":{}*?[]\\ ")
    if re.fullmatch(ID_PATTERN, value):
        assert part == value  # ids read the same in the keyspace


@given(built(), built())
def test_the_layout_is_injective(a: tuple[str, tuple[str, ...], str],
                                 b: tuple[str, tuple[str, ...], str]) -> None:
    if a[2] == b[2]:
        assert a[:2] == b[:2], f"{a[:2]} and {b[:2]} share the key {a[2]}"


@given(st.sampled_from([b for b in BUILDERS if b[2] >= 2]), PART, PART, PART)
def test_moving_a_separator_between_parts_moves_the_key(builder: Builder, x: str, y: str,
                                                        z: str) -> None:
    """The reported collision: buyer `shopX:42` + key `order-0001` = buyer `shopX` + key
    `42:order-0001`."""
    _, build, arity, _ = builder
    head = ("p",) * (arity - 2)
    assert build(*head, f"{x}:{y}", z) != build(*head, x, f"{y}:{z}")


@given(st.sampled_from(BUILDERS), st.data())
def test_a_key_stays_in_the_slot_its_first_part_names(builder: Builder, data: st.DataObject) -> None:
    _, build, arity, tag = builder
    parts = [data.draw(PART) for _ in range(arity)]
    assert hash_tag(build(*parts)) == tag(*parts)


def test_each_webhook_partition_is_one_slot_and_the_partitions_spread_over_shards() -> None:
    """A partition's fixed keys share its slot (one script registers and fans out an event
    there); the 16 partitions are 16 slots, some in each third of the slot space (where a
    3-primary cluster puts its shards), so no one shard carries every owner's webhooks."""
    slots = []
    for partition in range(16):
        hooks = keys.hook_keys(partition)
        fixed = {key_slot(k.encode()) for k in (hooks.outbox, hooks.retry, hooks.counter)}
        assert len(fixed) == 1
        slots.append(fixed.pop())
        assert hooks.delivery_prefix == f"dl_{partition}_"  # ids unique across partitions
    assert len(set(slots)) == 16
    thirds = {slot * 3 // 16384 for slot in slots}
    assert thirds == {0, 1, 2}


def test_owners_spread_over_the_webhook_partitions() -> None:
    """crc32 mod count, the products' mapping (so one lease covers a product partition and
    the webhook partition of the same number): brands fill every partition."""
    brands = [brand_owner(f"brand{i}") for i in range(400)]
    counts = [0] * 16
    for owner in brands:
        counts[owner_partition(owner, 16)] += 1
    assert min(counts) > 0 and max(counts) < 3 * 400 // 16
    for owner in (OPERATOR_OWNER, *brands[:20]):
        assert owner_partition(owner, 16) == partition_of(owner, 16)


async def test_buyers_whose_id_and_key_shift_a_colon_get_their_own_orders(live: Live) -> None:
    """Over HTTP with real tokens: `shopX:42` + `order-0001` and `shopX` + `42:order-0001`
    used to name one idempotency record, so the second buyer got the first one's order."""
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    buyers = {"shopX:42": "order-0001", "shopX": "42:order-0001"}
    for buyer in buyers:
        await give_wallet(live, buyer)
    orders = {}
    for buyer, key in buyers.items():
        r = await buy(live, buyer, product["id"], stream=stream["id"], key=key)
        assert r.status_code == 201, r.text
        assert "idempotent-replayed" not in r.headers
        orders[buyer] = r.json()["order"]
    assert {buyer: order["buyer"] for buyer, order in orders.items()} == {b: b for b in buyers}
    assert orders["shopX"]["id"] != orders["shopX:42"]["id"]
    assert (await stock_of(live, product["id"]))["default"]["sold"] == 2
    await live.services.aggregator.drain()
    for buyer in buyers:  # each buyer sees exactly their own order
        r = await live.http.get("/api/v1/me/orders", headers=live.auth("buyer", buyer))
        assert [o["id"] for o in r.json()["items"]] == [orders[buyer]["id"]]
