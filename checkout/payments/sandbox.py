"""SandboxGateway: a test gateway that behaves like a real one, state in Valkey.

Each order is one Valkey hash (``{prefix}order:{order_id}``), so the sandbox's
records outlive our server's restarts exactly as a real gateway's would. Every
state change is one Lua script (atomic, so 50 concurrent authorizes for one order
id make exactly one charge). Behaviour is chosen by the test card token:

==============================  =============================================
token                           behaviour
==============================  =============================================
``tok_visa``, ``tok_approve*``  approved
``tok_decline``                 declined ``card_declined``
``tok_insufficient_funds``      declined ``insufficient_funds``
``tok_expired``                 declined ``expired_card``
``tok_timeout_after_charge``    first authorize of an order records an approved
                                hold, then raises ``GatewayTimeout``; retries
                                return that same Authorization
``tok_retry``                   first attempt of an order raises
                                ``GatewayUnavailable`` (no charge); next approves
``tok_capture_outage``          approved; its first 3 captures raise
                                ``GatewayUnavailable`` (a capture outage; a
                                ``charge``'s capture part counts as one)
``tok_sandbox_*``               a card tokenized by ``tokenize`` (the sandbox's
                                stand-in for Stripe.js): its test number's
                                behaviour (``checkout/payments/cards.py``); a
                                token never issued: ``InvalidPaymentRequest``
any other ``tok_*``             declined ``card_declined``
not starting with ``tok_``      ``InvalidPaymentRequest`` (Valkey untouched)
==============================  =============================================

Key layout (``prefix`` defaults to ``gw:``):

- ``gw:order:<order_id>``: hash, the order's whole record (fields below).
- ``gw:authorizations``: integer, approved authorizations actually performed.
- ``gw:token:<token>``: hash, a tokenized card: ``behaviour``, ``decline_code``,
  ``brand``, ``last4``, ``exp_month``, ``exp_year``; never the number or the CVC.
  Kept for good (a wallet refers to it), at most ``max_tokens`` of them.
- ``gw:tokens``: integer, how many tokens are kept.

The authorize and tokenize scripts touch several of these keys, so on a Valkey Cluster
give the prefix a hash tag (``{gw}:``) to keep them in one slot.

Hash fields: ``order_id``, ``attempts`` (authorize calls that reached the record
step), ``amount_minor``, ``currency``, ``token``, ``auth_status``
(approved|declined), ``auth_ref``, ``decline_code``, ``state``
(authorized|declined|captured|voided), ``capture_ref``, ``captured_minor``,
``void_ref``, ``refunded_minor``, ``refund_count``, ``last_refund_ref``,
``last_refund_minor``, ``refund_seq:<n>`` (``<ref>:<amount>`` of the caller's refund n).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from checkout.store.replies import text, text_hash
from checkout.store.scripts import GATEWAY_SCRIPTS, Script, call_script

from .cards import CardCheck
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

__all__ = ["MAX_AMOUNT_MINOR", "SandboxCard", "SandboxConfig", "SandboxGateway", "SandboxFull"]

logger = logging.getLogger(__name__)

# Lua numbers are doubles: every integer up to 2**53 - 1 is exact, so the refund
# arithmetic inside the scripts stays exact below this bound.
MAX_AMOUNT_MINOR: Final[int] = 2**53 - 1
_MAX_ORDER_ID_LEN: Final[int] = 255
_CURRENCY_RE: Final[re.Pattern[str]] = re.compile(r"[A-Z]{3}")
_TOKEN_PREFIX: Final[str] = "tok_"
_VAULT_PREFIX: Final[str] = "tok_sandbox_"


class _Behaviour(StrEnum):
    """What the authorize script does for a token (passed to it as ARGV[5])."""

    APPROVE = "approve"
    DECLINE = "decline"
    TIMEOUT_AFTER_CHARGE = "timeout_after_charge"
    UNAVAILABLE_ONCE = "unavailable_once"
    VAULT = "vault"  # a tokenized card: the script reads its behaviour from the token


_TOKENS: Final[Mapping[str, tuple[_Behaviour, DeclineCode | None]]] = MappingProxyType(
    {
        "tok_visa": (_Behaviour.APPROVE, None),
        "tok_decline": (_Behaviour.DECLINE, DeclineCode.CARD_DECLINED),
        "tok_insufficient_funds": (_Behaviour.DECLINE, DeclineCode.INSUFFICIENT_FUNDS),
        "tok_expired": (_Behaviour.DECLINE, DeclineCode.EXPIRED_CARD),
        "tok_timeout_after_charge": (_Behaviour.TIMEOUT_AFTER_CHARGE, None),
        "tok_retry": (_Behaviour.UNAVAILABLE_ONCE, None),
        "tok_capture_outage": (_Behaviour.APPROVE, None),
    }
)

# What the fixed test tokens stand for in a wallet: the test number of their behaviour
# (checkout/payments/cards.py), with an expiry that never comes.
_TEST_EXPIRY: Final[tuple[int, int]] = (12, 2099)
_TEST_LAST4: Final[Mapping[DeclineCode | None, str]] = MappingProxyType({
    None: "4242", DeclineCode.CARD_DECLINED: "0002", DeclineCode.INSUFFICIENT_FUNDS: "9995",
    DeclineCode.EXPIRED_CARD: "0069"})


class SandboxFull(PaymentError):
    """The sandbox keeps ``max_tokens`` tokens already: no card can be tokenized."""


@dataclass(frozen=True, slots=True)
class SandboxCard:
    """A tokenized card as anyone may see it: the token and what identifies the card."""

    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Sandbox knobs.

    ``prefix``: every key starts with it (use a hash tag such as ``{gw}:`` on a
    cluster). ``latency_s``: simulated round trip, slept before each operation.
    ``max_tokens``: tokenized cards kept, at most (each one is kept for good, and
    tokenizing needs no account, so this bounds the memory strangers can take).
    """

    prefix: str = "gw:"
    latency_s: float = 0.0
    max_tokens: int = 100_000

    def __post_init__(self) -> None:
        if not self.prefix:
            raise ValueError("prefix must not be empty")
        if self.latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, got {self.latency_s}")
        if self.max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {self.max_tokens}")


