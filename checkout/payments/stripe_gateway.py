"""StripeGateway: the ``PaymentGateway`` contract on Stripe, through its official SDK.

- authorize: create a PaymentIntent with ``capture_method=manual`` and ``confirm=true``,
  off-session, with the saved payment method (and its customer, for a card saved
  through a SetupIntent); capture: capture it; void: cancel it; refund: a Refund of
  part or all of what remains; status: retrieve it (with its charge).
- Idempotency: every call that changes something sends an ``Idempotency-Key`` made of
  the order id and the operation (``livecart:<order>:authorize``, ``:capture``,
  ``:void``, ``:refund:full``, ``:refund:<n>``), so a retry after a timeout gets
  Stripe's first answer instead of a second charge.
- Stripe keys are kept 24 hours and Stripe cannot be asked "the PaymentIntent of order
  X" reliably (search lags), so the gateway keeps one record per order in Valkey,
  ``{prefix}order:<order_id>`` (a hash: the request's amount, currency, token and
  customer, ``state`` authorizing|authorized|declined|captured|voided, ``pi``,
  ``decline_code``, ``captured_minor``, ``refunds``, ``last_refund``,
  ``last_refund_minor``). Every move of ``state`` is a compare-and-set
  (``lua/compare_and_set.lua``); Stripe stays the truth that ``status`` reads.
- Saved cards: ``setup_card`` makes a SetupIntent for the buyer's customer (one per
  buyer, ``{prefix}customer:<buyer>``); once the page confirmed it with Stripe.js,
  ``saved_card`` checks it is that buyer's and succeeded, and remembers the payment
  method's customer (``{prefix}pm:<payment method>``) so authorize can send both.
- Errors: a card error is a declined ``Authorization`` (its decline code folded into
  ``DeclineCode``); a rate limit, a bad key and a refused permission are
  ``GatewayUnavailable`` (nothing happened); a lost connection and Stripe's own 5xx are
  ``GatewayTimeout`` (it may have happened: retry with the same order id); an invalid
  request (an idempotency key reused with other parameters included) is
  ``InvalidPaymentRequest``.
- Webhooks: ``verify_event`` checks the ``Stripe-Signature`` header
  (``stripe.Webhook.construct_event``); ``apply_event`` moves the record forward for a
  PaymentIntent cancelled or captured outside livecart (the dashboard, Stripe's
  seven-day expiry of an uncaptured hold) and remembers a SetupIntent's card.

The SDK's async client (``HTTPXClient``) does the I/O; it never retries by itself
(checkout's buy path retries with the same order id, and so the same keys).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import stripe
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from checkout.store.keys import key_part
from checkout.store.replies import text, text_hash
from checkout.store.scripts import GATEWAY_SCRIPTS, call_script

from .gateway import (
    Authorization,
    Capture,
    CardSummary,
    DeclineCode,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidPaymentRequest,
    PaymentError,
    PaymentRecord,
    PaymentStatus,
    Refund,
    Void,
)

__all__ = ["CardSetup", "StripeConfig", "StripeGateway", "WebhookRejected"]

logger = logging.getLogger(__name__)

_MAX_ORDER_ID_LEN: Final[int] = 200  # Stripe's keys hold 255 characters; ours add ~25
# What ``status`` reports for each PaymentIntent status (others are reported as they are,
# which reconciliation flags: a PaymentIntent waiting on something livecart never asks).
_STATES: Final[Mapping[str, str]] = {
    "requires_capture": "authorized", "succeeded": "captured", "canceled": "voided",
    "requires_payment_method": "declined",
}


# Stripe's documented test PaymentMethods (test mode only), as a wallet shows them: anyone
# may save one, as anyone may pay with one.
_TEST_METHODS: Final[Mapping[str, tuple[str, str]]] = {
    "pm_card_visa": ("visa", "4242"), "pm_card_mastercard": ("mastercard", "4444"),
    "pm_card_chargeDeclined": ("visa", "0002"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069"),
}
_TEST_EXPIRY: Final[tuple[int, int]] = (12, 2099)


class WebhookRejected(PaymentError):
    """A webhook whose signature, timestamp or body does not verify: act on none of it."""


@dataclass(frozen=True, slots=True)
class StripeConfig:
    """``api_base``: None for Stripe itself, else a server speaking its API (tests).
    ``timeout_s``: one HTTP request to Stripe, at most. ``prefix``: the Valkey keys'."""

    api_key: str = field(repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    api_base: str | None = None
    timeout_s: float = 10.0
    prefix: str = "stripe:"


@dataclass(frozen=True, slots=True)
class CardSetup:
    """A SetupIntent for the page to confirm with Stripe.js (``client_secret``)."""

    setup_intent: str
    client_secret: str
    customer: str


class StripeGateway:
    """A ``PaymentGateway`` on Stripe; see the module docstring.

    The Valkey client is borrowed; the HTTP client is owned: ``aclose`` closes it.
    """

    def __init__(self, client: Redis, config: StripeConfig) -> None:
        self._client = client
        self._config = config
        self._http = stripe.HTTPXClient(timeout=config.timeout_s)
        bases: Any = {"api": config.api_base} if config.api_base else None
        self._stripe = stripe.StripeClient(config.api_key, http_client=self._http,
                                           base_addresses=bases, max_network_retries=0)

    async def aclose(self) -> None:
        """Close the HTTP client's connections."""
        await self._http.close_async()

    # -- keys -------------------------------------------------------------------

    def order_key(self, order_id: str) -> str:
        """The Valkey hash holding ``order_id``'s record."""
        return f"{self._config.prefix}order:{key_part(order_id)}"

    def _customer_key(self, buyer: str) -> str:
        return f"{self._config.prefix}customer:{key_part(buyer)}"

    def _method_key(self, payment_method: str) -> str:
        return f"{self._config.prefix}pm:{key_part(payment_method)}"

    # -- PaymentGateway -----------------------------------------------------------

    async def authorize(self, order_id: str, amount_minor: int, currency: str,
                        payment_token: str) -> Authorization:
        """Place a hold (a confirmed PaymentIntent awaiting capture), or answer the stored
        result; see ``PaymentGateway.authorize``."""
        _check_order_id(order_id)
        if type(amount_minor) is not int or amount_minor <= 0:
            raise InvalidPaymentRequest(f"amount must be a positive int: {amount_minor!r}")
        customer = text(await self._client.get(self._method_key(payment_token)) or b"")
        ok, record = await self._set(order_id, "", order_id=order_id, state="authorizing",
                                     amount_minor=str(amount_minor), currency=currency,
                                     token=payment_token, customer=customer)
        if not ok:
            if record.get("state") == "voided" and not record.get("pi"):
                raise InvalidPaymentRequest(f"authorize {order_id!r}: the order was voided")
            if (record.get("amount_minor"), record.get("currency"), record.get("token")) != (
                    str(amount_minor), currency, payment_token):
                raise InvalidPaymentRequest(
                    f"order id {order_id!r} already authorized with other parameters")
            if record.get("state") != "authorizing":
                return _authorization(order_id, record)
        # A first attempt, or a retry of one whose outcome we never heard: the record holds
        # the first attempt's request, so the key and the body are the same every time.
        pi, decline = await self._create_intent(order_id, record)
        state = "declined" if decline is not None else "authorized"
        settled, record = await self._set(order_id, "authorizing", state=state, pi=pi,
                                          decline_code=decline.value if decline else "")
        if settled:
            return _authorization(order_id, record)
        if record.get("state") == "voided":  # voided while we asked: release what we got
            if decline is None:
                await self._cancel(order_id, pi)
                await self._set(order_id, "voided", pi=pi)
            raise InvalidPaymentRequest(f"authorize {order_id!r}: the order was voided")
        return _authorization(order_id, record)  # a twin attempt settled it first

    async def capture(self, order_id: str) -> Capture:
        """Capture the whole hold; a repeat answers the same Capture."""
        _check_order_id(order_id)
        record = await self._record(order_id)
        state = record.get("state")
        if state == "authorized":
            try:
                intent = await self._call(self._stripe.v1.payment_intents.capture_async(
                    record["pi"], options={"idempotency_key": _key(order_id, "capture")}))
            except InvalidPaymentRequest:
                intent = await self._retrieve(record["pi"])  # captured or cancelled meanwhile?
                if intent.status != "succeeded":
                    if intent.status == "canceled":
                        await self._set(order_id, "authorized", state="voided")
                    raise
            _, record = await self._set(order_id, "authorized,captured", state="captured",
                                        captured_minor=str(intent.amount_received))
            state = record.get("state")
        if state != "captured":
            raise InvalidPaymentRequest(f"capture {order_id!r}: authorization is {state}")
        return Capture(order_id=order_id, status=PaymentStatus.APPROVED, gateway_ref=record["pi"],
                       amount_minor=int(record["captured_minor"]), currency=record["currency"])

    async def void(self, order_id: str) -> Void:
        """Cancel an uncaptured hold; no hold is a no-op success; captured raises."""
        _check_order_id(order_id)
        ok, record = await self._set(order_id, "", order_id=order_id, state="voided")
        if ok:  # never seen: an authorization arriving later is refused
            return _noop_void(order_id)
        match record.get("state"):
            case "declined":
                return _noop_void(order_id)
            case "captured":
                raise InvalidPaymentRequest(f"void {order_id!r}: captured; refund instead")
            case "authorized":
                await self._cancel(order_id, record["pi"])
                _, record = await self._set(order_id, "authorized,voided", state="voided")
            case "authorizing":
                # Marked first, so the authorizer in flight cancels what it gets; then the
                # outcome is learnt here too, in case that authorizer is gone.
                ok, record = await self._set(order_id, "authorizing", state="voided",
                                             unresolved="1")
                if not ok:  # it settled meanwhile: void what it settled
                    return await self.void(order_id)
                return await self._resolve_void(order_id, record)
            case "voided" if record.get("unresolved"):
                return await self._resolve_void(order_id, record)
        if not record.get("pi"):
            return _noop_void(order_id)
        return _void(order_id, record)

    async def _resolve_void(self, order_id: str, record: Mapping[str, str]) -> Void:
        """Learn what an authorization cut short by a void did (its request replayed with
        its key answers the same) and cancel the hold if it placed one."""
        pi, decline = await self._create_intent(order_id, record)
        if decline is not None:
            await self._set(order_id, "voided", unresolved="")
            return _noop_void(order_id)
        await self._cancel(order_id, pi)
        _, record = await self._set(order_id, "voided", unresolved="", pi=pi)
        return _void(order_id, record)

    async def refund(self, order_id: str, amount_minor: int | None = None,
                     seq: int | None = None) -> Refund:
        """Refund ``amount_minor`` (a new refund each call, or refund ``seq`` once) or all
        that remains (once); Stripe refuses more than remains."""
        _check_order_id(order_id)
        if amount_minor is not None and (type(amount_minor) is not int or amount_minor <= 0):
            raise InvalidPaymentRequest(f"amount must be a positive int: {amount_minor!r}")
        record = await self._record(order_id)
        if record.get("state") != "captured":
            raise InvalidPaymentRequest(
                f"refund {order_id!r}: authorization is {record.get('state')}, not captured")
        params: dict[str, Any] = {"payment_intent": record["pi"]}
        if amount_minor is None:
            key = _key(order_id, "refund:full")
        else:
            n = seq if seq is not None else await self._client.hincrby(
                self.order_key(order_id), "refunds", 1)
            key = _key(order_id, f"refund:{n}")
            params["amount"] = amount_minor
        try:
            refund = await self._call(self._stripe.v1.refunds.create_async(
                params, options={"idempotency_key": key}))  # type: ignore[arg-type]
            ref, amount = refund.id, refund.amount
            await self._client.hset(self.order_key(order_id), mapping={
                "last_refund": ref, "last_refund_minor": str(amount)})
        except _AlreadyRefunded:
            if amount_minor is not None or not record.get("last_refund"):
                raise InvalidPaymentRequest(f"refund {order_id!r}: nothing remains") from None
            ref, amount = record["last_refund"], int(record["last_refund_minor"])
        intent = await self._retrieve(record["pi"])
        charge = intent.latest_charge
        refunded = charge.amount_refunded if isinstance(charge, stripe.Charge) else 0
        return Refund(order_id=order_id, status=PaymentStatus.APPROVED, gateway_ref=ref,
                      amount_minor=amount, refunded_total_minor=refunded,
                      captured_minor=intent.amount_received, currency=record["currency"])

    async def status(self, order_id: str) -> PaymentRecord:
        """What Stripe holds for ``order_id`` (its PaymentIntent), for reconciliation."""
        record = await self._record(order_id)
        if not record.get("pi"):
            return PaymentRecord(order_id, "voided" if record.get("state") == "voided" else None)
        intent = await self._retrieve(record["pi"])
        charge = intent.latest_charge
        return PaymentRecord(
            order_id=order_id, state=_STATES.get(intent.status, intent.status),
            amount_minor=intent.amount, captured_minor=intent.amount_received,
            refunded_minor=charge.amount_refunded if isinstance(charge, stripe.Charge) else 0)

    # -- saved cards (SetupIntents) ---------------------------------------------

    async def setup_card(self, buyer: str) -> CardSetup:
        """A SetupIntent for ``buyer``'s customer (made once), for off-session charges."""
        customer = await self._customer(buyer)
        params: Any = {"customer": customer, "usage": "off_session",
                       "payment_method_types": ["card"]}
        intent = await self._call(self._stripe.v1.setup_intents.create_async(params))
        return CardSetup(intent.id, intent.client_secret or "", customer)

    async def saved_card(self, buyer: str, setup_intent: str) -> str:
        """The payment token (payment method id) of ``buyer``'s confirmed SetupIntent.

        Raises ``InvalidPaymentRequest`` when it is another customer's or not confirmed.
        """
        customer = text(await self._client.get(self._customer_key(buyer)) or b"")
        intent = await self._call(self._stripe.v1.setup_intents.retrieve_async(setup_intent))
        method = _id_of(intent.payment_method)
        if not customer or _id_of(intent.customer) != customer:
            raise InvalidPaymentRequest(f"setup intent {setup_intent!r} is not this buyer's")
        if intent.status != "succeeded" or not method:
            raise InvalidPaymentRequest(f"setup intent {setup_intent!r} is {intent.status}")
        await self._client.set(self._method_key(method), customer)
        return method

    async def describe_card(self, buyer: str, token: str) -> CardSummary | None:
        """A saved card's summary (retrieved from Stripe) when ``token`` is a payment
        method of ``buyer``'s customer, saved through ``saved_card``; a test method's."""
        if token in _TEST_METHODS:
            return CardSummary(*_TEST_METHODS[token], *_TEST_EXPIRY, shared=True)
        customer = text(await self._client.get(self._customer_key(buyer)) or b"")
        owner = text(await self._client.get(self._method_key(token)) or b"")
        if not customer or owner != customer:
            return None
        method = await self._call(self._stripe.v1.payment_methods.retrieve_async(token))
        card = method.card
        if card is None:
            return None
        return CardSummary(card.brand, card.last4, card.exp_month, card.exp_year)

    # -- webhooks ---------------------------------------------------------------

    def verify_event(self, payload: bytes, signature: str | None) -> stripe.Event:
        """The event, if ``Stripe-Signature`` signs ``payload`` with our secret within
        Stripe's tolerance (5 minutes); else ``WebhookRejected``."""
        if not self._config.webhook_secret:
            raise WebhookRejected("no webhook secret configured")
        try:
            return stripe.Webhook.construct_event(payload, signature, self._config.webhook_secret)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(f"bad signature: {exc.user_message}") from None
        except ValueError:  # not UTF-8 or not JSON, though signed
            raise WebhookRejected("the body is not a JSON event") from None

    async def apply_event(self, event: stripe.Event) -> bool:
        """Move the record of the event's order forward; False when it changes nothing."""
        obj: dict[str, Any] = event.data.object.to_dict()
        if event.type == "setup_intent.succeeded":
            method, customer = _id_of(obj.get("payment_method")), _id_of(obj.get("customer"))
            if method and customer:
                await self._client.set(self._method_key(method), customer)
                return True
            return False
        order_id = (obj.get("metadata") or {}).get("order_id")
        if obj.get("object") != "payment_intent" or not isinstance(order_id, str) \
                or not 0 < len(order_id) <= _MAX_ORDER_ID_LEN:
            return False
        record = await self._record(order_id)
        if record.get("pi") not in (None, "", obj["id"]):
            return False  # another PaymentIntent than this order's
        if event.type == "payment_intent.canceled":
            ok, _ = await self._set(order_id, "authorizing,authorized", state="voided",
                                    pi=obj["id"])
            return ok
        if event.type == "payment_intent.succeeded":
            ok, _ = await self._set(order_id, "authorizing,authorized", state="captured",
                                    pi=obj["id"], captured_minor=str(obj["amount_received"]))
            return ok
        return False

    # -- internals --------------------------------------------------------------

    async def _create_intent(self, order_id: str,
                             request: Mapping[str, str]) -> tuple[str, DeclineCode | None]:
        """Create and confirm the PaymentIntent: (its id, None) for a hold, (its id, why)
        for a decline. The same order asks with the same key and body every time."""
        params: dict[str, Any] = {
            "amount": int(request["amount_minor"]), "currency": request["currency"].lower(),
            "capture_method": "manual", "confirm": True, "off_session": True,
            "payment_method": request["token"], "metadata": {"order_id": order_id}}
        if request.get("customer"):
            params["customer"] = request["customer"]
        try:
            intent = await self._call(self._stripe.v1.payment_intents.create_async(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": _key(order_id, "authorize")}))
        except _Declined as declined:
            logger.info("authorize %s: declined (%s)", order_id, declined.code.value)
            return declined.intent, declined.code
        if intent.status != "requires_capture":  # e.g. 3-D Secure wanted: not a hold
            logger.warning("authorize %s: PaymentIntent %s is %s", order_id, intent.id,
                           intent.status)
            return intent.id, DeclineCode.CARD_DECLINED
        return intent.id, None

    async def _cancel(self, order_id: str, pi: str) -> None:
        try:
            await self._call(self._stripe.v1.payment_intents.cancel_async(
                pi, options={"idempotency_key": _key(order_id, "void")}))
        except InvalidPaymentRequest:
            if (await self._retrieve(pi)).status != "canceled":  # captured meanwhile
                raise

    async def _retrieve(self, pi: str) -> stripe.PaymentIntent:
        return await self._call(self._stripe.v1.payment_intents.retrieve_async(
            pi, {"expand": ["latest_charge"]}))

    async def _customer(self, buyer: str) -> str:
        known = await self._client.get(self._customer_key(buyer))
        if known:
            return text(known)
        customer = await self._call(self._stripe.v1.customers.create_async(
            {"metadata": {"buyer": buyer}},
            options={"idempotency_key": f"livecart:customer:{key_part(buyer)}"}))
        await self._client.set(self._customer_key(buyer), customer.id, nx=True)
        return text(await self._client.get(self._customer_key(buyer)) or customer.id)

    async def _record(self, order_id: str) -> dict[str, str]:
        return text_hash(await self._client.hgetall(self.order_key(order_id)))

    async def _set(self, order_id: str, states: str, /,
                   **fields: str) -> tuple[bool, dict[str, str]]:
        """Set ``fields`` if the record's state is one of ``states`` (comma-separated,
        '' for no record); returns (whether it was, the record as it stands)."""
        args = [states, *(part for pair in fields.items() for part in pair)]
        try:
            reply = await call_script(self._client, GATEWAY_SCRIPTS["compare_and_set"],
                                      [self.order_key(order_id)], args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise GatewayTimeout(f"payment records unreachable: {exc}") from exc
        flat = [text(item) for item in reply[1:]]
        return text(reply[0]) == "ok", dict(zip(flat[::2], flat[1::2], strict=True))

    async def _call(self, awaitable: Any) -> Any:
        """Await one SDK call, its errors turned into the gateway's (module docstring)."""
        try:
            return await awaitable
        except stripe.CardError as exc:
            raise _Declined(exc) from None
        except stripe.RateLimitError as exc:
            raise GatewayUnavailable(f"Stripe rate limit: {exc.user_message}") from None
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            logger.error("Stripe refused our API key: %s", exc.user_message)
            raise GatewayUnavailable("Stripe refused our API key") from None
        except stripe.APIConnectionError as exc:
            raise GatewayTimeout(f"Stripe unreachable, outcome unknown: {exc.user_message}") from None
        except stripe.InvalidRequestError as exc:
            if exc.code == "charge_already_refunded":
                raise _AlreadyRefunded(exc.user_message or "") from None
            raise InvalidPaymentRequest(f"Stripe: {exc.user_message}") from None
        except stripe.IdempotencyError as exc:  # our key, other parameters: our bug
            raise InvalidPaymentRequest(f"Stripe: {exc.user_message}") from None
        except stripe.StripeError as exc:  # APIError: Stripe's 5xx, outcome unknown
            raise GatewayTimeout(f"Stripe error {exc.http_status}: {exc.user_message}") from None


class _Declined(InvalidPaymentRequest):
    """A card error: a decline for ``_create_intent``, an invalid request elsewhere."""

    def __init__(self, error: stripe.CardError) -> None:
        super().__init__(error.user_message)
        body = error.error
        intent = body.payment_intent if body is not None else None
        self.intent = intent.id if intent is not None else ""
        decline = body.decline_code if body is not None else None
        self.code = _decline_code(error.code, decline)


class _AlreadyRefunded(InvalidPaymentRequest):
    """Stripe's ``charge_already_refunded``: a full refund asked when nothing remains."""


def _decline_code(code: str | None, decline: str | None) -> DeclineCode:
    if decline == "insufficient_funds":
        return DeclineCode.INSUFFICIENT_FUNDS
    if "expired_card" in (code, decline):
        return DeclineCode.EXPIRED_CARD
    return DeclineCode.CARD_DECLINED


def _authorization(order_id: str, record: Mapping[str, str]) -> Authorization:
    declined = record.get("state") == "declined" or bool(record.get("decline_code"))
    return Authorization(
        order_id=order_id,
        status=PaymentStatus.DECLINED if declined else PaymentStatus.APPROVED,
        gateway_ref=record.get("pi", ""), amount_minor=int(record["amount_minor"]),
        currency=record["currency"],
        decline_code=DeclineCode(record["decline_code"]) if declined else None)


def _void(order_id: str, record: Mapping[str, str]) -> Void:
    return Void(order_id=order_id, status=PaymentStatus.APPROVED, gateway_ref=record["pi"],
                amount_minor=int(record["amount_minor"]), currency=record["currency"])


def _noop_void(order_id: str) -> Void:
    return Void(order_id=order_id, status=PaymentStatus.APPROVED, gateway_ref=None,
                amount_minor=0, currency=None)


def _key(order_id: str, operation: str) -> str:
    return f"livecart:{order_id}:{operation}"


def _id_of(value: object) -> str:
    """An expandable field's id, whether Stripe sent the id or the object."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(getattr(value, "id", "") or "")


def _check_order_id(order_id: str) -> None:
    if not isinstance(order_id, str) or not 0 < len(order_id) <= _MAX_ORDER_ID_LEN:
        raise InvalidPaymentRequest(f"order id must be 1-{_MAX_ORDER_ID_LEN} chars: {order_id!r}")
