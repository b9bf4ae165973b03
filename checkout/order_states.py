"""The order lifecycle as literal tables: which moves are legal, what each does to stock,
which leave a card hold to release, and which wait on the order's deadline.

The transition script (checkout/store/lua/transition.lua) is handed the rules for the target state from
these tables, so Python and Lua share one definition.

Who may talk to the gateway is decided here too. A payer must first move the order from
`reserved` to `paying` (the claim, only before the hold's deadline); only then does it ask
the gateway to authorize. So an order still `reserved` has never reached the gateway and
expires with nothing to void, and an order that expires while `paying` owes a void,
recorded in the same atomic step. Whoever moves the order first wins; the gateway follows
the order, never the other way round.
"""

from __future__ import annotations

from enum import StrEnum

from checkout.errors import Refused

__all__ = ["OrderState", "StockEffect", "Deadline", "TRANSITIONS", "VOID_OWED", "DEADLINES",
           "PENDING", "rules_for", "IllegalTransition", "OutOfTime", "next_state", "TERMINAL",
           "payment_word", "REFUNDABLE", "SHIPPABLE", "CAPTURED", "SALES"]


class OrderState(StrEnum):
    RESERVED = "reserved"  # stock held, nobody has gone to the gateway yet
    PAYING = "paying"  # a payer claimed it and is talking to the gateway
    AUTHORIZED = "authorized"  # card authorized, capture on shipment
    PAID = "paid"  # captured
    SHIPPED = "shipped"  # captured and on its way (carrier, tracking number)
    DELIVERED = "delivered"  # the brand says it arrived (optional)
    DECLINED = "declined"  # payment refused, stock back
    EXPIRED = "expired"  # hold ran out unpaid, stock back
    CANCELLED = "cancelled"  # buyer dropped a held cart item, stock back
    VOIDED = "voided"  # authorization released before capture, stock back
    REFUNDED = "refunded"  # all the money returned after capture, commission reversed


class StockEffect(StrEnum):
    SELL = "sell"  # held -> sold
    RELEASE = "release"  # held -> avail, limit and deal units given back
    RESTORE = "restore"  # sold -> avail, limit and deal units given back
    NONE = "none"


class Deadline(StrEnum):
    """How a move relates to the order's deadline (`expires_ms`)."""

    BEFORE = "before"  # only while the deadline has not passed (the claim)
    AFTER = "after"  # only once it has passed (expiry)


S, E = OrderState, StockEffect
TRANSITIONS: dict[tuple[OrderState, OrderState], StockEffect] = {
    (S.RESERVED, S.PAYING): E.NONE,
    (S.RESERVED, S.EXPIRED): E.RELEASE,
    (S.RESERVED, S.CANCELLED): E.RELEASE,
    (S.PAYING, S.AUTHORIZED): E.SELL,
    # The instant buy: the gateway authorized and captured in one call (a ChargingGateway).
    (S.PAYING, S.PAID): E.SELL,
    (S.PAYING, S.DECLINED): E.RELEASE,
    (S.PAYING, S.EXPIRED): E.RELEASE,
    (S.AUTHORIZED, S.PAID): E.NONE,
    (S.AUTHORIZED, S.VOIDED): E.RESTORE,
    (S.PAID, S.REFUNDED): E.NONE,
    (S.PAID, S.SHIPPED): E.NONE,
    (S.SHIPPED, S.DELIVERED): E.NONE,
    (S.SHIPPED, S.REFUNDED): E.NONE,
    (S.DELIVERED, S.REFUNDED): E.NONE,
}
# Moves after which the gateway may still hold money for an order that no longer sells:
# every way out of paying but authorized (a payer's authorization may land after the move:
# a slow gateway, two payers with different cards) and the brand's void. The move records
# a void debt in the same step; the payer or the sweeper pays it (void is idempotent, and a
# no-op where nothing is held).
VOID_OWED = frozenset({(S.PAYING, S.EXPIRED), (S.PAYING, S.DECLINED), (S.AUTHORIZED, S.VOIDED)})
# The moves that make a sale (stock held -> sold): what the aggregates and the order.paid
# webhook count, whether the capture comes later (authorized) or with it (paid).
SALES = frozenset(move for move, effect in TRANSITIONS.items() if effect is E.SELL)
# Targets tied to the deadline: the claim must come before it, expiry only after it.
DEADLINES: dict[OrderState, Deadline] = {S.PAYING: Deadline.BEFORE, S.EXPIRED: Deadline.AFTER}
# States whose stock is held and whose payment is not settled: they sit in the expiry index.
PENDING = frozenset({S.RESERVED, S.PAYING})
# Captured states whose money may still go back, in part or in full (after_sale.lua moves
# one to refunded when the refunds add up to the amount captured).
REFUNDABLE = frozenset({S.PAID, S.SHIPPED, S.DELIVERED})
CAPTURED = REFUNDABLE | {S.REFUNDED}
# What marking shipped starts from: authorized (captured first, on-shipment mode) or paid.
SHIPPABLE = frozenset({S.AUTHORIZED, S.PAID})
TERMINAL = frozenset(s for s in OrderState if not any(src == s for src, _ in TRANSITIONS))

# What a buy or checkout answers about an order's payment, by its state.
_PAYMENT_WORDS: dict[OrderState, str] = {
    S.RESERVED: "pending", S.PAYING: "pending", S.AUTHORIZED: "settled", S.PAID: "settled",
    S.DECLINED: "declined", S.EXPIRED: "expired", S.CANCELLED: "cancelled",
    S.VOIDED: "voided", S.REFUNDED: "refunded",
}


class IllegalTransition(Refused):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(409, "illegal-transition",
                         f"an order in state {current!r} cannot become {target!r}")
        self.current = current
        self.target = target


class OutOfTime(IllegalTransition):
    """The move is legal from this state, but not at this time: a claim after the deadline
    (`late`), or an expiry before it (not `late`)."""

    def __init__(self, current: str, target: str, *, late: bool) -> None:
        super().__init__(current, target)
        self.late = late


def rules_for(target: OrderState) -> str:
    """The script's ARGV for a move to `target`: 'from=effect=debt;...' (debt: void|none)."""
    rules = [f"{src}={effect}={'void' if (src, dst) in VOID_OWED else 'none'}"
             for (src, dst), effect in TRANSITIONS.items() if dst == target]
    if not rules:
        raise ValueError(f"no state can move to {target}")
    return ";".join(rules)


def next_state(current: OrderState, target: OrderState) -> StockEffect:
    """The pure twin of the table lookup, for the model in tests and for callers' checks."""
    try:
        return TRANSITIONS[(current, target)]
    except KeyError:
        raise IllegalTransition(current, target) from None


def payment_word(state: OrderState) -> str:
    """The `payment` field of a buy or checkout answer for an order in `state`."""
    return _PAYMENT_WORDS[state]
