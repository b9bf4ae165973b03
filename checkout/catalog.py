"""Brands and their products: the catalog, stock with an audit trail, showcases."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
import redis.asyncio as redis
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT
from pydantic import Field, HttpUrl, StringConstraints

from checkout.errors import Refused
from checkout.models import StrictModel
from checkout.store.batcher import CommandBatcher
from checkout.ids import (DEFAULT_VARIANT, ID_PATTERN, BrandId, CreatorId, ProductId, VariantId,
                          new_product_id)
from checkout.partitions import partition_of
from checkout.store.keys import BRANDS, brand_products_key, partition_keys, product_keys
from checkout.store.replies import int_hash, members, text_entries
from checkout.money import Currency
from checkout.store.scripts import SCRIPTS

__all__ = ["Catalog", "BrandIn", "ProductIn", "ProductPatch", "VariantIn", "VariantPatch",
           "OptionIn", "ImageOrder", "StockChange", "StockKind", "CatalogError", "WebUrl",
           "AUDIT_MAXLEN", "OUTBOX_GROUP", "MAX_VARIANTS", "MAX_OPTIONS", "MAX_OPTION_VALUES",
           "MAX_IMAGES"]

AUDIT_MAXLEN = 10_000  # stock audit entries kept per product (approximate)
OUTBOX_GROUP = "aggregator"
STOCK_OP_TTL_S = 24 * 3600
MAX_VARIANTS = 100  # per product: the hub's join snapshot is sized for 50 products of 100
MAX_OPTIONS = 3  # per product (size, colour, material): a variant is one value of each
MAX_OPTION_VALUES = 50  # per option
MAX_IMAGES = 50  # per product, the ceiling of the node's `images_per_product`
_EDIT_TRIES = 5  # optimistic retries of one product edit before 409 product-busy

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


Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._/-]+$")]
OptionName = Annotated[str, StringConstraints(min_length=1, max_length=40, strip_whitespace=True,
                                              pattern=r"\S")]
OptionValue = Annotated[str, StringConstraints(min_length=1, max_length=60, strip_whitespace=True,
                                               pattern=r"\S")]
# What a stock change was for; the audit keeps it next to the free-text reason.
StockKind = Literal["received", "returned", "damaged", "lost", "correction", "other"]


class OptionIn(StrictModel):
    """One dimension of a product's variants (Size: S, M, L)."""

    name: OptionName
    values: Annotated[list[OptionValue], Field(min_length=1, max_length=MAX_OPTION_VALUES)]


class VariantIn(StrictModel):
    id: Annotated[VariantId, StringConstraints(pattern=ID_PATTERN)]
    name: Text | None = None  # None: the option values, "M / Red"
    stock: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    sku: Sku | None = None
    # option name -> its value for this variant: one value of each of the product's options
    options: Annotated[dict[OptionName, OptionValue], Field(max_length=MAX_OPTIONS)] = {}


class VariantPatch(StrictModel):
    name: Text | None = None
    sku: Sku | None = None
    options: Annotated[dict[OptionName, OptionValue], Field(max_length=MAX_OPTIONS)] | None = None


class ImageOrder(StrictModel):
    """Every image id of the product, in the new order (the first is the cover)."""

    order: Annotated[list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]],
                     Field(max_length=MAX_IMAGES)]


class ProductIn(StrictModel):
    title: Text
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    image_url: WebUrl | None = None
    price_minor: Annotated[int, Field(ge=1, le=10**10)]
    currency: Currency
    sku: Sku
    stock: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    options: Annotated[list[OptionIn], Field(max_length=MAX_OPTIONS)] = []
    variants: Annotated[list[VariantIn], Field(max_length=MAX_VARIANTS)] = []
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
    sku: Sku | None = None
    # Replaces the option list; every variant must still be one value of each option.
    options: Annotated[list[OptionIn], Field(max_length=MAX_OPTIONS)] | None = None


class StockChange(StrictModel):
    set: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    adjust: Annotated[int, Field(ge=-10_000_000, le=10_000_000)] | None = None
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: StockKind | None = None
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
    for name in _JSON_PRODUCT:
        out[name] = orjson.loads(out[name]) if name in out else []
    return out


