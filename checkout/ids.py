"""Identifiers that must not mix, and how new ones are made."""

from __future__ import annotations

import os
import re
import secrets
from typing import NewType

__all__ = [
    "BrandId", "ProductId", "VariantId", "StreamId", "CreatorId", "BuyerId", "OrderId",
    "LinkCode", "new_product_id", "new_stream_id", "new_order_id", "new_link_code",
    "product_of_order", "ID_PATTERN", "ORDER_ID_PATTERN", "DEFAULT_VARIANT",
]

BrandId = NewType("BrandId", str)
ProductId = NewType("ProductId", str)
VariantId = NewType("VariantId", str)
StreamId = NewType("StreamId", str)
CreatorId = NewType("CreatorId", str)
BuyerId = NewType("BuyerId", str)
OrderId = NewType("OrderId", str)
LinkCode = NewType("LinkCode", str)

# Ids travel in URLs and Valkey keys: a closed alphabet keeps both safe.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID_RE = re.compile(ID_PATTERN)
# An order id is its product's id, a dot and a random tail (new_order_id).
ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9]{1,32}$"
_ORDER_RE = re.compile(ORDER_ID_PATTERN)
DEFAULT_VARIANT = VariantId("default")


def new_product_id() -> ProductId:
    return ProductId("p_" + secrets.token_hex(6))


def new_stream_id() -> StreamId:
    return StreamId("s_" + secrets.token_hex(6))


def new_link_code() -> LinkCode:
    return LinkCode(secrets.token_urlsafe(6).replace("-", "x").replace("_", "y"))


# An order id's random tail: 8 bytes from the OS's CSPRNG, as 16 hex digits. Drawn 512 at a
# time: `secrets.token_hex` per id is one getrandom call per buy, a flash sale's every answer.
_TAIL_BYTES = 8
_TAILS_PER_DRAW = 512
_tails: list[str] = []  # popped, never read in place: list.pop is atomic, so threads share it
# A forked child must not hand out its parent's remaining tails.
os.register_at_fork(after_in_child=_tails.clear)


def _random_tail() -> str:
    while True:
        try:
            return _tails.pop()
        except IndexError:
            digits = os.urandom(_TAIL_BYTES * _TAILS_PER_DRAW).hex()
            step = 2 * _TAIL_BYTES
            _tails.extend(digits[i:i + step] for i in range(0, len(digits), step))


def new_order_id(product: ProductId) -> OrderId:
    """The product id is part of the order id, so an order's hash slot follows from its id."""
    return OrderId(f"{product}.{_random_tail()}")


def product_of_order(order: str) -> ProductId | None:
    if not _ORDER_RE.fullmatch(order):  # fullmatch: `$` alone would let a final "\n" by
        return None
    return ProductId(order.rpartition(".")[0])


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.fullmatch(value))