class SandboxGateway:
    """A ``PaymentGateway`` whose records live in Valkey; see the module docstring.

    The client is borrowed, not owned: closing it is the caller's job.
    """

    __slots__ = ("_client", "_config")

    def __init__(self, client: Redis, config: SandboxConfig | None = None) -> None:
        self._client = client
        self._config = config if config is not None else SandboxConfig()

    # -- keys -----------------------------------------------------------------

    def order_key(self, order_id: str) -> str:
        """The Valkey hash holding ``order_id``'s record."""
        return f"{self._config.prefix}order:{order_id}"

    def _counter_key(self) -> str:
        return f"{self._config.prefix}authorizations"

    def token_key(self, token: str) -> str:
        """The Valkey hash holding a tokenized card (never its number or CVC)."""
        return f"{self._config.prefix}token:{token}"

    # -- tokenization (what Stripe.js does for Stripe) ------------------------

    async def tokenize(self, card: CardCheck) -> SandboxCard:
        """Keep a checked card's behaviour and summary under a new opaque token.

        Raises ``SandboxFull`` once ``max_tokens`` are kept.
        """
        behaviour = _Behaviour.DECLINE if card.decline is not None else _Behaviour.APPROVE
        for _ in range(3):  # 96 random bits: a collision is a bug in the RNG, not bad luck
            token = _VAULT_PREFIX + secrets.token_hex(12)
            outcome, _ = await self._run(
                GATEWAY_SCRIPTS["tokenize"],
                [self.token_key(token), f"{self._config.prefix}tokens"],
                [str(self._config.max_tokens), behaviour.value,
                 card.decline.value if card.decline is not None else "", card.brand,
                 card.last4, str(card.exp_month), str(card.exp_year)])
            if outcome == "new":
                return SandboxCard(token, card.brand, card.last4, card.exp_month, card.exp_year)
            if outcome == "full":
                raise SandboxFull(f"the sandbox keeps {self._config.max_tokens} tokens already")
        raise AssertionError("three random tokens taken in a row")

    async def card(self, token: str) -> SandboxCard | None:
        """What a token stands for (brand, last four, expiry); None if never issued."""
        if not token.startswith(_VAULT_PREFIX):
            return None
        record = text_hash(await self._client.hgetall(self.token_key(token)))
        if not record:
            return None
        return SandboxCard(token, record["brand"], record["last4"], int(record["exp_month"]),
                           int(record["exp_year"]))

    async def describe_card(self, buyer: str, token: str) -> CardSummary | None:
        """A tokenized card's summary, or a fixed test token's (shared: anyone may save
        ``tok_visa``); None for a token never issued. The sandbox does not know buyers:
        the wallet keeps who saved a token first."""
        known = _TOKENS.get(token)
        if known is not None:
            return CardSummary("visa", _TEST_LAST4.get(known[1], "4242"), *_TEST_EXPIRY,
                               shared=True)
        card = await self.card(token)
        if card is None:
            return None
        return CardSummary(card.brand, card.last4, card.exp_month, card.exp_year)

    # -- PaymentGateway -------------------------------------------------------

    async def authorize(
        self, order_id: str, amount_minor: int, currency: str, payment_token: str
    ) -> Authorization:
        """Place a hold, or return the stored result for ``order_id``.

        Raises ``InvalidPaymentRequest`` for a malformed request or a reuse of
        ``order_id`` with other parameters, and the token's simulated faults.
        """
        return await self._place(order_id, amount_minor, currency, payment_token,
                                     capture=False)

    async def charge(
        self, order_id: str, amount_minor: int, currency: str, payment_token: str
    ) -> Authorization:
        """Authorize and capture in one call (``ChargingGateway``): one script, so an
        instant buy reaches the sandbox once. Faults as ``authorize``; the
        ``tok_capture_outage`` card's capture part fails like its captures do, leaving
        the hold approved and not captured."""
        return await self._place(order_id, amount_minor, currency, payment_token,
                                     capture=True)

    async def _place(self, order_id: str, amount_minor: int, currency: str,
                         payment_token: str, *, capture: bool) -> Authorization:
        _check_order_id(order_id)
        _check_amount(amount_minor)
        _check_currency(currency)
        behaviour, decline_code = _token_behaviour(payment_token)
        await self._simulate_latency()
        outcome, record = await self._run(
            GATEWAY_SCRIPTS["authorize"],
            [self.order_key(order_id), self._counter_key(), self.token_key(payment_token)],
            [
                order_id,
                str(amount_minor),
                currency,
                payment_token,
                behaviour.value,
                decline_code.value if decline_code is not None else "",
                _new_ref("auth"),
                "1" if capture else "",
                _new_ref("cap"),
            ],
        )
        match outcome:
            case "new" | "replay":
                auth = _authorization(order_id, record)
                logger.debug("authorize %s: %s (%s)", order_id, auth.status, outcome)
                return auth
            case "timeout":
                logger.info("authorize %s: simulated timeout after charge", order_id)
                raise GatewayTimeout(
                    f"authorize {order_id!r}: timed out, outcome unknown; "
                    "retry with the same order id"
                )
            case "unavailable":
                logger.info("authorize %s: simulated unavailable", order_id)
                raise GatewayUnavailable(f"authorize {order_id!r}: gateway unavailable")
            case "voided":
                raise InvalidPaymentRequest(f"authorize {order_id!r}: the order was voided")
            case "unknown_token":
                raise InvalidPaymentRequest(f"authorize {order_id!r}: no such payment token")
            case "mismatch":
                raise InvalidPaymentRequest(
                    f"order id {order_id!r} already authorized with other parameters "
                    f"({record.get('amount_minor')} {record.get('currency')})"
                )
        raise AssertionError(f"authorize script replied {outcome!r}")

    async def capture(self, order_id: str) -> Capture:
        """Capture the full authorized amount; a repeat returns the same Capture."""
        _check_order_id(order_id)
        await self._simulate_latency()
        outcome, record = await self._run(
            GATEWAY_SCRIPTS["capture"], [self.order_key(order_id)], [_new_ref("cap")]
        )
        match outcome:
            case "new" | "replay":
                logger.debug("capture %s (%s)", order_id, outcome)
                return Capture(
                    order_id=order_id,
                    status=PaymentStatus.APPROVED,
                    gateway_ref=record["capture_ref"],
                    amount_minor=int(record["captured_minor"]),
                    currency=record["currency"],
                )
            case "unknown":
                raise InvalidPaymentRequest(f"capture {order_id!r}: no authorization")
            case "unavailable":
                raise GatewayUnavailable(f"capture {order_id!r}: gateway unavailable")
            case "invalid_state":
                raise InvalidPaymentRequest(
                    f"capture {order_id!r}: authorization is {record.get('state')}"
                )
        raise AssertionError(f"capture script replied {outcome!r}")

    async def void(self, order_id: str) -> Void:
        """Release an uncaptured hold; no hold is a no-op success; captured raises."""
        _check_order_id(order_id)
        await self._simulate_latency()
        outcome, record = await self._run(
            GATEWAY_SCRIPTS["void"], [self.order_key(order_id)], [_new_ref("void"), order_id]
        )
        match outcome:
            case "new" | "replay":
                logger.debug("void %s (%s)", order_id, outcome)
                return Void(
                    order_id=order_id,
                    status=PaymentStatus.APPROVED,
                    gateway_ref=record["void_ref"],
                    amount_minor=int(record["amount_minor"]),
                    currency=record["currency"],
                )
            case "noop":
                return Void(
                    order_id=order_id,
                    status=PaymentStatus.APPROVED,
                    gateway_ref=None,
                    amount_minor=0,
                    currency=None,
                )
            case "invalid_state":
                raise InvalidPaymentRequest(
                    f"void {order_id!r}: authorization is {record.get('state')}; refund instead"
                )
        raise AssertionError(f"void script replied {outcome!r}")

    async def refund(self, order_id: str, amount_minor: int | None = None,
                     seq: int | None = None) -> Refund:
        """Refund ``amount_minor`` (or all that remains) of the capture.

        Never lets cumulative refunds exceed the captured amount; see
        ``PaymentGateway.refund`` for the idempotency rule.
        """
        _check_order_id(order_id)
        if amount_minor is not None:
            _check_amount(amount_minor)
        await self._simulate_latency()
        outcome, record = await self._run(
            GATEWAY_SCRIPTS["refund"],
            [self.order_key(order_id)],
            ["" if amount_minor is None else str(amount_minor), _new_ref("re"),
             "" if seq is None else str(seq)],
        )
        match outcome:
            case "new" | "replay" | "seq_replay":
                logger.debug("refund %s (%s)", order_id, outcome)
                ref, amount = record["last_refund_ref"], record["last_refund_minor"]
                if seq is not None:
                    ref, _, amount = record[f"refund_seq:{seq}"].rpartition(":")
                return Refund(
                    order_id=order_id,
                    status=PaymentStatus.APPROVED,
                    gateway_ref=ref,
                    amount_minor=int(amount),
                    refunded_total_minor=int(record["refunded_minor"]),
                    captured_minor=int(record["captured_minor"]),
                    currency=record["currency"],
                )
            case "exceeds":
                remaining = int(record["captured_minor"]) - int(record["refunded_minor"])
                raise InvalidPaymentRequest(
                    f"refund {order_id!r}: {amount_minor} exceeds the {remaining} remaining"
                )
            case "unknown":
                raise InvalidPaymentRequest(f"refund {order_id!r}: no such order")
            case "invalid_state":
                raise InvalidPaymentRequest(
                    f"refund {order_id!r}: authorization is {record.get('state')}, not captured"
                )
        raise AssertionError(f"refund script replied {outcome!r}")

    # -- introspection for tests and ops --------------------------------------

    async def charges(self, order_id: str) -> dict[str, str]:
        """The raw record of ``order_id`` (empty when the gateway never saw it)."""
        raw = await self._client.hgetall(self.order_key(order_id))
        return text_hash(raw)

    async def status(self, order_id: str) -> PaymentRecord:
        """What the gateway holds for ``order_id``, for reconciliation."""
        record = await self.charges(order_id)
        return PaymentRecord(
            order_id=order_id,
            state=record.get("state"),
            amount_minor=int(record.get("amount_minor") or 0),
            captured_minor=int(record.get("captured_minor") or 0),
            refunded_minor=int(record.get("refunded_minor") or 0),
        )

    async def authorizations_count(self) -> int:
        """Approved authorizations actually performed (holds placed), all orders."""
        value = await self._client.get(self._counter_key())
        return 0 if value is None else int(value)

    # -- internals ------------------------------------------------------------

    async def _simulate_latency(self) -> None:
        if self._config.latency_s > 0:
            await asyncio.sleep(self._config.latency_s)

    async def _run(
        self, script: Script, keys: Sequence[str], args: Sequence[str]
    ) -> tuple[str, dict[str, str]]:
        """Run a script; a lost Valkey round trip is an unknown outcome (timeout)."""
        try:
            reply = await call_script(self._client, script, list(keys), list(args))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # The script may have run before the connection broke: the caller must
            # retry with the same order id, exactly as after a real gateway timeout.
            raise GatewayTimeout(f"sandbox store unreachable: {exc}") from exc
        outcome = text(reply[0])
        flat = [text(item) for item in reply[1:]]
        return outcome, dict(zip(flat[::2], flat[1::2], strict=True))