_JSON_PRODUCT = ("variants", "options", "images")


def _variant_record(v: VariantIn) -> dict[str, Any]:
    """A variant as stored: its name defaults to its option values ("M / Red")."""
    record: dict[str, Any] = {"id": v.id, "name": v.name or " / ".join(v.options.values())}
    if not record["name"]:
        raise CatalogError(422, "variant-name-required",
                           f"variant {v.id}: give a name or option values")
    if v.sku:
        record["sku"] = v.sku
    if v.options:
        record["options"] = dict(v.options)
    return record


def _check_options(options: list[dict[str, Any]]) -> None:
    names = [o["name"].casefold() for o in options]
    if len(set(names)) != len(names):
        raise CatalogError(422, "bad-variant-options", "option names must be unique")
    for o in options:
        if len({v.casefold() for v in o["values"]}) != len(o["values"]):
            raise CatalogError(422, "bad-variant-options",
                               f"option {o['name']}: its values must be unique")


def _check_variants(options: list[dict[str, Any]], variants: list[dict[str, Any]]) -> None:
    """Every variant is one value of each option (exactly those options), no two variants
    are the same combination, and ids and SKUs are unique within the product."""
    _check_options(options)
    allowed = {o["name"]: set(o["values"]) for o in options}
    seen: set[tuple[tuple[str, str], ...]] = set()
    for v in variants:
        chosen = v.get("options", {})
        if set(chosen) != set(allowed):
            raise CatalogError(422, "bad-variant-options",
                               f"variant {v['id']}: give one value for each option "
                               f"({', '.join(allowed) or 'none'}), got "
                               f"({', '.join(chosen) or 'none'})")
        for name, value in chosen.items():
            if value not in allowed[name]:
                raise CatalogError(422, "bad-variant-options",
                                   f"variant {v['id']}: {value!r} is not a value of {name}")
        combination = tuple(sorted(chosen.items()))
        if allowed and combination in seen:
            raise CatalogError(422, "bad-variant-options",
                               f"variant {v['id']}: another variant has the same options")
        seen.add(combination)
    if len({v["id"] for v in variants}) != len(variants):
        raise CatalogError(422, "duplicate-variant", "variant ids must be unique")
    skus = [v["sku"] for v in variants if v.get("sku")]
    if len(set(skus)) != len(skus):
        raise CatalogError(422, "duplicate-sku", "variant SKUs must be unique within a product")


def _cover(images: list[dict[str, Any]]) -> str:
    return str(images[0]["url"]) if images else ""


Edit = Callable[[dict[str, Any]], Mapping[str, Any]]


