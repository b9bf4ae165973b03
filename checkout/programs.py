"""A brand's affiliate program: its commission (a default and per-product rates), who may
sell its products (everyone, or the creators it approved) and the floor of a creator's deal
price per product.

The program lives in the brand's slot, but the buy script reads only the product's, so the
program writes what it decides into each product's hash (`commission_bps`,
`commission_mode`, `deal_floor_minor`) and its invited set (the approved creators): the
commission in force at purchase is snapshotted into the order by reserve.lua, as before.
Those writes follow each change (like offer_sync.lua after stream.lua); saving the program
writes every product again, which also repairs a follow-up lost to a crash.

An application's moves are a literal table (`TRANSITIONS`, `OPEN_TRANSITIONS`), applied by
program.lua.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
import redis.asyncio as redis
from pydantic import Field, StringConstraints

from checkout.errors import Refused
from checkout.ids import BrandId, CreatorId, ProductId
from checkout.models import StrictModel
from checkout.store.keys import (PROGRAMS, brand_products_key, creator_programs_key,
                                 product_keys, program_keys)
from checkout.store.replies import members, text, text_hash
from checkout.store.scripts import SCRIPTS, call_script

__all__ = ["ProgramStore", "ProgramIn", "ProductTermsIn", "ApplicationIn", "ProgramError",
           "AppState", "AppAction", "TRANSITIONS", "OPEN_TRANSITIONS", "MIN_BPS", "MAX_BPS"]

# TikTok Shop's affiliate range, 1% to 80%, in basis points (1 bps = 0.01%).
MIN_BPS = 100
MAX_BPS = 8000
Bps = Annotated[int, Field(ge=MIN_BPS, le=MAX_BPS)]


class AppState(StrEnum):
    NONE = "none"  # never applied
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REMOVED = "removed"


class AppAction(StrEnum):
    APPLY = "apply"  # the creator
    APPROVE = "approve"  # the brand's admins, from here down
    REJECT = "reject"
    REMOVE = "remove"


S, A = AppState, AppAction
# An approval program. Deciding the same way twice is no change (a double click).
TRANSITIONS: dict[tuple[AppState, AppAction], AppState] = {
    (S.NONE, A.APPLY): S.PENDING, (S.PENDING, A.APPLY): S.PENDING,
    (S.REJECTED, A.APPLY): S.PENDING, (S.REMOVED, A.APPLY): S.PENDING,
    (S.PENDING, A.APPROVE): S.APPROVED, (S.REJECTED, A.APPROVE): S.APPROVED,
    (S.REMOVED, A.APPROVE): S.APPROVED, (S.APPROVED, A.APPROVE): S.APPROVED,
    (S.PENDING, A.REJECT): S.REJECTED, (S.REJECTED, A.REJECT): S.REJECTED,
    (S.APPROVED, A.REMOVE): S.REMOVED, (S.REMOVED, A.REMOVE): S.REMOVED,
}
# An open program takes everyone: applying is approval, and there is nobody to turn away
# (switch the program to approval first); applications left from approval days can still
# be approved.
OPEN_TRANSITIONS: dict[tuple[AppState, AppAction], AppState] = {
    **{(s, A.APPLY): S.APPROVED for s in AppState},
    **{k: v for k, v in TRANSITIONS.items() if k[1] is A.APPROVE},
}


def _rules(table: dict[tuple[AppState, AppAction], AppState], action: AppAction) -> str:
    return ";".join(f"{src}={dst}" for (src, act), dst in table.items() if act is action)


class ProgramIn(StrictModel):
    default_commission_bps: Bps
    mode: Literal["open", "approval"]


class ProductTermsIn(StrictModel):
    """Both keys are required: `null` commission takes the program's default, `null` floor
    allows no deal below the regular price."""

    commission_bps: Bps | None
    deal_floor_minor: Annotated[int, Field(ge=1, le=10**10)] | None


class ApplicationIn(StrictModel):
    message: Annotated[str, StringConstraints(max_length=500, strip_whitespace=True)] = ""


class ProgramError(Refused):
    """A program change the rules refuse (no program, an illegal move, full...)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class ProgramStore:
    def __init__(self, client: redis.Redis, *, max_applications: int) -> None:
        self._client = client
        self._max_applications = max_applications

    # ---- the program

    async def get(self, brand: BrandId) -> dict[str, Any] | None:
        k = program_keys(brand)
        raw = text_hash(await self._client.hgetall(k.settings))
        if not raw:
            return None
        rates = {p: int(v) for p, v in text_hash(await self._client.hgetall(k.rates)).items()}
        return {"brand_id": brand, "default_commission_bps": int(raw["default_bps"]),
                "mode": raw["mode"], "created_ms": int(raw["created_ms"]),
                "updated_ms": int(raw["updated_ms"]), "rates": rates}

    async def save(self, brand: BrandId, data: ProgramIn) -> dict[str, Any]:
        """Start or change the program, then write its terms into every product."""
        k = program_keys(brand)
        now = _now_ms()
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(k.settings, "created_ms", now)
            pipe.hset(k.settings, mapping={"default_bps": data.default_commission_bps,
                                           "mode": data.mode, "updated_ms": now})
            await pipe.execute()
        await self._client.zadd(PROGRAMS, {brand: now}, nx=True)
        for product in members(await self._client.zrange(brand_products_key(brand), 0, -1)):
            await self.sync_product(brand, ProductId(product))
        return await self.get(brand) or {}

    async def set_terms(self, brand: BrandId, product: ProductId,
                        terms: ProductTermsIn) -> None:
        """A product's own commission (or the default again) and its deal floor."""
        k, p = program_keys(brand), product_keys(product)
        async with self._client.pipeline(transaction=False) as pipe:
            if terms.commission_bps is None:
                pipe.hdel(k.rates, product)
            else:
                pipe.hset(k.rates, product, terms.commission_bps)
            if terms.deal_floor_minor is None:
                pipe.hdel(p.product, "deal_floor_minor")
            else:
                pipe.hset(p.product, "deal_floor_minor", terms.deal_floor_minor)
            await pipe.execute()
        await self.sync_product(brand, product)

    async def sync_product(self, brand: BrandId, product: ProductId) -> None:
        """Write the program's terms into one product (a new one, or after a change): the
        commission reserve.lua snapshots, and who it pays (approval: the invited set)."""
        program = await self.get(brand)
        if program is None:
            return
        bps = program["rates"].get(product, program["default_commission_bps"])
        mode = "open" if program["mode"] == "open" else "invited"
        approved = members(await self._client.zrange(program_keys(brand).approved, 0, -1))
        p = product_keys(product)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hset(p.product, mapping={"commission_bps": bps, "commission_mode": mode,
                                          "updated_ms": _now_ms()})
            if approved:
                pipe.sadd(p.invited, *approved)
            await pipe.execute()

    # ---- applications

    async def act(self, brand: BrandId, creator: CreatorId, action: AppAction, *, who: str,
                  message: str = "") -> dict[str, Any]:
        """Move `creator`'s application by the table; then file it for the creator and give
        (or take back) the invited sets of the brand's products."""
        k = program_keys(brand)
        keys = [k.settings, k.applications, k.pending, k.approved, k.rejected, k.removed]
        reply = orjson.loads(await call_script(self._client, SCRIPTS["program"], keys, [
            action.value, creator, message, _now_ms(), _rules(TRANSITIONS, action),
            _rules(OPEN_TRANSITIONS, action), self._max_applications, who]))
        match reply["r"]:
            case "missing":
                raise ProgramError(404, "no-program", f"brand {brand} runs no affiliate program")
            case "open":
                raise ProgramError(409, "program-open", "an open program takes every creator; "
                                   "switch it to approval to choose who sells")
            case "illegal":
                raise ProgramError(409, "illegal-application-move",
                                   f"a {reply['state']} application cannot {action.value}")
            case "full":
                raise ProgramError(409, "program-full", f"the program has "
                                   f"{self._max_applications} applications, the most it keeps")
        application: dict[str, Any] = reply["application"]
        await self._client.zadd(creator_programs_key(creator),
                                {brand: application["applied_ms"]})
        was, now = reply["from"], application["state"]
        if was != now and AppState.APPROVED in (was, now):
            await self._invite_everywhere(brand, creator, now == AppState.APPROVED)
        return {"brand_id": brand, **application}

    async def _invite_everywhere(self, brand: BrandId, creator: CreatorId, add: bool) -> None:
        products = members(await self._client.zrange(brand_products_key(brand), 0, -1))
        async with self._client.pipeline(transaction=False) as pipe:
            for product in products:
                invited = product_keys(product).invited
                if add:
                    pipe.sadd(invited, creator)
                else:
                    pipe.srem(invited, creator)
            await pipe.execute()

    async def application(self, brand: BrandId, creator: CreatorId) -> dict[str, Any] | None:
        raw = await self._client.hget(program_keys(brand).applications, creator)
        return {"brand_id": brand, **orjson.loads(raw)} if raw else None

    async def may_sell(self, brand: BrandId, creator: CreatorId) -> bool | None:
        """None: the brand runs no program; else whether it lets `creator` sell."""
        k = program_keys(brand)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hget(k.settings, "mode")
            pipe.zscore(k.approved, creator)
            mode, approved = await pipe.execute()
        if mode is None:
            return None
        return text(mode) == "open" or approved is not None

    async def applications(self, brand: BrandId, state: AppState, *, cursor: int,
                           limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """The applications in `state`, newest first."""
        k = program_keys(brand)
        creators = members(await self._client.zrevrange(k.state(state), cursor,
                                                        cursor + limit - 1))
        raws = await self._client.hmget(k.applications, creators) if creators else []
        items = [{"brand_id": brand, **orjson.loads(r)} for r in raws if r]
        return items, cursor + limit if len(creators) == limit else None

    async def for_creator(self, creator: CreatorId, *, cursor: int,
                          limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """The creator's applications, newest first, each as its brand keeps it."""
        brands = members(await self._client.zrevrange(creator_programs_key(creator), cursor,
                                                      cursor + limit - 1))
        items = []
        for brand in brands:
            application = await self.application(BrandId(brand), creator)
            if application is not None:
                items.append(application)
        return items, cursor + limit if len(brands) == limit else None

    async def browse(self, *, cursor: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """Programs, newest first."""
        brands = members(await self._client.zrevrange(PROGRAMS, cursor, cursor + limit - 1))
        items = [p for b in brands if (p := await self.get(BrandId(b))) is not None]
        return items, cursor + limit if len(brands) == limit else None
