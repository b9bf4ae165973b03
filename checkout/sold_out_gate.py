"""The node's sold-out gate: a new buy of a variant that reserve.lua called sold out a
moment ago is refused here, without a round trip to Valkey.

In a flash sale nearly every buy comes after the last unit has gone (19 of 20 answers are
`sold-out`), and each one cost the node a second pipeline and a reserve.lua call of ~27
arguments. The gate answers them from memory for `hold_ms` after reserve.lua last said so.
What keeps that answer true (docs/checkout.md, "The sold-out gate"):

- only for a key this very request bound (bind_key.lua said so): a key that may already
  have an order goes to reserve.lua, which replays it;
- a gated refusal is not recorded under the key (reserve.lua never ran), so the same key
  asked again goes to reserve.lua and buys if a unit came back;
- units given back through this node (a decline, an expiry, a cancel, a restock) open the
  gate at once, and an answer that was in flight across such a return does not close it
  again (`epoch`); units given back through another node are seen within `hold_ms`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["SoldOutGate"]

# Variants remembered at once; past it the expired ones go, then all (it is only a cache).
MAX_ENTRIES = 10_000


class SoldOutGate:
    def __init__(self, hold_ms: int, *, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._hold_s = max(0, hold_ms) / 1000
        self._max_entries = max_entries
        self._clock = clock
        self._until: dict[tuple[str, str], float] = {}
        # Moves on every reopening: a sold-out answer read before one may be stale.
        self.epoch = 0

    def closed(self, product: str, variant: str) -> bool:
        """True while a new buy of this variant is to be refused sold-out here."""
        until = self._until.get((product, variant))
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._until[(product, variant)]
        return False

    def sold_out(self, product: str, variant: str, epoch: int) -> None:
        """reserve.lua answered sold-out to a call sent at `epoch` (read before sending):
        close the gate unless units came back through this node meanwhile."""
        if not self._hold_s or epoch != self.epoch:
            return
        if len(self._until) >= self._max_entries:
            self._prune()
        self._until[(product, variant)] = self._clock() + self._hold_s

    def reopen(self, product: str, variant: str) -> None:
        """Units of this variant came back (or were just sold, so some were there)."""
        self.epoch += 1
        self._until.pop((product, variant), None)

    def _prune(self) -> None:
        now = self._clock()
        self._until = {k: until for k, until in self._until.items() if until > now}
        if len(self._until) >= self._max_entries:
            self._until.clear()
