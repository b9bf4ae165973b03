"""Brands and their products: the catalog, stock with an audit trail, showcases."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
import redis.asyncio as redis
from redis.typing import EncodableT, FieldT
from pydantic import Field, HttpUrl, StringConstraints

from checkout.errors import Refused
from checkout.models import StrictModel
from checkout.store.batcher import CommandBatcher
from checkout.ids import (DEFAULT_VARIANT, ID_PATTERN, BrandId, CreatorId, ProductId, VariantId,
                          new_product_id)
from checkout.store.keys import ACTIVE_PRODUCTS, BRANDS, brand_products_key, product_keys
from checkout.store.replies import int_hash, members, text_entries
from checkout.money import Currency
from checkout.store.scripts import SCRIPTS

__all__ = ["Catalog", "BrandIn", "ProductIn", "ProductPatch", "VariantIn", "StockChange",
           "CatalogError", "WebUrl", "AUDIT_MAXLEN", "OUTBOX_GROUP"]

AUDIT_MAXLEN = 10_000  # stock audit entries kept per product (approximate)
OUTBOX_GROUP = "aggregator"
STOCK_OP_TTL_S = 24 * 3600

# `\S`: the document's way of saying what stripping then min_length=1 refuses (all blanks).
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True,
                                        pattern=r"\S")]
# `format: uri` alone would allow any scheme; the server takes http(s) URLs only.
WebUrl = Annotated[HttpUrl, Field(json_schema_extra={
    "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+([/?#]\S*)?$"})]



class BrandIn(StrictModel):
    id: Annotated[BrandId, StringConstraints(pattern=ID_PATTERN)]
    name: Text
    currency: Currency


class VariantIn(StrictModel):
    id: Annotated[VariantId, StringConstraints(pattern=ID_PATTERN)]
    name: Text
    stock: Annotated[int, Field(ge=0, le=10_000_000)] = 0


class ProductIn(StrictModel):
    title: Text
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    image_url: WebUrl | None = None
    price_minor: Annotated[int, Field(ge=1, le=10**10)]
    currency: Currency
    sku: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._/-]+$")]
    stock: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    variants: Annotated[list[VariantIn], Field(max_length=100)] = []
    commission_bps: Annotated[int, Field(ge=0, le=8000)] = 0
    commission_mode: Literal["open", "invited"] = "open"
    max_per_buyer: Annotated[int, Field(ge=0, le=1000)] = 0  # 0: no limit
    # The lowest price a creator's flash deal may set; unset: no deals below the price.
    deal_floor_minor: Annotated[int, Field(ge=1, le=10**10)] | None = None


class ProductPatch(StrictModel):
    title: Text | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    image_url: WebUrl | None = None
    price_minor: Annotated[int, Field(ge=1, le=10**10)] | None = None
    commission_bps: Annotated[int, Field(ge=0, le=8000)] | None = None
    commission_mode: Literal["open", "invited"] | None = None
    max_per_buyer: Annotated[int, Field(ge=0, le=1000)] | None = None
    deal_floor_minor: Annotated[int, Field(ge=1, le=10**10)] | None = None


class StockChange(StrictModel):
    set: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    adjust: Annotated[int, Field(ge=-10_000_000, le=10_000_000)] | None = None
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    operation_id: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = None


class CatalogError(Refused):
    """The catalog refuses a change (unknown brand, duplicate variant, negative stock...)."""


@dataclass(frozen=True, slots=True)
class StockLevel:
    variant: str
    available: int
    held: int
    sold: int
    total: int


_INT_PRODUCT = ("price_minor", "commission_bps", "max_per_buyer", "deal_floor_minor",
                "created_ms", "updated_ms")


def _decode(raw: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else k
        val = v.decode() if isinstance(v, bytes) else v
        out[key] = int(val) if key in _INT_PRODUCT else val
    if "variants" in out:
        out["variants"] = orjson.loads(out["variants"])
    return out


class Catalog:
    def __init__(self, client: redis.Redis, batcher: CommandBatcher) -> None:
        self._client = client
        self._batcher = batcher

    # brands
    async def create_brand(self, brand: BrandIn) -> dict[str, Any]:
        record = brand.model_dump()
        if not await self._client.hsetnx(BRANDS, brand.id, orjson.dumps(record)):
            raise CatalogError(409, "brand-exists", f"brand {brand.id} already exists")
        return record

    async def brand(self, brand_id: BrandId) -> dict[str, Any] | None:
        raw = await self._client.hget(BRANDS, brand_id)
        return orjson.loads(raw) if raw else None

    # products
    async def create_product(self, brand_id: BrandId, data: ProductIn) -> dict[str, Any]:
        brand = await self.brand(brand_id)
        if brand is None:
            raise CatalogError(404, "not-found", f"no brand {brand_id}")
        if data.currency != brand["currency"]:
            raise CatalogError(422, "currency-mismatch",
                               f"brand {brand_id} sells in {brand['currency']}")
        variants = data.variants or [VariantIn(id=DEFAULT_VARIANT, name="Default", stock=data.stock)]
        if len({v.id for v in variants}) != len(variants):
            raise CatalogError(422, "duplicate-variant", "variant ids must be unique")
        product_id = new_product_id()
        k = product_keys(product_id)
        now = int(time.time() * 1000)
        record: dict[FieldT, EncodableT] = {
            "id": product_id, "brand_id": brand_id, "title": data.title,
            "description": data.description, "image_url": str(data.image_url or ""),
            "price_minor": data.price_minor, "currency": data.currency, "sku": data.sku,
            "commission_bps": data.commission_bps, "commission_mode": data.commission_mode,
            "max_per_buyer": data.max_per_buyer, "status": "active",
            **({"deal_floor_minor": data.deal_floor_minor} if data.deal_floor_minor else {}),
            "variants": orjson.dumps([{"id": v.id, "name": v.name} for v in variants]).decode(),
            "created_ms": now, "updated_ms": now,
        }
        stock_fields: dict[FieldT, EncodableT] = {}
        for v in variants:
            stock_fields.update({f"avail:{v.id}": 0, f"held:{v.id}": 0, f"sold:{v.id}": 0,
                                 f"total:{v.id}": 0})
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(k.product, mapping=record)
            pipe.hset(k.stock, mapping=stock_fields)
            pipe.xgroup_create(k.outbox, OUTBOX_GROUP, id="0", mkstream=True)
            await pipe.execute()
        for v in variants:
            if v.stock:
                await self.change_stock(product_id, v.id, StockChange(
                    set=v.stock, reason="initial stock"), who=f"brand:{brand_id}")
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(brand_products_key(brand_id), {product_id: now})
            pipe.sadd(ACTIVE_PRODUCTS, product_id)
            await pipe.execute()
        return await self.product(product_id) or {}

    async def product(self, product_id: ProductId) -> dict[str, Any] | None:
        raw = await self._client.hgetall(product_keys(product_id).product)
        return _decode(raw) if raw else None

    async def update_product(self, product_id: ProductId, patch: ProductPatch) -> dict[str, Any]:
        changes: dict[FieldT, EncodableT] = {k: (str(v) if k == "image_url" else v)
                   for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}
        if not changes:
            raise CatalogError(422, "empty-patch", "name at least one field to change")
        changes["updated_ms"] = int(time.time() * 1000)
        await self._client.hset(product_keys(product_id).product, mapping=changes)
        return await self.product(product_id) or {}

    async def set_status(self, product_id: ProductId, status: str) -> dict[str, Any]:
        await self._client.hset(product_keys(product_id).product,
                                mapping={"status": status, "updated_ms": int(time.time() * 1000)})
        return await self.product(product_id) or {}

    async def invite(self, product_id: ProductId, creator_id: CreatorId) -> None:
        await self._client.sadd(product_keys(product_id).invited, creator_id)

    async def is_invited(self, product_id: ProductId, creator_id: CreatorId) -> bool:
        return bool(await self._client.sismember(product_keys(product_id).invited, creator_id))

    # stock
    async def change_stock(self, product_id: ProductId, variant: VariantId, change: StockChange, *,
                           who: str) -> dict[str, Any]:
        if (change.set is None) == (change.adjust is None):
            raise CatalogError(422, "validation-error", "give exactly one of set or adjust")
        k = product_keys(product_id)
        op_id = change.operation_id or new_product_id()[2:]
        mode, value = ("set", change.set) if change.set is not None else ("adjust", change.adjust)
        reply = orjson.loads(await self._batcher.script(
            SCRIPTS["stock"], [k.stock, k.audit, k.stock_op(op_id)],
            [variant, mode, value, who, change.reason, AUDIT_MAXLEN, STOCK_OP_TTL_S]))
        if reply["r"] == "conflict":
            raise CatalogError(422, "operation-id-reused",
                               f"operation {op_id} was already used for a different change")
        if reply["r"] != "ok":
            status = 404 if reply["code"] == "variant_not_found" else 409
            raise CatalogError(status, reply["code"].replace("_", "-"),
                               f"stock change refused: {reply['code']}")
        return reply

    async def stock(self, product_id: ProductId) -> list[StockLevel]:
        raw = int_hash(await self._client.hgetall(product_keys(product_id).stock))
        variants = sorted({k.split(":", 1)[1] for k in raw})
        return [StockLevel(v, raw.get(f"avail:{v}", 0), raw.get(f"held:{v}", 0),
                           raw.get(f"sold:{v}", 0), raw.get(f"total:{v}", 0)) for v in variants]

    async def audit(self, product_id: ProductId, limit: int) -> list[dict[str, Any]]:
        entries = await self._client.xrevrange(product_keys(product_id).audit, count=limit)
        return [{"id": eid, **fields} for eid, fields in text_entries(entries)]

    async def showcase(self, brand_id: BrandId, *, cursor: int,
                       limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """Active products, newest first; `cursor` is an offset into the brand's index."""
        ids = members(await self._client.zrevrange(brand_products_key(brand_id), cursor,
                                                   cursor + limit - 1))
        products = []
        for pid in ids:
            product = await self.product(ProductId(pid))
            if product and product["status"] == "active":
                products.append(product)
        next_cursor = cursor + limit if len(ids) == limit else None
        return products, next_cursor
