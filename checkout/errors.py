"""One exception tree for everything livecart raises on purpose.

`LivecartError` is the root. `Refused` is a request the rules turn down, meant for the
client: an HTTP status, a stable `kind` (the problem type's last segment), a detail and
extra fields. The web layer answers every `Refused` as problem+json in one place
(live/web/problems.py) and the hub as an error frame, so no handler maps errors by hand.
Anything else under the root is an operational failure (the gateway, Valkey, a moved
library internal), logged and answered 5xx where it reaches a client.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LivecartError", "Refused"]


class LivecartError(Exception):
    """The root of every error livecart raises on purpose."""


class Refused(LivecartError):
    """A request the rules refuse; see the module docstring."""

    def __init__(self, status: int, kind: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or kind)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.extra = extra
