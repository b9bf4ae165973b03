"""The aggregates fold once per part: an outbox entry delivered again moves nothing, and a
part a crash left undone (its owner's slot never written) is folded when the entry comes
again, to the same totals and ledger."""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from conftest import Live
from shop import db_state, eventually
from test_money_races import reconciled
from test_statements import sell

from checkout.catalog import OUTBOX_GROUP
from checkout.store.keys import creator_agg_keys, product_keys


async def folded(client: redis.Redis) -> dict[bytes, Any]:
    """Every aggregate key (dedupe records included) and its value; a ledger's entries
    without their ids (a ledger entry written again gets a new one)."""
    state = {k: v for k, v in (await db_state(client)).items() if b":agg" in k}
    return {k: (kind, [fields for _, fields in value] if kind == "stream" else value)
            for k, (kind, value) in state.items()}


async def deliver_again(live: Live, product: str) -> None:
    """Hand every entry of the product's outbox to the aggregator once more (its consumer
    group rewound, as after a lost acknowledgement) and wait until it folded them."""
    client, aggregator = live.services.client, live.services.aggregator
    outbox = product_keys(product).outbox
    entries = await client.xlen(outbox)
    before = aggregator.applied
    await client.xgroup_setid(outbox, OUTBOX_GROUP, "0", entries_read=0)
    await eventually(lambda: aggregator.applied >= before + entries, "the outbox folded again")
    await aggregator.drain()


async def test_an_outbox_entry_delivered_again_folds_once_per_part(live: Live,
                                                                  rclient: redis.Redis) -> None:
    stream, product = await sell(live)  # show sales, a link sale, a full refund: every part
    once = await folded(rclient)
    brand, creator = b"lc:{b:acme}:agg", b"lc:{c:cleo}:agg"
    show = f"lc:{{s:{stream}}}:agg".encode()
    assert {brand, brand + b":orders", show, show + b":ticker", creator,
            creator + b":ledger"} <= set(once)
    assert any(k.startswith(show + b":applied:") for k in once)
    assert any(k.startswith(creator + b":applied:") and b":refund:" in k for k in once)
    await deliver_again(live, product)
    assert await folded(rclient) == once

    # A crash after the brand's and the stream's parts, before the creator's: redelivery
    # folds the creator's part alone, to what it was.
    await rclient.delete(*[k async for k in rclient.scan_iter(match=b"lc:{c:cleo}:agg*")])
    assert not await rclient.exists(creator_agg_keys("cleo").ledger)
    await deliver_again(live, product)
    assert await folded(rclient) == once
    report = await reconciled(live)
    assert report["ok"], report["mismatches"]
