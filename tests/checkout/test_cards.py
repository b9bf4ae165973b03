"""The sandbox's card checks (pure): test numbers, Luhn, brands, expiry, CVC, and that no
message ever quotes the number or the CVC."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkout.payments import CardCheck, CardField, DeclineCode, check_card
from checkout.payments.cards import brand_of, luhn_valid

TODAY = datetime.date(2026, 6, 15)


def ok(number: str, month: int = 12, year: int = 2030, cvc: str = "123") -> CardCheck:
    checked = check_card(number, month, year, cvc, TODAY)
    assert isinstance(checked, CardCheck), checked
    return checked


def refused(number: str, month: int = 12, year: int = 2030, cvc: str = "123") -> list[CardField]:
    checked = check_card(number, month, year, cvc, TODAY)
    assert isinstance(checked, list) and checked, checked
    return checked


@pytest.mark.parametrize(("number", "decline"), [
    ("4242 4242 4242 4242", None),
    ("4000 0000 0000 0002", DeclineCode.CARD_DECLINED),
    ("4000-0000-0000-9995", DeclineCode.INSUFFICIENT_FUNDS),
    ("4000000000000069", DeclineCode.EXPIRED_CARD),
    ("5555 5555 5555 4444", None),  # any other valid number approves
])
def test_public_test_numbers(number: str, decline: DeclineCode | None) -> None:
    card = ok(number)
    assert card.decline is decline
    assert card.last4 == number[-4:]


@pytest.mark.parametrize(("number", "brand"), [
    ("4242424242424242", "visa"), ("5555555555554444", "mastercard"),
    ("2223003122003222", "mastercard"), ("378282246310005", "amex"),
    ("6011111111111117", "discover"), ("3056930009020004", "unknown"),
])
def test_brands(number: str, brand: str) -> None:
    assert luhn_valid(number)
    assert brand_of(number) == brand


def test_an_invalid_check_digit_is_refused_on_the_number() -> None:
    assert refused("4242 4242 4242 4241") == [
        CardField("number", "is not a valid card number (check digit)")]


@pytest.mark.parametrize("number", ["", "4242", "4242x4242x4242x4242", "4" * 20, "４２４２４２４２４２４２４２４２"])
def test_a_malformed_number_is_refused_on_the_number(number: str) -> None:
    assert refused(number) == [CardField("number", "must be 12 to 19 digits")]


@pytest.mark.parametrize(("month", "year", "field"), [
    (5, 2026, "exp_month"),  # last month: expired
    (12, 2025, "exp_year"),
    (0, 2030, "exp_month"), (13, 2030, "exp_month"),
    (1, 2047, "exp_year"),
])
def test_a_past_or_impossible_expiry_is_refused(month: int, year: int, field: str) -> None:
    assert [e.field for e in refused("4242424242424242", month, year)] == [field]


def test_this_month_is_still_valid() -> None:
    assert ok("4242424242424242", TODAY.month, TODAY.year).exp_month == TODAY.month


@pytest.mark.parametrize(("number", "cvc"), [
    ("4242424242424242", "12"), ("4242424242424242", "1234"), ("4242424242424242", "12a"),
    ("378282246310005", "123"),  # amex: four digits
])
def test_a_bad_cvc_is_refused(number: str, cvc: str) -> None:
    assert [e.field for e in refused(number, cvc=cvc)] == ["cvc"]


def test_amex_takes_four_digits() -> None:
    assert ok("378282246310005", cvc="1234").brand == "amex"


def test_every_wrong_field_is_reported_at_once() -> None:
    assert [e.field for e in refused("4242424242424241", 1, 2020, "1")] == [
        "number", "exp_year", "cvc"]


@given(number=st.text(alphabet="0123456789 -x", max_size=25), month=st.integers(-5, 20),
       year=st.integers(2020, 2060), cvc=st.text(alphabet="0123456789a", max_size=5))
def test_no_message_quotes_the_number_or_the_cvc(number: str, month: int, year: int,
                                                 cvc: str) -> None:
    checked = check_card(number, month, year, cvc, TODAY)
    digits = number.replace(" ", "").replace("-", "")
    if isinstance(checked, CardCheck):
        assert digits not in repr(checked) and checked.last4 == digits[-4:]
        return
    for error in checked:  # (a year in an expiry message may look like a short number)
        if len(digits) >= 5:
            assert digits not in error.message
        if error.field == "cvc" and len(cvc) >= 3:
            assert cvc not in error.message
