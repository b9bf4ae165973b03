"""A local server that speaks the part of Stripe's API livecart uses, on its wire format.

What the official SDK sends and reads: form-encoded bodies (`metadata[order_id]=...`,
`expand[0]=...`), `Authorization: Bearer <secret key>`, `Idempotency-Key` (the same key
and parameters replay the first answer with `Idempotent-Replayed: true`; other
parameters are a 400 `idempotency_error`; a request refused before it ran is not
kept), JSON objects with their `object` names, errors as `{"error": {"type", "code",
"decline_code", "message", "param", "payment_intent"}}` (card errors are 402), and
webhooks signed with the `Stripe-Signature` scheme (`t=<unix time>,v1=<HMAC-SHA256 of
"<t>.<body>">`).

Test payment methods, as Stripe's docs name them: `pm_card_visa` (approves),
`pm_card_chargeDeclined` (`card_declined`, `generic_decline`),
`pm_card_chargeDeclinedInsufficientFunds` (`insufficient_funds`),
`pm_card_chargeDeclinedExpiredCard` (`expired_card`). Confirming a SetupIntent with
one saves a new payment method, attached to the SetupIntent's customer, that behaves
the same.

Stripe.js too, as far as a page uses it (tests/stripe_fake.js, served at `/v3/`): its card
Element, and `confirmCardSetup`, which confirms a SetupIntent from the page with the
publishable key and the intent's client secret, sending the raw card: test numbers as
Stripe's docs name them (4242 4242 4242 4242 saves a card that approves, ...0000 9995 one
that is declined for insufficient funds when charged; ...0000 0002 and ...0000 0069 are
refused at once, `card_declined` and `expired_card`), with CORS headers as Stripe's API has.

`down` makes every request a 503 `api_error` and `rate_limited` a 429, both without
doing anything, as an outage would. `stall`, when set to an event, holds every answer
until the event is set, after the request ran (a response lost on the way back).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["StripeFake", "serve_fake", "sign", "fake"]

# payment method -> (error code, decline code); None: approves
TEST_METHODS: dict[str, tuple[str, str] | None] = {
    "pm_card_visa": None,
    "pm_card_chargeDeclined": ("card_declined", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds"),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card"),
}
# what each test method's card looks like (PaymentMethod.card)
TEST_CARDS: dict[str, str] = {"pm_card_visa": "4242", "pm_card_chargeDeclined": "0002",
                              "pm_card_chargeDeclinedInsufficientFunds": "9995",
                              "pm_card_chargeDeclinedExpiredCard": "0069"}
# a card number typed into Stripe.js -> the test method it saves, or the error at setup
TEST_NUMBERS: dict[str, str | tuple[str, str]] = {
    "4242424242424242": "pm_card_visa",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
    "4000000000000002": ("card_declined", "generic_decline"),
    "4000000000000069": ("expired_card", "expired_card"),
}
DECLINE_MESSAGES = {"generic_decline": "Your card was declined.",
                    "insufficient_funds": "Your card has insufficient funds.",
                    "expired_card": "Your card has expired."}
CANCELABLE = {"requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action", "processing"}


class Fail(Exception):
    """An error answer; `kept`: whether the idempotency layer stores it (a request that
    ran) or not (refused before it ran)."""

    def __init__(self, status: int, kept: bool = True, **error: Any) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.kept = kept
        self.error = error


def missing(kind: str, value: str, param: str) -> Fail:
    return Fail(404, type="invalid_request_error", code="resource_missing", param=param,
                message=f"No such {kind}: '{value}'")


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header for `payload`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class StripeFake:
    api_key: str = "sk_test_livecart"
    publishable_key: str = "pk_test_livecart"
    down: bool = False
    rate_limited: bool = False
    stall: asyncio.Event | None = None
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    setup_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)  # saved ones
    requests: list[tuple[str, str, dict[str, Any], str | None]] = field(default_factory=list)
    _kept: dict[str, tuple[Any, int, bytes]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):08d}"

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/{path:path}", self._endpoint, methods=["GET", "POST"]),
            Route("/v3/", _stripe_js, methods=["GET"])])

    # -- the HTTP edge ------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        if request.method == "POST" and request.path_params["path"].endswith("/confirm") \
                and request.path_params["path"].startswith("setup_intents/"):
            params = _unflatten(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            if params.get("key") == self.publishable_key:
                return self._from_the_page(request.path_params["path"].split("/")[1], params)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, {"type": "invalid_request_error",
                                "message": "Invalid API Key provided"})
        if self.down:
            return _error(503, {"type": "api_error", "message": "Stripe is down (fake)"})
        if self.rate_limited:
            return _error(429, {"type": "invalid_request_error", "code": "rate_limit",
                                "message": "Too many requests"})
        raw = (await request.body()).decode() if request.method == "POST" else \
            request.url.query
        params = _unflatten(parse_qsl(raw, keep_blank_values=True))
        path = request.path_params["path"]
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        self.requests.append((request.method, path, params, key))
        fingerprint = (request.method, path, params)
        if key is not None and key in self._kept:
            first, status, body = self._kept[key]
            if first != fingerprint:
                return _error(400, {"type": "idempotency_error", "message": (
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.")})
            return Response(body, status, media_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
        try:
            status, body = 200, orjson.dumps(self._route(request.method, path, params))
        except Fail as fail:
            if not fail.kept:
                return _error(fail.status, fail.error)
            status, body = fail.status, orjson.dumps({"error": fail.error})
        if key is not None:
            self._kept[key] = (fingerprint, status, body)
        if self.stall is not None:
            await self.stall.wait()
        return Response(body, status, media_type="application/json")

    def _route(self, method: str, path: str, p: dict[str, Any]) -> dict[str, Any]:
        parts = path.split("/")
        match method, parts:
            case "POST", ["payment_intents"]:
                return self.create_intent(p)
            case "GET", ["payment_intents", pi]:
                return self.intent_view(self.intent(pi), expand=p.get("expand", []))
            case "POST", ["payment_intents", pi, "capture"]:
                return self.capture(self.intent(pi))
            case "POST", ["payment_intents", pi, "cancel"]:
                return self.cancel(self.intent(pi))
            case "POST", ["refunds"]:
                return self.refund(p)
            case "POST", ["customers"]:
                customer = {"id": self.new_id("cus"), "object": "customer",
                            "metadata": p.get("metadata", {})}
                self.customers[customer["id"]] = customer
                return customer
            case "POST", ["setup_intents"]:
                return self.create_setup(p)
            case "GET", ["setup_intents", seti]:
                return self.setup(seti)
            case "POST", ["setup_intents", seti, "confirm"]:
                return self.confirm_setup(self.setup(seti), p)
            case "GET", ["payment_methods", pm]:
                return self.payment_method(pm)
        raise Fail(404, kept=False, type="invalid_request_error",
                   message=f"Unrecognized request URL ({method}: /v1/{path})")

    def _from_the_page(self, seti: str, p: dict[str, Any]) -> Response:
        """Stripe.js confirming a SetupIntent with the raw card: allowed with the intent's
        client secret only; answered to any origin (CORS), as Stripe's API is."""
        cors = {"Access-Control-Allow-Origin": "*"}
        self.requests.append(("POST", f"setup_intents/{seti}/confirm", p, None))
        intent = self.setup_intents.get(seti)
        if intent is None or p.get("client_secret") != intent["client_secret"]:
            return _error(404, {"type": "invalid_request_error", "code": "resource_missing",
                                "message": f"No such setupintent: '{seti}'"}, cors)
        number = p.get("payment_method_data", {}).get("card", {}).get("number", "")
        outcome = TEST_NUMBERS.get(number, ("incorrect_number", ""))
        if isinstance(outcome, tuple):
            code, decline = outcome
            message = DECLINE_MESSAGES.get(decline, "Your card number is incorrect.")
            return _error(402, {"type": "card_error", "code": code, "decline_code": decline,
                                "message": message, "setup_intent": intent}, cors)
        view = self.confirm_setup(intent, {"payment_method": outcome})
        return Response(orjson.dumps(view), 200, media_type="application/json", headers=cors)

    # -- PaymentIntents -----------------------------------------------------------

    def intent(self, pi: str) -> dict[str, Any]:
        if pi not in self.intents:
            raise missing("payment_intent", pi, "intent")
        return self.intents[pi]

    def intent_view(self, intent: dict[str, Any], expand: Sequence[str] = ()) -> dict[str, Any]:
        view = dict(intent)
        if "latest_charge" in expand and intent["latest_charge"]:
            view["latest_charge"] = dict(self.charges[intent["latest_charge"]])
        return view

    def create_intent(self, p: dict[str, Any]) -> dict[str, Any]:
        amount = p.get("amount", "")
        if not amount.isdigit() or int(amount) < 1:
            raise Fail(400, kept=False, type="invalid_request_error", param="amount",
                       code="parameter_invalid_integer", message="Invalid integer: " + amount)
        method = p.get("payment_method", "")
        behaviour = self.behaviour_of(method, p.get("customer"))
        intent = {
            "id": self.new_id("pi"), "object": "payment_intent", "amount": int(amount),
            "amount_capturable": 0, "amount_received": 0, "currency": p.get("currency"),
            "capture_method": p.get("capture_method", "automatic"),
            "customer": p.get("customer"), "payment_method": method,
            "metadata": p.get("metadata", {}), "status": "requires_confirmation",
            "latest_charge": None, "last_payment_error": None, "cancellation_reason": None,
            "livemode": False, "created": int(time.time()),
        }
        self.intents[intent["id"]] = intent
        if p.get("confirm") != "true":
            return intent
        charge = {"id": self.new_id("ch"), "object": "charge", "amount": int(amount),
                  "amount_captured": 0, "amount_refunded": 0, "captured": False,
                  "refunded": False, "payment_intent": intent["id"], "status": "succeeded"}
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        if behaviour is not None:
            code, decline = behaviour
            charge["status"] = "failed"
            error = {"type": "card_error", "code": code, "decline_code": decline,
                     "message": DECLINE_MESSAGES[decline], "charge": charge["id"]}
            intent.update(status="requires_payment_method", last_payment_error=error)
            raise Fail(402, **error, payment_intent=self.intent_view(intent))
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=int(amount))
        else:
            intent.update(status="succeeded", amount_received=int(amount))
            charge.update(captured=True, amount_captured=int(amount))
        return intent

    def behaviour_of(self, method: str, customer: str | None) -> tuple[str, str] | None:
        if method in TEST_METHODS:
            return TEST_METHODS[method]
        saved = self.methods.get(method)
        if saved is None:
            raise missing("PaymentMethod", method, "payment_method")
        if saved["customer"] != customer:
            raise Fail(400, type="invalid_request_error", param="customer", message=(
                f"The provided PaymentMethod {method} belongs to a Customer; pass that "
                "Customer's id as customer."))
        return TEST_METHODS[saved["like"]]

    def capture(self, intent: dict[str, Any]) -> dict[str, Any]:
        if intent["status"] != "requires_capture":
            raise _unexpected(intent, "captured", "requires_capture")
        charge = self.charges[intent["latest_charge"]]
        charge.update(captured=True, amount_captured=intent["amount"])
        intent.update(status="succeeded", amount_received=intent["amount"], amount_capturable=0)
        return intent

    def cancel(self, intent: dict[str, Any]) -> dict[str, Any]:
        if intent["status"] not in CANCELABLE:
            raise _unexpected(intent, "canceled", ", ".join(sorted(CANCELABLE)))
        intent.update(status="canceled", amount_capturable=0, cancellation_reason="requested_by_customer")
        return intent

    def refund(self, p: dict[str, Any]) -> dict[str, Any]:
        intent = self.intent(p.get("payment_intent", ""))
        if intent["status"] != "succeeded":
            raise Fail(400, type="invalid_request_error", code="charge_not_captured",
                       message="This PaymentIntent has no captured charge to refund.")
        charge = self.charges[intent["latest_charge"]]
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining == 0:
            raise Fail(400, type="invalid_request_error", code="charge_already_refunded",
                       message=f"Charge {charge['id']} has already been refunded.")
        amount = int(p["amount"]) if "amount" in p else remaining
        if amount > remaining:
            raise Fail(400, type="invalid_request_error", code="amount_too_large", param="amount",
                       message=f"Refund amount ({amount}) is greater than unrefunded amount "
                               f"on charge ({remaining})")
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        refund = {"id": self.new_id("re"), "object": "refund", "amount": amount,
                  "charge": charge["id"], "payment_intent": intent["id"],
                  "currency": intent["currency"], "status": "succeeded"}
        self.refunds[refund["id"]] = refund
        return refund

    # -- SetupIntents -------------------------------------------------------------

    def create_setup(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("customer") not in self.customers:
            raise missing("customer", p.get("customer", ""), "customer")
        seti = self.new_id("seti")
        intent = {"id": seti, "object": "setup_intent", "customer": p["customer"],
                  "client_secret": f"{seti}_secret_fake", "status": "requires_payment_method",
                  "payment_method": None, "usage": p.get("usage", "off_session")}
        self.setup_intents[seti] = intent
        return intent

    def setup(self, seti: str) -> dict[str, Any]:
        if seti not in self.setup_intents:
            raise missing("setupintent", seti, "intent")
        return self.setup_intents[seti]

    def confirm_setup(self, intent: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        like = p.get("payment_method", "")
        if like not in TEST_METHODS:
            raise missing("PaymentMethod", like, "payment_method")
        method = {"id": self.new_id("pm"), "object": "payment_method",
                  "customer": intent["customer"], "like": like}
        self.methods[method["id"]] = method
        intent.update(status="succeeded", payment_method=method["id"])
        return intent

    def payment_method(self, pm: str) -> dict[str, Any]:
        saved = self.methods.get(pm)
        if saved is None:
            raise missing("payment_method", pm, "payment_method")
        return {"id": pm, "object": "payment_method", "type": "card",
                "customer": saved["customer"],
                "card": {"brand": "visa", "last4": TEST_CARDS[saved["like"]],
                         "exp_month": 12, "exp_year": 2034}}

    # -- webhooks -----------------------------------------------------------------

    def event(self, kind: str, obj: dict[str, Any]) -> bytes:
        return orjson.dumps({"id": self.new_id("evt"), "object": "event", "type": kind,
                             "api_version": "2026-01-01", "created": int(time.time()),
                             "livemode": False, "data": {"object": obj}})

    async def send_event(self, url: str, kind: str, obj: dict[str, Any], secret: str,
                         *, timestamp: int | None = None) -> httpx.Response:
        """POST a signed event to `url`, as Stripe's webhook sender does."""
        payload = self.event(kind, obj)
        async with httpx.AsyncClient() as http:
            return await http.post(url, content=payload, headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": sign(payload, secret, timestamp)})


def _unexpected(intent: dict[str, Any], verb: str, allowed: str) -> Fail:
    return Fail(400, type="invalid_request_error", code="payment_intent_unexpected_state",
                message=f"This PaymentIntent could not be {verb} because it has a status of "
                        f"{intent['status']}. Only a PaymentIntent with one of the following "
                        f"statuses may be {verb}: {allowed}.",
                payment_intent=intent)


def _error(status: int, error: dict[str, Any],
           headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": error}), status, media_type="application/json",
                    headers=headers)


async def _stripe_js(request: Request) -> Response:
    script = Path(__file__).with_name("stripe_fake.js").read_bytes()
    return Response(script, media_type="text/javascript")


def _unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`metadata[order_id]=x&expand[0]=y&a[b][c]=z` -> {"metadata": {"order_id": "x"},
    "expand": ["y"], "a": {"b": {"c": "z"}}}."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        keys = name.replace("]", "").split("[")
        node: Any = out
        for key, after in zip(keys, keys[1:]):
            node = node.setdefault(key, [] if after.isdigit() else {})
        if isinstance(node, list):
            node.append(value)
        else:
            node[keys[-1]] = value
    return out


@contextlib.asynccontextmanager
async def serve_fake(fake: StripeFake) -> AsyncIterator[str]:
    """The fake on real uvicorn, port 0; yields its base URL."""
    config = uvicorn.Config(fake.app(), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if fake.stall is not None:
            fake.stall.set()  # let a held answer go, or the server would wait for it
        server.should_exit = True
        await task


@pytest.fixture
async def fake() -> AsyncIterator[tuple[StripeFake, str]]:
    """The fake on real uvicorn, and its base URL (import it into a test module to use it)."""
    stripe = StripeFake()
    async with serve_fake(stripe) as url:
        yield stripe, url
