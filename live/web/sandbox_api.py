"""The sandbox gateway's tokenization endpoint: what Stripe.js is to Stripe.

`POST /sandbox/tokens` takes a card (number, expiry, CVC) from the page and answers an
opaque token with the card's brand, last four digits and expiry; livecart's own API only
ever sees the token. It belongs to the gateway, not to livecart's API (no account needed,
as Stripe's publishable key needs none), so it is a plain route outside `/api/v1` and
answers 404 when the node pays through another gateway.

The number and the CVC live in this request's memory only: the gateway stores the
behaviour and the summary (checkout/payments/cards.py), validation messages never quote
them, and nothing here logs the body.
"""

from __future__ import annotations

import datetime
from typing import Annotated

import pydantic
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from checkout.models import StrictModel
from checkout.payments import CardCheck, SandboxFull, SandboxGateway, check_card
from live.web.api import json_response, read_json
from live.web.deps import services_of
from live.web.problems import Problem

__all__ = ["CardIn", "sandbox_routes"]


class CardIn(StrictModel):
    """A card as the page's form sends it; `check_card` says what else is wrong."""

    number: Annotated[str, pydantic.StringConstraints(max_length=32)]
    exp_month: int
    exp_year: int
    cvc: Annotated[str, pydantic.StringConstraints(max_length=4)]


async def create_token(request: Request) -> Response:
    services = services_of(request)
    gateway = services.gateway
    if not isinstance(gateway, SandboxGateway):
        raise Problem(404, "not-found", "this node pays through another gateway")
    card = await read_json(request, CardIn, services.settings.max_body_bytes)
    checked = check_card(card.number, card.exp_month, card.exp_year, card.cvc,
                         datetime.datetime.now(datetime.UTC).date())
    if not isinstance(checked, CardCheck):
        raise Problem(422, "validation-error", "the card has invalid fields",
                      errors=[{"field": e.field, "message": e.message} for e in checked])
    try:
        saved = await gateway.tokenize(checked)
    except SandboxFull:
        raise Problem(503, "sandbox-full", "the sandbox keeps no more cards") from None
    return json_response({"token": saved.token, "brand": saved.brand, "last4": saved.last4,
                          "exp_month": saved.exp_month, "exp_year": saved.exp_year}, 201,
                         {"Cache-Control": "no-store"})


def sandbox_routes() -> list[Route]:
    return [Route("/sandbox/tokens", create_token, methods=["POST"])]
