"""The payment gateway contract: a Protocol, its frozen results, one exception tree.

Every operation is idempotent by ``order_id``: the gateway keeps one record per
order, so a retry with the same order id never charges (captures, voids) twice and
returns the same result, including a decline. That is what makes
``GatewayTimeout`` survivable: the caller retries with the same order id to learn
what happened.

A decline is a *result* (``Authorization.status == DECLINED``), not an exception;
exceptions are reserved for "we do not know" (timeout), "nothing happened, try
again" (unavailable) and "the request itself is wrong" (invalid).

Money is integer minor units (cents) with an ISO 4217 currency code, never float.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

from checkout.errors import LivecartError

__all__ = [
    "Authorization",
    "Capture",
    "CardSummary",
    "ChargingGateway",
    "DeclineCode",
    "GatewayTimeout",
    "GatewayUnavailable",
    "InvalidPaymentRequest",
    "PaymentError",
    "PaymentGateway",
    "PaymentRecord",
    "PaymentStatus",
    "Refund",
    "Void",
]

logger = logging.getLogger(__name__)


class PaymentStatus(StrEnum):
    """Outcome of a gateway operation that reached the gateway and was decided."""

    APPROVED = "approved"
    DECLINED = "declined"


class DeclineCode(StrEnum):
    """Why an authorization was declined (stable strings, safe to show to ops).

    Few on purpose: a gateway folds its finer codes into these, and those it does not
    name (lost or stolen card, suspected fraud) into ``CARD_DECLINED``, which is what a
    buyer should be told about them.
    """

    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"

    @property
    def message(self) -> str:
        """The words a buyer sees for this decline."""
        return _DECLINE_MESSAGES[self]


_DECLINE_MESSAGES = {
    DeclineCode.CARD_DECLINED: "Your card was declined.",
    DeclineCode.INSUFFICIENT_FUNDS: "Your card has insufficient funds.",
    DeclineCode.EXPIRED_CARD: "Your card has expired.",
}


@dataclass(frozen=True, slots=True)
class CardSummary:
    """What a payment token stands for, as its buyer may see it: never the number.

    ``shared``: one of the gateway's public test tokens (``tok_visa``, ``pm_card_visa``),
    which any buyer may save; any other token is the first saver's (checkout/wallets.py).
    """

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    shared: bool = False


@dataclass(frozen=True, slots=True)
class Authorization:
    """A hold of ``amount_minor`` on the buyer's card, or the decline of one.

    ``decline_code`` is set exactly when ``status`` is ``DECLINED``. ``capture_ref`` is
    set when the amount is captured too (``ChargingGateway.charge``).
    """

    order_id: str
    status: PaymentStatus
    gateway_ref: str
    amount_minor: int
    currency: str
    decline_code: DeclineCode | None = None
    capture_ref: str | None = None

    @property
    def approved(self) -> bool:
        """True when the hold was placed."""
        return self.status is PaymentStatus.APPROVED

    @property
    def captured(self) -> bool:
        """True when the money is captured, not only held."""
        return self.capture_ref is not None


@dataclass(frozen=True, slots=True)
class Capture:
    """The full authorized amount moved from hold to charge."""

    order_id: str
    status: PaymentStatus
    gateway_ref: str
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Void:
    """An authorization released before capture.

    A void of an order with no hold (unknown order id, declined authorization) is
    a no-op success: ``gateway_ref`` is ``None`` and ``amount_minor`` is 0.
    """

    order_id: str
    status: PaymentStatus
    gateway_ref: str | None
    amount_minor: int
    currency: str | None

    @property
    def noop(self) -> bool:
        """True when there was nothing to release."""
        return self.gateway_ref is None


@dataclass(frozen=True, slots=True)
class Refund:
    """One refund of a captured charge.

    ``amount_minor`` is this refund; ``refunded_total_minor`` is the cumulative
    total after it, never more than ``captured_minor``.
    """

    order_id: str
    status: PaymentStatus
    gateway_ref: str
    amount_minor: int
    refunded_total_minor: int
    captured_minor: int
    currency: str

    @property
    def remaining_minor(self) -> int:
        """What can still be refunded."""
        return self.captured_minor - self.refunded_total_minor


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """What the gateway holds for one order, read back for reconciliation.

    ``state`` is None when the gateway never saw the order, else one of authorized,
    declined, captured, voided.
    """

    order_id: str
    state: str | None
    amount_minor: int = 0
    captured_minor: int = 0
    refunded_minor: int = 0


class PaymentError(LivecartError):
    """Base of every payment gateway error.

    ``retry_same_order`` says whether retrying with the same order id is the
    right move (it is always *safe*, because operations are idempotent).
    """

    retry_same_order: ClassVar[bool] = False


class GatewayTimeout(PaymentError):
    """The outcome is unknown: the operation may or may not have happened.

    The caller must retry with the same order id to learn the outcome; it must not
    assume failure (the card may be charged) nor success.
    """

    retry_same_order: ClassVar[bool] = True


class GatewayUnavailable(PaymentError):
    """Transient refusal: nothing happened, retrying with the same order id is safe."""

    retry_same_order: ClassVar[bool] = True


class InvalidPaymentRequest(PaymentError):
    """The request is wrong (our bug, malformed token, reused order id, illegal state).

    Retrying the same request will fail the same way.
    """


@runtime_checkable
class PaymentGateway(Protocol):
    """What checkout needs from a payment gateway.

    Every method is idempotent by ``order_id``; see the module docstring.
    """

    async def authorize(
        self, order_id: str, amount_minor: int, currency: str, payment_token: str
    ) -> Authorization:
        """Place a hold, or return the stored result for this order id.

        A repeat with the same order id but a different amount, currency or
        token raises ``InvalidPaymentRequest``.
        """
        ...

    async def capture(self, order_id: str) -> Capture:
        """Capture the full authorized amount; a repeat returns the same Capture.

        Raises ``InvalidPaymentRequest`` if the order has no approved, uncaptured
        (or already captured) authorization: unknown, declined or voided.
        """
        ...

    async def void(self, order_id: str) -> Void:
        """Release an uncaptured hold; a repeat returns the same Void.

        Unknown order id (or a declined one): no-op success; an unknown one can no
        longer be authorized afterwards (an authorization still in flight is refused).
        Captured: raises ``InvalidPaymentRequest`` (refund instead).
        """
        ...

    async def status(self, order_id: str) -> PaymentRecord:
        """What the gateway holds for this order (reconciliation reads it)."""
        ...

    async def describe_card(self, buyer: str, token: str) -> CardSummary | None:
        """The card ``token`` stands for, if ``buyer`` may save it in a wallet: a token
        this gateway issued (for this buyer, where the gateway knows whose it is) or a
        public test token. None for a token it never issued."""
        ...

    async def refund(self, order_id: str, amount_minor: int | None = None,
                     seq: int | None = None) -> Refund:
        """Refund part (``amount_minor``) or all the rest (``None``) of a capture.

        Cumulative refunds never exceed the captured amount: asking for more than
        remains raises ``InvalidPaymentRequest``. A full refund (``None``) is
        idempotent: once nothing remains it returns the last Refund unchanged.
        An explicit partial amount is a new refund each call, unless ``seq`` names it:
        the caller's number for this refund of the order (checkout/fulfilment.py), with
        which a repeat (after a timeout) returns that refund instead of making another.
        """
        ...


@runtime_checkable
class ChargingGateway(Protocol):
    """A gateway that can authorize and capture in one call (Stripe's
    ``capture_method=automatic``): the instant buy's one round trip to the card network.

    Idempotent by ``order_id`` like the rest: a repeat answers the stored result (and
    captures an approved hold it could not capture before). An approved authorization
    whose capture the gateway could not make comes back approved, not captured
    (``capture_ref`` None): the hold stands and the caller owes the capture.
    """

    async def charge(
        self, order_id: str, amount_minor: int, currency: str, payment_token: str
    ) -> Authorization:
        """Authorize and capture ``amount_minor``, or return the stored result."""
        ...
