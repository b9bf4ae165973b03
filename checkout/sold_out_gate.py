"""The node's sold-out gate: a new buy of a variant that reserve.lua called sold out a
moment ago is refused here, without reserve.lua.

In a flash sale nearly every buy comes after the last unit has gone (19 of 20 answers are
`sold-out`), and each one cost the node a second pipeline and a reserve.lua call of ~27
arguments. The gate answers them from memory for `hold_ms` after reserve.lua's call that
said so was sent. What keeps that answer true (docs/checkout.md, "The sold-out gate"):

- only for a key bound anew by this request: bind_key.lua binds it and records the gate's
  refusal in one step, so the same key replays it (as reserve.lua's refusals replay); a key
  bound before may have an order and goes to reserve.lua, which replays it;
- units given back through this process (a decline, an expiry, a cancel, a restock) open the
  gate at once, and a reserve.lua answer sent before such a return does not close it again;
  units given back elsewhere (another node, the hub's process) are seen within `hold_ms`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["SoldOutGate"]

# Variants remembered at once (closed, or reopened within the hold); past it the stale
# entries go, then all (it is only a cache: forgetting opens the gate).
MAX_ENTRIES = 10_000


class SoldOutGate:
    def __init__(self, hold_ms: int, *, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._hold_s = max(0, hold_ms) / 1000
        self._max_entries = max_entries
        self._clock = clock
        self._until: dict[tuple[str, str], float] = {}
        # When units of a variant last came back: an answer sent before then is stale.
        self._reopened: dict[tuple[str, str], float] = {}

    def closed(self, product: str, variant: str) -> bool:
        """True while a new buy of this variant is to be refused sold-out here."""
        until = self._until.get((product, variant))
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._until[(product, variant)]
        return False

    def ticket(self) -> float:
        """Taken just before a reserve.lua call is sent; given back with its answer."""
        return self._clock()

    def sold_out(self, product: str, variant: str, sent_at: float) -> None:
        """reserve.lua answered sold out to a call sent at `sent_at` (`ticket()`): close
        the gate until `hold_ms` after that, unless units came back here since."""
        key = (product, variant)
        if not self._hold_s or self._reopened.get(key, -1.0) >= sent_at:
            return
        if len(self._until) >= self._max_entries:
            self._until = _fresh(self._until, self._clock(), self._max_entries)
        self._until[key] = sent_at + self._hold_s

    def reopen(self, product: str, variant: str) -> None:
        """Units of this variant came back (or were just sold, so some were there)."""
        key = (product, variant)
        self._until.pop(key, None)
        if not self._hold_s:
            return
        now = self._clock()
        if len(self._reopened) >= self._max_entries:
            # A return older than the hold can make no answer stale: its call's hold is over.
            self._reopened = _fresh(self._reopened, now - self._hold_s, self._max_entries)
        self._reopened[key] = now


def _fresh(times: dict[tuple[str, str], float], after: float,
           max_entries: int) -> dict[tuple[str, str], float]:
    """The entries later than `after`; none if that is still too many."""
    kept = {k: t for k, t in times.items() if t > after}
    return kept if len(kept) < max_entries else {}
