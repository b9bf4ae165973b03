"""Webhook endpoints: who registered them (a brand, or the operator), where they point,
which events they want, their signing secret (shown once), and their delivery log.

Records live in their owner's webhook partition (`{wh:<k>}`, checkout/store/keys.py
HookKeys, `owner_partition`); hook_emit.lua reads the owner sets and the `events` and
`enabled` fields to fan an event out. An endpoint id names no partition (ids made before
the partitions kept theirs), so a look-up by id asks every partition at once, one pipeline:
the API's calls only, never the delivery path. The secret is stored as it is (an HMAC
needs it) and never leaves through a listing, only in the answer that made or rotated it.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.typing import EncodableT, FieldT

from checkout.errors import Refused
from checkout.store.keys import HookKeys, hook_keys
from checkout.store.replies import members, text, text_hash
from checkout.webhook_events import EventType, HookRecords, owner_partition

__all__ = ["EndpointStore", "EndpointLimits", "new_secret", "public_endpoint", "public_delivery"]

_PUBLIC_FIELDS = ("id", "owner", "url", "description", "created_ms", "updated_ms",
                  "failing_since_ms", "disabled_ms", "disabled_reason")


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _now_ms() -> int:
    return int(time.time() * 1000)


def public_endpoint(record: dict[str, str]) -> dict[str, Any]:
    """What an API answer shows of an endpoint: never its secret."""
    out: dict[str, Any] = {k: record.get(k, "") for k in _PUBLIC_FIELDS}
    for k in ("created_ms", "updated_ms", "failing_since_ms", "disabled_ms"):
        out[k] = int(out[k] or 0)
    out["events"] = record.get("events", "").split()
    out["enabled"] = record.get("enabled") == "1"
    out["failures"] = int(record.get("failures") or 0)
    return out


def public_delivery(record: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: record.get(k, "") for k in (
        "id", "endpoint", "event", "type", "resource", "status", "last_error")}
    for k in ("attempts", "last_status", "created_ms", "updated_ms", "next_ms",
              "last_attempt_ms"):
        out[k] = int(record.get(k) or 0)
    return out


@dataclass(frozen=True, slots=True)
class EndpointLimits:
    max_per_owner: int  # endpoints one brand (or the operator) may have
    rotation_grace_ms: int  # the old secret still signs (a second signature) this long


class EndpointStore:
    def __init__(self, client: redis.Redis, records: HookRecords, limits: EndpointLimits) -> None:
        self._client = client
        self._records = records
        self._limits = limits

    async def create(self, owner: str, url: str, events: Sequence[EventType],
                     description: str) -> tuple[dict[str, Any], str]:
        """A new endpoint and its secret (the one time it is shown)."""
        hooks = self._hooks(owner)
        if await self._client.scard(hooks.owner(owner)) >= self._limits.max_per_owner:
            raise Refused(409, "too-many-endpoints",
                          f"at most {self._limits.max_per_owner} webhook endpoints per owner")
        endpoint_id = "we_" + secrets.token_hex(8)
        secret, now = new_secret(), _now_ms()
        record: dict[FieldT, EncodableT] = {
            "id": endpoint_id, "owner": owner, "url": url, "description": description,
            "events": " ".join(sorted({e.value for e in events})), "secret": secret,
            "enabled": "1", "created_ms": now, "updated_ms": now, "failures": 0,
            "failing_since_ms": 0}
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(hooks.endpoint(endpoint_id), mapping=record)
            pipe.sadd(hooks.owner(owner), endpoint_id)
            await pipe.execute()
        return public_endpoint({str(k): str(v) for k, v in record.items()}), secret

    def _hooks(self, owner: str) -> HookKeys:
        return hook_keys(owner_partition(owner, self._records.partitions))

    async def get(self, endpoint_id: str) -> dict[str, str] | None:
        """The whole record (secret included: for ownership checks), from whichever
        partition holds it."""
        async with self._client.pipeline(transaction=False) as pipe:
            for partition in range(self._records.partitions):
                pipe.hgetall(hook_keys(partition).endpoint(endpoint_id))
            found = [r for r in await pipe.execute() if r]
        return text_hash(found[0]) if found else None

    async def _located(self, endpoint_id: str) -> tuple[HookKeys, dict[str, str]]:
        """The endpoint's partition's keys and its record (404 if there is none)."""
        record = await self.get(endpoint_id)
        if record is None:
            raise Refused(404, "not-found", "no such webhook endpoint")
        return self._hooks(record["owner"]), record

    async def owned(self, owner: str) -> list[dict[str, Any]]:
        hooks = self._hooks(owner)
        ids = sorted(text(m) for m in await self._client.smembers(hooks.owner(owner)))
        async with self._client.pipeline(transaction=False) as pipe:
            for endpoint_id in ids:
                pipe.hgetall(hooks.endpoint(endpoint_id))
            rows = await pipe.execute()
        return [public_endpoint(text_hash(r)) for r in rows if r]

    async def update(self, endpoint_id: str, *, url: str | None, events: Sequence[EventType] | None,
                     description: str | None) -> dict[str, Any]:
        hooks, _ = await self._located(endpoint_id)
        changes: dict[FieldT, EncodableT] = {"updated_ms": _now_ms()}
        if url is not None:
            changes["url"] = url
        if events is not None:
            changes["events"] = " ".join(sorted({e.value for e in events}))
        if description is not None:
            changes["description"] = description
        await self._client.hset(hooks.endpoint(endpoint_id), mapping=changes)
        return await self._must_public(endpoint_id)

    async def enable(self, endpoint_id: str) -> dict[str, Any]:
        """Enabled again, its failure streak forgotten (deliveries given up stay given up:
        resend them)."""
        hooks, _ = await self._located(endpoint_id)
        await self._client.hset(hooks.endpoint(endpoint_id), mapping={
            "enabled": "1", "failures": 0, "failing_since_ms": 0, "disabled_ms": 0,
            "disabled_reason": "", "updated_ms": _now_ms()})
        return await self._must_public(endpoint_id)

    async def rotate(self, endpoint_id: str) -> tuple[dict[str, Any], str]:
        """A new secret; the old one signs too (a second signature) for the grace period."""
        hooks, record = await self._located(endpoint_id)
        secret, now = new_secret(), _now_ms()
        await self._client.hset(hooks.endpoint(endpoint_id), mapping={
            "secret": secret, "old_secret": record["secret"],
            "old_until_ms": now + self._limits.rotation_grace_ms, "updated_ms": now})
        return await self._must_public(endpoint_id), secret

    async def delete(self, endpoint_id: str, owner: str) -> None:
        """Gone at once: deliveries still queued for it are given up as they come up."""
        hooks = self._hooks(owner)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(hooks.endpoint(endpoint_id), hooks.log(endpoint_id))
            pipe.srem(hooks.owner(owner), endpoint_id)
            await pipe.execute()

    async def deliveries(self, endpoint_id: str, cursor: int, limit: int) -> list[dict[str, Any]]:
        """Newest first."""
        hooks, _ = await self._located(endpoint_id)
        ids = members(await self._client.zrevrange(hooks.log(endpoint_id), cursor,
                                                   cursor + limit - 1))
        async with self._client.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(hooks.delivery(delivery_id))
            rows = await pipe.execute()
        return [public_delivery(text_hash(r)) for r in rows if r]

    async def _delivery(self, hooks: HookKeys, delivery_id: str) -> dict[str, str] | None:
        raw = await self._client.hgetall(hooks.delivery(delivery_id))
        return text_hash(raw) if raw else None

    async def resend(self, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        """A new delivery of the same event (the same `webhook-id`), at the tail of its
        resource's queue."""
        hooks, record = await self._located(endpoint_id)
        delivery = await self._delivery(hooks, delivery_id)
        if delivery is None or delivery.get("endpoint") != endpoint_id:
            raise Refused(404, "not-found", "no such delivery")
        made = await self._records.resend(self._client, delivery["event"], endpoint_id,
                                          record["owner"])
        if made is None:
            raise Refused(410, "event-expired", "the event is no longer kept; it cannot be resent")
        again = await self._delivery(hooks, made)
        assert again is not None
        return public_delivery(again)

    async def _must_public(self, endpoint_id: str) -> dict[str, Any]:
        _, record = await self._located(endpoint_id)
        return public_endpoint(record)
