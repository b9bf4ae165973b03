"""Money is integer minor units plus an ISO 4217 currency; never a float."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = ["CURRENCIES", "Currency", "MinorUnits", "split_commission", "commission_reversed",
           "minor_digits",
           "format_money"]

# ISO 4217 active codes (2024 list).
CURRENCIES = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split())


# ISO 4217 exponents other than 2 (the rest use two minor digits).
_EXPONENTS = {**dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF "
                              "XPF".split(), 0),
              **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3)}


def minor_digits(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


def format_money(minor: int, currency: str) -> str:
    """'89.00 USD', '12900 JPY', '1.500 KWD': integer arithmetic, never a float."""
    digits = minor_digits(currency)
    if digits == 0:
        return f"{minor} {currency}"
    whole, part = divmod(minor, 10**digits)
    return f"{whole}.{part:0{digits}d} {currency}"


def _iso_currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


# The schema lists the codes, so the document refuses what the server refuses.
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$",
                                json_schema_extra={"enum": sorted(CURRENCIES)}),
                     AfterValidator(_iso_currency)]
# Up to 10^12 minor units per line: far past any basket, far below float or Lua trouble.
MinorUnits = Annotated[int, Field(ge=0, le=10**12)]


def split_commission(amount_minor: int, bps: int) -> tuple[int, int]:
    """(commission, brand share): rounded down for the creator, so the parts sum exactly."""
    commission = amount_minor * bps // 10_000
    return commission, amount_minor - commission


def commission_reversed(commission_minor: int, amount_minor: int, refunded_minor: int) -> int:
    """How much of an order's commission refunds totalling `refunded_minor` take back:
    floor(commission * refunded / amount), on the running total. Each refund reverses the
    difference of this before and after it, so the reversals sum to the whole commission
    exactly when the whole amount is refunded, and no refund ever takes back more than
    its share (the creator keeps the rounding until the last refund)."""
    if not 0 <= refunded_minor <= amount_minor:
        raise ValueError(f"refunded {refunded_minor} outside 0..{amount_minor}")
    if amount_minor == 0:
        return 0
    return commission_minor * refunded_minor // amount_minor
