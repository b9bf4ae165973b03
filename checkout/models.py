"""The base of every request body the commerce core takes (catalog, wallets, streams):
validation lives with the rules it protects, below the web layer that parses JSON."""

from __future__ import annotations

import pydantic

__all__ = ["StrictModel"]


class StrictModel(pydantic.BaseModel):
    """Request bodies: unknown fields refused, no coercion ("5" is not 5, 5.0 is not 5)."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
