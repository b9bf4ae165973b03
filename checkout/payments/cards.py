"""Card details as the sandbox's tokenizer sees them: checked, classified, then forgotten.

Plain functions, no I/O, no clock (``today`` is passed in). The number and the CVC exist
only inside ``check_card``'s arguments: the result keeps the brand, the last four digits
and the expiry, and no message in here ever quotes the number or the CVC, so neither can
reach a log line, an exception or a problem body through this module.

The public test numbers and what the sandbox does with them:

=======================  ============================================
number                   authorize
=======================  ============================================
4242 4242 4242 4242      approved
4000 0000 0000 0002      declined ``card_declined``
4000 0000 0000 9995      declined ``insufficient_funds``
4000 0000 0000 0069      declined ``expired_card``
any other valid number   approved (the sandbox moves no money; other
                         gateways' test numbers, such as Mastercard
                         5555 5555 5555 4444, work as their docs say)
=======================  ============================================
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from .gateway import DeclineCode

__all__ = ["CardCheck", "CardField", "TEST_CARDS", "brand_of", "check_card", "luhn_valid"]

_SEPARATORS: Final[re.Pattern[str]] = re.compile(r"[ -]")
_DIGITS: Final[re.Pattern[str]] = re.compile(r"[0-9]{12,19}")
_CVC: Final[re.Pattern[str]] = re.compile(r"[0-9]{3,4}")
# A card further out than this is a typo, not a card (issuers print at most ~10 years).
_MAX_YEARS_AHEAD: Final[int] = 20

TEST_CARDS: Final[Mapping[str, DeclineCode]] = MappingProxyType({
    "4000000000000002": DeclineCode.CARD_DECLINED,
    "4000000000009995": DeclineCode.INSUFFICIENT_FUNDS,
    "4000000000000069": DeclineCode.EXPIRED_CARD,
})
"""The numbers that decline, and why; every other valid number approves."""


@dataclass(frozen=True, slots=True)
class CardField:
    """One refused field: the body field's name and a message that never quotes it."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class CardCheck:
    """What a valid card leaves behind: nothing that could charge it.

    ``decline`` is the test number's decline (None: approves).
    """

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    decline: DeclineCode | None


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every card number carries (ISO/IEC 7812-1)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand_of(digits: str) -> str:
    """The card network by its IIN prefix; "unknown" when none matches."""
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return "visa"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if digits.startswith("6011") or two == 65 or 644 <= int(digits[:3]) <= 649:
        return "discover"
    return "unknown"


def check_card(number: str, exp_month: int, exp_year: int, cvc: str,
               today: datetime.date) -> CardCheck | list[CardField]:
    """The card's safe summary, or every field that is wrong (an empty list never)."""
    errors: list[CardField] = []
    digits = _SEPARATORS.sub("", number)
    brand = "unknown"
    if _DIGITS.fullmatch(digits) is None:
        errors.append(CardField("number", "must be 12 to 19 digits"))
    elif not luhn_valid(digits):
        errors.append(CardField("number", "is not a valid card number (check digit)"))
    else:
        brand = brand_of(digits)
    errors.extend(_check_expiry(exp_month, exp_year, today))
    cvc_length = 4 if brand == "amex" else 3
    if _CVC.fullmatch(cvc) is None or len(cvc) != cvc_length:
        errors.append(CardField("cvc", f"must be {cvc_length} digits"))
    if errors:
        return errors
    return CardCheck(brand, digits[-4:], exp_month, exp_year, TEST_CARDS.get(digits))


def _check_expiry(month: int, year: int, today: datetime.date) -> list[CardField]:
    if not 1 <= month <= 12:
        return [CardField("exp_month", "must be 1 to 12")]
    if not today.year <= year <= today.year + _MAX_YEARS_AHEAD:
        return [CardField("exp_year", f"must be {today.year} to {today.year + _MAX_YEARS_AHEAD}")]
    if (year, month) < (today.year, today.month):
        return [CardField("exp_month", "the card has expired")]
    return []
