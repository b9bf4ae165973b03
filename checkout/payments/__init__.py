"""Payments: the gateway contract and a Valkey-backed sandbox gateway.

Checkout depends on ``PaymentGateway`` only; ``SandboxGateway`` stands in for a
real provider in tests, demos and load tests.
"""

from __future__ import annotations

import logging

from .gateway import (
    Authorization,
    Capture,
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
from .sandbox import SandboxConfig, SandboxGateway

__all__ = [
    "Authorization",
    "Capture",
    "DeclineCode",
    "GatewayTimeout",
    "GatewayUnavailable",
    "InvalidPaymentRequest",
    "PaymentError",
    "PaymentGateway",
    "PaymentRecord",
    "PaymentStatus",
    "Refund",
    "SandboxConfig",
    "SandboxGateway",
    "Void",
]

logger = logging.getLogger(__name__)
