"""The order lifecycle as a literal table: which moves are legal and what each does to stock.

The transition script (scripts/transition.lua) is handed the rules for the target state from
this table, so Python and Lua share one definition.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["OrderState", "StockEffect", "TRANSITIONS", "rules_for", "IllegalTransition",
           "next_state", "TERMINAL"]


class OrderState(StrEnum):
    RESERVED = "reserved"  # stock held, payment not settled
    AUTHORIZED = "authorized"  # card authorized, capture on shipment
    PAID = "paid"  # captured
    DECLINED = "declined"  # payment refused, stock back
    EXPIRED = "expired"  # hold ran out unpaid, stock back
    CANCELLED = "cancelled"  # buyer dropped a held cart item, stock back
    VOIDED = "voided"  # authorization released before capture, stock back
    REFUNDED = "refunded"  # money returned after capture, commission reversed


class StockEffect(StrEnum):
    SELL = "sell"  # held -> sold
    RELEASE = "release"  # held -> avail, limit and deal units given back
    RESTORE = "restore"  # sold -> avail, limit and deal units given back
    NONE = "none"


S, E = OrderState, StockEffect
TRANSITIONS: dict[tuple[OrderState, OrderState], StockEffect] = {
    (S.RESERVED, S.AUTHORIZED): E.SELL,
    (S.RESERVED, S.PAID): E.SELL,
    (S.RESERVED, S.DECLINED): E.RELEASE,
    (S.RESERVED, S.EXPIRED): E.RELEASE,
    (S.RESERVED, S.CANCELLED): E.RELEASE,
    (S.AUTHORIZED, S.PAID): E.NONE,
    (S.AUTHORIZED, S.VOIDED): E.RESTORE,
    (S.PAID, S.REFUNDED): E.NONE,
}
TERMINAL = frozenset(s for s in OrderState if not any(src == s for src, _ in TRANSITIONS))


class IllegalTransition(Exception):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"an order in state {current!r} cannot become {target!r}")
        self.current = current
        self.target = target


def rules_for(target: OrderState) -> str:
    """The script's ARGV for a move to `target`: 'from=effect;from=effect'."""
    rules = [f"{src}={effect}" for (src, dst), effect in TRANSITIONS.items() if dst == target]
    if not rules:
        raise ValueError(f"no state can move to {target}")
    return ";".join(rules)


def next_state(current: OrderState, target: OrderState) -> StockEffect:
    """The pure twin of the table lookup, for the model in tests and for callers' checks."""
    try:
        return TRANSITIONS[(current, target)]
    except KeyError:
        raise IllegalTransition(current, target) from None
