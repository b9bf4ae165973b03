"""An auction's lot: the one unit a live auction sells, held in its product's slot from the
auction's opening to its end (auction_lot.lua), so one-tap buys cannot sell it meanwhile.
Every move is idempotent by the lot id, so whatever fails between the auction's steps, a
retry moves the unit at most once (docs/auctions.md, "The lot")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import orjson

from checkout.errors import Refused
from checkout.ids import ProductId, StreamId, VariantId
from checkout.store.batcher import CommandBatcher
from checkout.store.keys import product_keys
from checkout.store.scripts import SCRIPTS

__all__ = ["AuctionLots", "LotState", "lot_id"]

LotState = Literal["held", "order", "returned"]


def lot_id(stream: StreamId | str, auction: str) -> str:
    """The lot's id: its auction's, unique across shows."""
    return f"{stream}/{auction}"


class AuctionLots:
    def __init__(self, batcher: CommandBatcher) -> None:
        self._batcher = batcher
        # Called (product, variant) when a lot's unit went back to stock: the sold-out
        # gate's (checkout/sold_out_gate.py).
        self.on_unit_back: Callable[[ProductId, VariantId], None] | None = None

    async def _move(self, op: str, product: ProductId, lot: str, variant: VariantId) -> LotState:
        k = product_keys(product)
        reply = orjson.loads(await self._batcher.script(
            SCRIPTS["auction_lot"], [k.stock, k.lots], [op, lot, variant]))
        if reply["r"] == "rejected":
            raise Refused(409 if reply["code"] == "sold_out" else 422,
                          reply["code"].replace("_", "-"),
                          "no unit of this variant is available to auction"
                          if reply["code"] == "sold_out" else "no such variant")
        state: LotState = reply["state"]
        return state

    async def take(self, product: ProductId, lot: str, variant: VariantId) -> LotState:
        """Put one unit on hold for the auction (once); `returned` if the lot was given back
        already (the auction was cancelled meanwhile: it cannot open)."""
        return await self._move("take", product, lot, variant)

    async def give_back(self, product: ProductId, lot: str, variant: VariantId) -> LotState:
        """Return a held lot to stock (once); `order` while an order holds its unit."""
        state = await self._move("give_back", product, lot, variant)
        if state == "returned" and self.on_unit_back is not None:
            self.on_unit_back(product, variant)
        return state
