"""Stripe's side of a node that pays through Stripe (LIVECART_PAYMENTS=stripe).

- `POST /api/v1/me/cards/setup` (buyer): a SetupIntent for the buyer's Stripe customer;
  the page confirms its `client_secret` with Stripe.js (the card goes to Stripe only).
- `POST /api/v1/me/cards` (buyer) `{"setup_intent": "seti_..."}`: once confirmed, the
  payment token (`pm_...`) to save in the wallet (`PUT /api/v1/me/wallet`); refused
  unless the SetupIntent is this buyer's and succeeded.
- `POST /webhooks/stripe`: events signed with `LIVECART_STRIPE_WEBHOOK_SECRET`
  (`Stripe-Signature`); one that does not verify is a 400 problem and changes nothing.

Only a node started with LIVECART_PAYMENTS=stripe has them (live/node/app.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from checkout.models import StrictModel
from checkout.payments import PaymentError
from live.accounts.auth import Role
from live.web.api import Api, Call, json_response, read_body
from live.web.deps import WebServices, services_of
from live.web.problems import Problem

if TYPE_CHECKING:  # the SDK loads only on a node that pays through Stripe
    from checkout.payments.stripe_gateway import StripeGateway

__all__ = ["register", "webhook_routes"]

log = logging.getLogger(__name__)


class SavedCardIn(StrictModel):
    setup_intent: Annotated[str, StringConstraints(pattern=r"^seti_[A-Za-z0-9_]{1,200}$")]


def _stripe(services: WebServices) -> "StripeGateway":
    gateway: StripeGateway | None = services.stripe
    if gateway is None:  # routes and services built from different settings
        raise Problem(404, "not-found", "this node does not pay through Stripe")
    return gateway


async def _gateway(awaitable: Any) -> Any:
    try:
        return await awaitable
    except PaymentError as exc:
        if exc.retry_same_order:
            raise Problem(503, "payment-gateway-unavailable", "Stripe did not answer; retry",
                          headers={"Retry-After": "1"}) from None
        raise Problem(422, "payment-method-refused", str(exc)) from None


def register(api: Api) -> None:
    buyer = (Role.BUYER,)

    @api.endpoint("POST", "/me/cards/setup", summary="Start saving a card (Stripe SetupIntent)",
                  tag="buy", roles=buyer, status=201)
    async def setup_card(call: Call[Any]) -> Response:
        gateway = _stripe(call.services)
        setup = await _gateway(gateway.setup_card(call.need_principal().subject))
        return json_response({"setup_intent": setup.setup_intent,
                              "client_secret": setup.client_secret, "customer": setup.customer},
                             201, {"Cache-Control": "no-store"})

    @api.endpoint("POST", "/me/cards", summary="The payment token of a confirmed SetupIntent",
                  tag="buy", body=SavedCardIn, roles=buyer)
    async def saved_card(call: Call[SavedCardIn]) -> Response:
        gateway = _stripe(call.services)
        token = await _gateway(gateway.saved_card(call.need_principal().subject,
                                                  call.body.setup_intent))
        return json_response({"payment_token": token})


async def stripe_webhook(request: Request) -> Response:
    services = services_of(request)
    gateway = _stripe(services)
    payload = await read_body(request, "application/json", services.settings.max_body_bytes)
    try:
        event = gateway.verify_event(payload, request.headers.get("stripe-signature"))
    except PaymentError as exc:
        log.warning("Stripe webhook refused: %s", exc)
        raise Problem(400, "webhook-signature-invalid", str(exc)) from None
    applied = await _gateway(gateway.apply_event(event))  # not stored: Stripe sends it again
    log.info("Stripe event %s (%s): %s", event.id, event.type, "applied" if applied else "no change")
    return json_response({"received": True, "applied": applied})


def webhook_routes() -> list[Route]:
    return [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]