def _token_behaviour(token: str) -> tuple[_Behaviour, DeclineCode | None]:
    """Map a test token to its behaviour (see the module docstring's table)."""
    if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX):
        raise InvalidPaymentRequest(f"malformed payment token {token!r}")
    known = _TOKENS.get(token)
    if known is not None:
        return known
    if token.startswith(_VAULT_PREFIX):
        return _Behaviour.VAULT, None
    if token.startswith("tok_approve"):
        return _Behaviour.APPROVE, None
    return _Behaviour.DECLINE, DeclineCode.CARD_DECLINED


def _authorization(order_id: str, record: Mapping[str, str]) -> Authorization:
    status = PaymentStatus(record["auth_status"])
    return Authorization(
        order_id=order_id,
        status=status,
        gateway_ref=record["auth_ref"],
        amount_minor=int(record["amount_minor"]),
        currency=record["currency"],
        decline_code=(
            DeclineCode(record["decline_code"]) if status is PaymentStatus.DECLINED else None
        ),
        capture_ref=record["capture_ref"] if record.get("state") == "captured" else None,
    )


def _check_order_id(order_id: str) -> None:
    if not isinstance(order_id, str) or not 0 < len(order_id) <= _MAX_ORDER_ID_LEN:
        raise InvalidPaymentRequest(f"order id must be 1-{_MAX_ORDER_ID_LEN} chars: {order_id!r}")


def _check_amount(amount_minor: int) -> None:
    # type() rather than isinstance(): bool is an int and must not pass as money.
    if type(amount_minor) is not int or not 0 < amount_minor <= MAX_AMOUNT_MINOR:
        raise InvalidPaymentRequest(
            f"amount must be an int of minor units in 1..{MAX_AMOUNT_MINOR}: {amount_minor!r}"
        )


def _check_currency(currency: str) -> None:
    if not isinstance(currency, str) or _CURRENCY_RE.fullmatch(currency) is None:
        raise InvalidPaymentRequest(f"currency must be an upper-case ISO 4217 code: {currency!r}")


def _new_ref(kind: str) -> str:
    return f"sbx_{kind}_{secrets.token_hex(8)}"
