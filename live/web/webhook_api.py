"""Webhook endpoints over HTTP: a brand's own (its events only) and the operator's (every
brand's events); register, list, change, delete, rotate the secret (shown once), enable
again, the delivery log and resend (docs/webhooks.md).

An endpoint that is not the caller's answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from starlette.responses import Response

from checkout.ids import BrandId, is_valid_id
from checkout.models import StrictModel
from checkout.webhook_events import OPERATOR_OWNER, EventType, brand_owner
from live.accounts.auth import Role
from live.web.api import Api, Call, json_response
from live.web.catalog_api import PAGE, page_params
from live.web.problems import Problem
from live.webhooks.endpoints import public_endpoint
from live.webhooks.targets import MAX_URL_LENGTH, resolve

__all__ = ["register"]

EventName = Literal["order.paid", "order.shipped", "order.refunded", "order.cancelled",
                    "stream.scheduled", "stream.live", "stream.ended", "stock.low",
                    "product.sold_out"]
Events = Annotated[list[EventName], Field(min_length=1, max_length=len(EventType))]
Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH)]
Description = Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)]
_ROLES = (Role.BRAND, Role.OPERATOR)


class EndpointIn(StrictModel):
    url: Url
    events: Events
    description: Description = ""


class EndpointPatch(StrictModel):
    url: Url | None = None
    events: Events | None = None
    description: Description | None = None


def _types(events: list[EventName]) -> list[EventType]:
    return [EventType(e) for e in events]


async def _checked_url(call: Call[Any], url: str) -> str:
    """The URL, if its host is one webhooks may go to (422 webhook-target-refused)."""
    await resolve(url, allow_private=call.services.settings.webhook_allow_private)
    return url


async def _brand(call: Call[Any]) -> BrandId:
    brand_id = BrandId(call.param("brand"))
    if not call.need_principal().can_act_for_brand(brand_id):
        raise Problem(403, "forbidden", "a brand manages only its own webhooks")
    if not is_valid_id(brand_id) or await call.services.catalog.brand(brand_id) is None:
        raise Problem(404, "not-found", "no such brand")
    return brand_id


async def _owned(call: Call[Any]) -> dict[str, str]:
    """The endpoint in the path, if the caller may manage it (else 404, as if missing)."""
    endpoint_id = call.param("endpoint")
    record = await call.services.webhooks.get(endpoint_id)
    principal = call.need_principal()
    if record is None or not (principal.role is Role.OPERATOR
                              or record.get("owner") == brand_owner(principal.subject)):
        raise Problem(404, "not-found", "no such webhook endpoint")
    return record


async def _create(call: Call[EndpointIn], owner: str) -> Response:
    body = call.body
    url = await _checked_url(call, body.url)
    endpoint, secret = await call.services.webhooks.create(owner, url, _types(body.events),
                                                          body.description)
    return json_response({**endpoint, "secret": secret}, 201)


def register(api: Api) -> None:
    @api.endpoint("GET", "/webhooks/events", summary="The webhook event types",
                  tag="webhooks", roles=_ROLES)
    async def webhook_event_types(call: Call[Any]) -> Response:
        return json_response({"items": [e.value for e in EventType]})

    @api.endpoint("POST", "/brands/{brand}/webhooks", tag="webhooks", body=EndpointIn,
                  summary="Register a webhook endpoint for the brand's events (the secret is "
                          "in this answer only)", roles=_ROLES, status=201)
    async def create_brand_webhook(call: Call[EndpointIn]) -> Response:
        return await _create(call, brand_owner(await _brand(call)))

    @api.endpoint("GET", "/brands/{brand}/webhooks", summary="The brand's webhook endpoints",
                  tag="webhooks", roles=_ROLES)
    async def brand_webhooks(call: Call[Any]) -> Response:
        owner = brand_owner(await _brand(call))
        return json_response({"items": await call.services.webhooks.owned(owner)})

    @api.endpoint("POST", "/webhooks", tag="webhooks", body=EndpointIn, status=201,
                  summary="Register an operator's webhook endpoint (every brand's events)",
                  roles=(Role.OPERATOR,))
    async def create_operator_webhook(call: Call[EndpointIn]) -> Response:
        return await _create(call, OPERATOR_OWNER)

    @api.endpoint("GET", "/webhooks", summary="The operator's webhook endpoints",
                  tag="webhooks", roles=(Role.OPERATOR,))
    async def operator_webhooks(call: Call[Any]) -> Response:
        return json_response({"items": await call.services.webhooks.owned(OPERATOR_OWNER)})

    @api.endpoint("GET", "/webhooks/{endpoint}", summary="One webhook endpoint",
                  tag="webhooks", roles=_ROLES)
    async def get_webhook(call: Call[Any]) -> Response:
        return json_response(public_endpoint(await _owned(call)))

    @api.endpoint("PATCH", "/webhooks/{endpoint}", summary="Change a webhook endpoint's URL, "
                  "events or description", tag="webhooks", body=EndpointPatch, roles=_ROLES)
    async def update_webhook(call: Call[EndpointPatch]) -> Response:
        record = await _owned(call)
        body = call.body
        url = await _checked_url(call, body.url) if body.url is not None else None
        return json_response(await call.services.webhooks.update(
            record["id"], url=url, events=_types(body.events) if body.events else None,
            description=body.description))

    @api.endpoint("DELETE", "/webhooks/{endpoint}", summary="Delete a webhook endpoint",
                  tag="webhooks", roles=_ROLES, status=204)
    async def delete_webhook(call: Call[Any]) -> Response:
        record = await _owned(call)
        await call.services.webhooks.delete(record["id"], record["owner"])
        return Response(status_code=204)

    @api.endpoint("POST", "/webhooks/{endpoint}/secret", summary="Rotate the signing secret "
                  "(the new one is in this answer only; the old one signs on for a grace "
                  "period)", tag="webhooks", roles=_ROLES)
    async def rotate_webhook_secret(call: Call[Any]) -> Response:
        record = await _owned(call)
        endpoint, secret = await call.services.webhooks.rotate(record["id"])
        return json_response({**endpoint, "secret": secret})

    @api.endpoint("POST", "/webhooks/{endpoint}/enable", summary="Enable a disabled endpoint "
                  "again", tag="webhooks", roles=_ROLES)
    async def enable_webhook(call: Call[Any]) -> Response:
        record = await _owned(call)
        return json_response(await call.services.webhooks.enable(record["id"]))

    @api.endpoint("GET", "/webhooks/{endpoint}/deliveries", summary="The endpoint's delivery "
                  "log, newest first", tag="webhooks", roles=_ROLES, params=PAGE)
    async def webhook_deliveries(call: Call[Any]) -> Response:
        record = await _owned(call)
        cursor, limit = page_params(call)
        items = await call.services.webhooks.deliveries(record["id"], cursor, limit)
        return json_response({"items": items,
                              "next_cursor": cursor + limit if len(items) == limit else None})

    @api.endpoint("POST", "/webhooks/{endpoint}/deliveries/{delivery}/resend", tag="webhooks",
                  summary="Send a delivery's event again (a new delivery, same webhook-id)",
                  roles=_ROLES, status=202)
    async def resend_webhook(call: Call[Any]) -> Response:
        record = await _owned(call)
        delivery = await call.services.webhooks.resend(record["id"], call.param("delivery"))
        return json_response(delivery, 202)
