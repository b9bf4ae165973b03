"""Payments: the gateway contract, a Valkey-backed sandbox gateway and its card checks.

Checkout depends on ``PaymentGateway`` only; ``SandboxGateway`` stands in for a
real provider in tests, demos and load tests. ``stripe_gateway.StripeGateway`` is the
real one; it is not re-exported here, so that only a node paying through Stripe loads
the SDK.
"""

from __future__ import annotations

import logging

from .gateway import (
    Authorization,
    Capture,
    ChargingGateway,
    DeclineCode,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidPaymentRequest,
    PaymentError,
    PaymentGateway,
    PaymentRecord,
    PaymentStatus,
    Refund,
    Void,
)
from .cards import CardCheck, CardField, check_card
from .sandbox import SandboxCard, SandboxConfig, SandboxFull, SandboxGateway

__all__ = [
    "Authorization",
    "Capture",
    "CardCheck",
    "CardField",
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
    "SandboxCard",
    "SandboxConfig",
    "SandboxFull",
    "SandboxGateway",
    "Void",
    "check_card",
]

logger = logging.getLogger(__name__)
