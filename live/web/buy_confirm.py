"""A purchase confirmed with a passkey: the buy API's step-up (docs/accounts.md, "Buy
confirmation"), all of it here.

With the node's `buy_confirm` at "passkey" (the default), a buy made with a page session
whose account has a passkey runs only with a fresh assertion bound to that very purchase:
1. `POST /api/v1/buy/confirmation` with the buy's body and Idempotency-Key: request options
   whose challenge carries the purchase's digest (`purchase_digest`).
2. `POST /api/v1/buy` with the same body plus `passkey` (the assertion): verified before
   the buy runs; the digest is computed again from what is bought, so an answer for one
   purchase never pays for another (another product, quantity, price or key).
A retry of a confirmed buy (same body, same key) within `passkey_challenge_ttl_s` needs no
new tap: it can only replay that purchase. Without a confirmation: 403 `passkey-required`.
Bearer tokens (API clients, the seeded demo) are never asked; an assertion sent with one is
checked all the same. `buy_confirm=none` turns the step-up off.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import orjson
import pydantic
from starlette.responses import Response

from live.web.api import Call, json_response
from live.web.deps import WebServices
from live.web.problems import Problem
from live.web.relying_party import relying_party
from live.web.webauthn_json import AssertionIn

__all__ = ["purchase_digest", "buy_confirm_mode", "confirmation_options",
           "require_confirmation", "CONFIRMATION_PATH"]

CONFIRMATION_PATH = "/api/v1/buy/confirmation"


def purchase_digest(body: pydantic.BaseModel, idempotency_key: str) -> bytes:
    """SHA-256 of the buy as the buyer saw it: every field of the body but the assertion
    (product, variant, quantity, the price shown, stream, attribution) and the
    Idempotency-Key, as one canonical JSON document (sorted keys, defaults filled in)."""
    document = {"buy": body.model_dump(mode="json", exclude={"passkey"}),
                "idempotency_key": idempotency_key}
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).digest()


async def buy_confirm_mode(services: WebServices, account_id: str) -> Literal["passkey", "none"]:
    """What a page session of this account must do to buy: confirm with a passkey, or not."""
    if services.settings.buy_confirm == "passkey" and await services.passkeys.store.count(account_id):
        return "passkey"
    return "none"


async def confirmation_options(call: Call[Any], idempotency_key: str) -> Response:
    """Request options for the buyer's passkeys, bound to this purchase."""
    buyer = call.need_principal().subject
    options = await call.services.passkeys.confirmation_options(
        buyer, relying_party(call.request), purchase_digest(call.body, idempotency_key))
    return json_response(options)


async def require_confirmation(call: Call[Any], idempotency_key: str,
                               assertion: AssertionIn | None) -> None:
    """Before a buy runs: verify its assertion if it has one; else refuse it (403
    `passkey-required`) when the buyer must confirm and has not confirmed this purchase."""
    buyer = call.need_principal().subject
    passkeys = call.services.passkeys
    digest = purchase_digest(call.body, idempotency_key)
    if assertion is not None:
        await passkeys.confirm(buyer, relying_party(call.request),
                               assertion.model_dump(mode="json", exclude_none=True), digest,
                               idempotency_key)
        return
    if "authorization" in call.request.headers:  # a bearer token: an API client
        return
    if await buy_confirm_mode(call.services, buyer) == "none":
        return
    if await passkeys.confirmed(buyer, idempotency_key, digest):
        return
    raise Problem(403, "passkey-required", "confirm this purchase with your passkey: ask "
                  f"{CONFIRMATION_PATH} with this body and key, then send the answer as "
                  "`passkey`", options=CONFIRMATION_PATH)
