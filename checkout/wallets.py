"""A buyer's saved shipping address and payment-method token: what makes one tap enough."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import redis.asyncio as redis
from pydantic import StringConstraints

from checkout.models import StrictModel
from checkout.store.batcher import CommandBatcher
from checkout.ids import BuyerId
from checkout.store.keys import wallet_key

__all__ = ["WalletIn", "Address", "WalletStore", "mask_token"]

# `\S`: the document's way of saying what stripping then min_length=1 refuses (all blanks).
Line = Annotated[str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True,
                                        pattern=r"\S")]



class Address(StrictModel):
    name: Line
    line1: Line
    line2: Annotated[str, StringConstraints(max_length=120)] = ""
    city: Line
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class WalletIn(StrictModel):
    shipping: Address
    # A gateway token, never a card number: the gateway holds the card. `tok_...`: the
    # sandbox's; `pm_...`: a Stripe payment method (POST /api/v1/me/cards).
    payment_token: Annotated[str, StringConstraints(pattern=r"^(tok|pm)_[A-Za-z0-9_]{1,60}$")]


def mask_token(token: str) -> str:
    return token[:4] + "…" + token[-4:] if len(token) > 10 else "tok_…"


class WalletStore:
    def __init__(self, client: redis.Redis, batcher: CommandBatcher) -> None:
        self._client = client
        self._batcher = batcher  # reads on the buy path ride the batched pipeline

    async def put(self, buyer: BuyerId, wallet: WalletIn) -> dict[str, Any]:
        await self._client.set(wallet_key(buyer), orjson.dumps(wallet.model_dump()))
        return self.public(wallet.model_dump())

    async def get(self, buyer: BuyerId) -> dict[str, Any] | None:
        raw = await self._batcher.execute("GET", wallet_key(buyer))
        return orjson.loads(raw) if raw else None

    @staticmethod
    def public(wallet: dict[str, Any]) -> dict[str, Any]:
        return {"shipping": wallet["shipping"], "payment_method": mask_token(wallet["payment_token"])}
