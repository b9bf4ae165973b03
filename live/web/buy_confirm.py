"""A purchase confirmed with a passkey: the step-up of every way a page session pays
(docs/accounts.md, "Buy confirmation"), all of it here.

With the node's `buy_confirm` at "passkey" (the default), a payment made with a page session
whose account has a passkey runs only with a fresh assertion bound to that very purchase.
Three ways pay, each with its confirmation endpoint beside it:
- `POST /api/v1/buy` (what: the buy's body and its Idempotency-Key);
- `POST /api/v1/cart/checkout` (what: the cart's lines, card and address);
- `POST /api/v1/orders/{id}/pay` (what: the held order, its amount, card and address).
1. `POST <path>/confirmation` with the same request: request options whose challenge
   carries the purchase's digest (`Purchase`).
2. The request itself with `passkey` (the assertion) in its body: verified before anything
   is paid; the digest is computed again from what would be paid, so an answer for one
   purchase never pays for another (another product, quantity, price, key, cart or card).
A retry of a confirmed purchase (the same one) within `passkey_challenge_ttl_s` needs no new
tap: it can only replay that purchase. Without a confirmation: 403 `passkey-required`.
Bearer tokens (API clients, the seeded demo) are never asked; an assertion sent with one is
checked all the same. `buy_confirm=none` turns the step-up off.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import orjson
import pydantic
from starlette.responses import Response

from live.accounts.passkey_auth import PasskeyAuth
from live.settings import Settings
from live.web.api import Call, json_response
from live.web.problems import Problem
from live.web.relying_party import relying_party
from live.web.webauthn_json import AssertionIn

__all__ = ["Purchase", "Confirming", "buy_purchase", "buy_confirm_mode", "confirmation_options",
           "require_confirmation"]


@dataclass(frozen=True, slots=True)
class Purchase:
    """What one passkey tap pays for. `digest` (SHA-256 of the purchase as one canonical JSON
    document) goes into the challenge; `name` is what a confirmation is remembered under,
    so a retry of the very same purchase needs no new tap."""

    digest: bytes
    name: str
    path: str  # where its confirmation options are asked for

    @classmethod
    def of(cls, kind: str, name: str, what: Any, path: str) -> "Purchase":
        document = {"kind": kind, "name": name, "what": what}
        digest = hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).digest()
        return cls(digest, f"{kind}:{name}", path)


def buy_purchase(body: pydantic.BaseModel, idempotency_key: str) -> Purchase:
    """A one-tap buy as the buyer saw it: every field of the body but the assertion (product,
    variant, quantity, the price shown, stream, attribution, card, address) and its key."""
    return Purchase.of("buy", idempotency_key, body.model_dump(mode="json", exclude={"passkey"}),
                       "/api/v1/buy/confirmation")


class Confirming(Protocol):
    """What `buy_confirm_mode` reads: the web's services, and the hub's (a comment's claim)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def passkeys(self) -> PasskeyAuth: ...


async def buy_confirm_mode(services: Confirming, account_id: str) -> Literal["passkey", "none"]:
    """What a page session of this account must do to buy: confirm with a passkey, or not."""
    if services.settings.buy_confirm == "passkey" and await services.passkeys.store.count(account_id):
        return "passkey"
    return "none"


async def confirmation_options(call: Call[Any], purchase: Purchase) -> Response:
    """Request options for the buyer's passkeys, bound to this purchase."""
    buyer = call.need_principal().subject
    options = await call.services.passkeys.confirmation_options(
        buyer, relying_party(call.request), purchase.digest)
    return json_response(options)


async def require_confirmation(call: Call[Any], purchase: Purchase | Callable[[], Purchase],
                               assertion: AssertionIn | None) -> None:
    """Before a purchase is paid: verify its assertion if it has one; else refuse it (403
    `passkey-required`) when the buyer must confirm and has not confirmed this purchase.
    `purchase` may be a function that makes it: an API client (a bearer token) has nothing
    to confirm, and a one-tap buy's digest costs a body dump and a hash."""
    buyer = call.need_principal().subject
    passkeys = call.services.passkeys
    if assertion is None and call.by_header:  # an API client
        return
    if callable(purchase):
        purchase = purchase()
    if assertion is not None:
        await passkeys.confirm(buyer, relying_party(call.request),
                               assertion.model_dump(mode="json", exclude_none=True),
                               purchase.digest, purchase.name)
        return
    if await buy_confirm_mode(call.services, buyer) == "none":
        return
    if await passkeys.confirmed(buyer, purchase.name, purchase.digest):
        return
    raise Problem(403, "passkey-required", "confirm this purchase with your passkey: ask "
                  f"{purchase.path} with this request, then send the answer as `passkey`",
                  options=purchase.path)