class Catalog:
    def __init__(self, client: redis.Redis, batcher: CommandBatcher, *, partitions: int) -> None:
        self._client = client
        self._batcher = batcher
        self._partitions = partitions  # each product is filed in one (checkout/partitions.py)
        # Called (product, variant) after a change that added units: the sold-out gate's
        # (checkout/sold_out_gate.py).
        self.on_units_added: Callable[[ProductId, VariantId], None] | None = None

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
    async def create_product(self, brand_id: BrandId, data: ProductIn, *,
                             who: str | None = None) -> dict[str, Any]:
        brand = await self.brand(brand_id)
        if brand is None:
            raise CatalogError(404, "not-found", f"no brand {brand_id}")
        if data.currency != brand["currency"]:
            raise CatalogError(422, "currency-mismatch",
                               f"brand {brand_id} sells in {brand['currency']}")
        variants = data.variants or [VariantIn(id=DEFAULT_VARIANT, name="Default", stock=data.stock)]
        options = [o.model_dump() for o in data.options]
        variant_records = [_variant_record(v) for v in variants]
        _check_variants(options, variant_records)
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
            "variants": orjson.dumps(variant_records).decode(),
            "options": orjson.dumps(options).decode(), "images": "[]",
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
                    set=v.stock, reason="initial stock"), who=who or f"brand:{brand_id}",
                    kind="initial")
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(brand_products_key(brand_id), {product_id: now})
            pipe.sadd(partition_keys(partition_of(product_id, self._partitions)).products,
                      product_id)
            await pipe.execute()
        return await self.product(product_id) or {}

    async def product(self, product_id: ProductId) -> dict[str, Any] | None:
        raw = await self._client.hgetall(product_keys(product_id).product)
        return _decode(raw) if raw else None

    async def update_product(self, product_id: ProductId, patch: ProductPatch) -> dict[str, Any]:
        changes: dict[str, Any] = {k: (str(v) if k == "image_url" else v)
                                   for k, v in patch.model_dump(exclude_unset=True).items()
                                   if v is not None}
        if not changes:
            raise CatalogError(422, "empty-patch", "name at least one field to change")

        def edit(product: dict[str, Any]) -> Mapping[str, Any]:
            if "image_url" in changes and product["images"]:
                raise CatalogError(409, "image-url-managed",
                                   "the product has uploaded images: its picture is the first "
                                   "of them (reorder or remove images instead)")
            if "options" in changes:
                _check_variants(changes["options"], product["variants"])
            return changes

        return await self._edit(product_id, edit)

    async def set_status(self, product_id: ProductId, status: str) -> dict[str, Any]:
        await self._client.hset(product_keys(product_id).product,
                                mapping={"status": status, "updated_ms": int(time.time() * 1000)})
        return await self.product(product_id) or {}

    async def add_variant(self, product_id: ProductId, variant: VariantIn, *,
                          who: str) -> dict[str, Any]:
        """A new variant (its stock fields made at 0, then its stock set, audited)."""
        record = _variant_record(variant)

        def edit(product: dict[str, Any]) -> Mapping[str, Any]:
            if len(product["variants"]) >= MAX_VARIANTS:
                raise CatalogError(409, "too-many-variants",
                                   f"a product has at most {MAX_VARIANTS} variants")
            if any(v["id"] == variant.id for v in product["variants"]):
                raise CatalogError(409, "variant-exists", f"variant {variant.id} exists")
            variants = [*product["variants"], record]
            _check_variants(product["options"], variants)
            return {"variants": variants}

        product = await self._edit(product_id, edit, new_variant=variant.id)
        if variant.stock:
            await self.change_stock(product_id, variant.id, StockChange(
                set=variant.stock, reason="initial stock"), who=who, kind="initial")
        return product

    async def update_variant(self, product_id: ProductId, variant_id: VariantId,
                             patch: VariantPatch) -> dict[str, Any]:
        changes = patch.model_dump(exclude_unset=True, exclude_none=True)
        if not changes:
            raise CatalogError(422, "empty-patch", "name at least one field to change")

        def edit(product: dict[str, Any]) -> Mapping[str, Any]:
            variants = [dict(v) for v in product["variants"]]
            found = next((v for v in variants if v["id"] == variant_id), None)
            if found is None:
                raise CatalogError(404, "variant-not-found", f"no variant {variant_id}")
            found.update(changes)
            if not found.get("options"):
                found.pop("options", None)
            _check_variants(product["options"], variants)
            return {"variants": variants}

        return await self._edit(product_id, edit)

    # images: the product's list, the first one its picture (`image_url`)
    async def add_image(self, product_id: ProductId, image: dict[str, Any], *,
                        max_images: int) -> dict[str, Any]:
        """Appends `image` (an `id` and its `url`...); the same id again changes nothing."""
        def edit(product: dict[str, Any]) -> Mapping[str, Any]:
            images = product["images"]
            if any(i["id"] == image["id"] for i in images):
                return {}
            if len(images) >= max_images:
                raise CatalogError(409, "too-many-images",
                                   f"a product has at most {max_images} images")
            images = [*images, image]
            return {"images": images, "image_url": _cover(images)}

        return await self._edit(product_id, edit)

    async def remove_image(self, product_id: ProductId, image_id: str) -> dict[str, Any]:
        def edit(product: dict[str, Any]) -> Mapping[str, Any]:
            images = [i for i in product["images"] if i["id"] != image_id]
            if len(images) == len(product["images"]):
                raise CatalogError(404, "image-not-found", f"no image {image_id} on this product")
            return {"images": images, "image_url": _cover(images)}

        return await self._edit(product_id, edit)

    async def order_images(self, product_id: ProductId, order: list[str]) -> dict[str, Any]:
        def edit(product: dict[str, Any]) -> Mapping[str, Any]:
            by_id = {i["id"]: i for i in product["images"]}
            if len(order) != len(by_id) or set(order) != set(by_id):
                raise CatalogError(422, "bad-image-order",
                                   "name every image of the product once, in the new order")
            images = [by_id[i] for i in order]
            return {"images": images, "image_url": _cover(images)}

        return await self._edit(product_id, edit)

    async def _edit(self, product_id: ProductId, edit: Edit, *,
                    new_variant: VariantId | None = None) -> dict[str, Any]:
        """Read the product, let `edit` check it and name the fields to write, and write
        them only if nobody changed the product meanwhile (WATCH/MULTI, retried): a check
        is never made on a record another edit replaced. `new_variant` also makes that
        variant's stock fields (at 0) in the same transaction."""
        k = product_keys(product_id)
        for _ in range(_EDIT_TRIES):
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(k.product)
                    raw = await pipe.hgetall(k.product)
                    if not raw:
                        raise CatalogError(404, "not-found", f"no product {product_id}")
                    product = _decode(raw)
                    changes = dict(edit(product))
                    if not changes:
                        return product
                    changes["updated_ms"] = int(time.time() * 1000)
                    fields: dict[FieldT, EncodableT] = {
                        name: orjson.dumps(value).decode() if name in _JSON_PRODUCT else value
                        for name, value in changes.items()}
                    pipe.multi()
                    pipe.hset(k.product, mapping=fields)
                    if new_variant is not None:
                        for part in ("avail", "held", "sold", "total"):
                            pipe.hsetnx(k.stock, f"{part}:{new_variant}", 0)
                    await pipe.execute()
                except WatchError:
                    continue
            return {**product, **changes}
        raise CatalogError(409, "product-busy", "the product kept changing; try again")

    async def invite(self, product_id: ProductId, creator_id: CreatorId) -> None:
        await self._client.sadd(product_keys(product_id).invited, creator_id)

    async def is_invited(self, product_id: ProductId, creator_id: CreatorId) -> bool:
        return bool(await self._client.sismember(product_keys(product_id).invited, creator_id))

    # stock
    async def change_stock(self, product_id: ProductId, variant: VariantId, change: StockChange, *,
                           who: str, kind: str | None = None) -> dict[str, Any]:
        """`kind` (the change's, else `change.kind`, else "other") goes to the audit."""
        if (change.set is None) == (change.adjust is None):
            raise CatalogError(422, "validation-error", "give exactly one of set or adjust")
        k = product_keys(product_id)
        op_id = change.operation_id or new_product_id()[2:]
        mode, value = ("set", change.set) if change.set is not None else ("adjust", change.adjust)
        reply = orjson.loads(await self._batcher.script(
            SCRIPTS["stock"], [k.stock, k.audit, k.stock_op(op_id)],
            [variant, mode, value, who, change.reason, AUDIT_MAXLEN, STOCK_OP_TTL_S,
             kind or change.kind or "other"]))
        if reply["r"] == "conflict":
            raise CatalogError(422, "operation-id-reused",
                               f"operation {op_id} was already used for a different change")
        if reply["r"] != "ok":
            status = 404 if reply["code"] == "variant_not_found" else 409
            raise CatalogError(status, reply["code"].replace("_", "-"),
                               f"stock change refused: {reply['code']}")
        if reply["delta"] > 0 and self.on_units_added is not None:
            self.on_units_added(product_id, variant)
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
        return await self.brand_products(brand_id, "active", cursor=cursor, limit=limit)

    async def brand_products(self, brand_id: BrandId, status: Literal["active", "archived", "all"],
                             *, cursor: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """The brand's products in `status`, newest first, a page of its index at a time
        (a page may hold fewer than `limit` once filtered; `None` ends the list)."""
        ids = members(await self._client.zrevrange(brand_products_key(brand_id), cursor,
                                                   cursor + limit - 1))
        products = []
        for pid in ids:
            product = await self.product(ProductId(pid))
            if product and (status == "all" or product["status"] == status):
                products.append(product)
        next_cursor = cursor + limit if len(ids) == limit else None
        return products, next_cursor
