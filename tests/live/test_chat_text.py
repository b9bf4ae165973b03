"""The chat's text policy (live/chat/text.py): properties over arbitrary text, then tables."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkout.errors import Refused
from live.chat.text import (MAX_CHARS, MAX_MARKS, REACTION_EMOJI, REACTIONS, ChatRefused, Claim,
                            blocked_match, check_links, dedupe_key, has_link, normalise,
                            normalise_blocked_words, parse_claim, valid_keyword)

# Every code point, lone surrogates (which the default leaves out) and unassigned ones included.
ANY_TEXT = st.text(st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])), max_size=400)
KEPT = {"\u200d", "\ufe0e", "\ufe0f"}
FLAG_SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"


def _clean_or_refused(raw: str) -> str | None:
    try:
        return normalise(raw)
    except ChatRefused as exc:
        assert exc.code in ("empty", "too-long")
        return None


@given(ANY_TEXT)
def test_normalise_is_idempotent_and_bounded(raw: str) -> None:
    clean = _clean_or_refused(raw)
    if clean is None:
        return
    assert normalise(clean) == clean
    assert 1 <= len(clean) <= MAX_CHARS
    assert clean == clean.strip() and "  " not in clean
    for char in clean:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"):
            assert char in KEPT or "\U000e0020" <= char <= "\U000e007f", repr(char)
        assert not char.isspace() or char == " "


@given(ANY_TEXT, st.booleans())
def test_other_rules_never_crash_on_any_text(raw: str, staff: bool) -> None:
    """Only ChatRefused escapes (the hub turns it into an error frame), never a crash."""
    try:
        check_links(raw, staff)
    except ChatRefused as exc:
        assert exc.code == "links-not-allowed" and not staff
    assert len(dedupe_key(raw)) == 16
    blocked_match(raw, ["ass", "buy now"])
    parse_claim(raw, "SOLD")


def test_chat_refused_is_a_refusal_with_its_code() -> None:
    with pytest.raises(ChatRefused) as caught:
        normalise(" \n\t\u200b ")
    assert isinstance(caught.value, Refused)
    assert (caught.value.code, caught.value.kind, caught.value.status) == ("empty", "empty", 422)


@pytest.mark.parametrize("raw, clean", [
    ("q\u0301\u0302\u0303\u0304\u0305\u0306a", "q\u0301\u0302\u0303a"),  # zalgo cut to 3
    ("q" + "\u0302\u0303\u0304\u200d" * 5, "q\u0302\u0303\u0304" + "\u200d" * 5),  # ZWJ no reset
    ("price \u202egnp.exe\u202c ok", "price gnp.exe ok"),  # bidi override removed
    ("nice\r\n\r\nbag\tnow\u00a0\u2028!", "nice bag now !"),  # CRLF, tab, NBSP, U+2028
    ("e\u200b\u0301", "\u00e9"),  # removing the zero-width space lets NFC compose
    ("\U0001f469\u200d\U0001f4bb love it", "\U0001f469\u200d\U0001f4bb love it"),
    (f"go {FLAG_SCOTLAND}!", f"go {FLAG_SCOTLAND}!"),
    ("\u2764\ufe0f 1\ufe0f\u20e3", "\u2764\ufe0f 1\ufe0f\u20e3"),
    ("a\ud800b\ue000c\x00d", "abcd"),  # lone surrogate, private use, NUL
])
def test_normalise(raw: str, clean: str) -> None:
    assert normalise(raw) == clean


def test_normalise_limits() -> None:
    assert normalise("x" * MAX_CHARS) == "x" * MAX_CHARS
    assert normalise(" " * 5000 + "hi" + "\n" * 5000) == "hi"
    for raw in ("x" * (MAX_CHARS + 1), "x" * 10_000):
        with pytest.raises(ChatRefused) as caught:
            normalise(raw)
        assert caught.value.code == "too-long"
    assert MAX_MARKS == 3


@pytest.mark.parametrize("text, link", [
    ("see evil.com/x", True), ("shop.example.io", True), ("hello.world", True),
    ("http://x", True), ("HTTPS://x.y", True), ("www.shop", True), ("mail me@shop.com", True),
    ("\uff45\uff56\uff49\uff4c\uff0e\uff43\uff4f\uff4d", True),  # fullwidth evil.com
    ("3.5 stars", False), ("e.g. this", False), ("i.e. yes", False), ("wait...", False),
    ("v2.0 is out", False), ("size 10.5", False), ("U.S.A.", False), ("$19.99", False),
    ("hello.world2", False), ("great show", False),
])
def test_has_link(text: str, link: bool) -> None:
    assert has_link(text) is link


def test_links_only_from_staff() -> None:
    check_links("buy at shop.example.io", staff=True)
    with pytest.raises(ChatRefused) as caught:
        check_links("buy at shop.example.io", staff=False)
    assert caught.value.code == "links-not-allowed"


@pytest.mark.parametrize("text, words, matched", [
    ("what a class act", ["ass"], None),  # whole words only
    ("you ASS!", ["ass"], "ass"),
    ("\uff59\uff4f\uff55 \uff21\uff33\uff33", ["ass"], "ass"),  # fullwidth evasion
    ("a\u200dss", ["ass"], "ass"),  # zero-width joiner evasion
    ("ok BUY  now!", ["buy now"], "buy now"),  # a phrase on word boundaries
    ("buy nowhere", ["buy now"], None),
    ("ok buy now", ["buy", "buy now"], "buy now"),  # the longest at one place
    ("anything", [], None),
])
def test_blocked_match(text: str, words: list[str], matched: str | None) -> None:
    assert blocked_match(text, words) == matched


def test_normalise_blocked_words() -> None:
    assert normalise_blocked_words([" Buy  Now ", "ＡＳＳ", "ass", "buy now"]) == \
        ["buy now", "ass"]
    assert len(normalise_blocked_words(f"w{i}" for i in range(200))) == 200
    for bad in ([""], ["  "], ["x" * 41], [f"w{i}" for i in range(201)]):
        with pytest.raises(ChatRefused) as caught:
            normalise_blocked_words(bad)
        assert caught.value.code == "bad-blocked-words"


def test_dedupe_key() -> None:
    assert dedupe_key("Nice!!!") == dedupe_key("nice !") == dedupe_key("ＮＩＣＥ！")
    assert dedupe_key("nice?!") != dedupe_key("nice!")
    assert dedupe_key("nice one") != dedupe_key("nice two")


@pytest.mark.parametrize("text, claim", [
    ("SOLD 12", Claim(12, 1, None)),
    ("sold #12", Claim(12, 1, None)),
    ("Sold 12 M", Claim(12, 1, "M")),
    ("SOLD 12 2 M", Claim(12, 2, "M")),
    ("SOLD 12 xl 2", Claim(12, 2, "XL")),
    ("SOLD 12 2", Claim(12, 2, None)),  # a lone number is the quantity
    ("SOLD 12 1 10.5", Claim(12, 1, "10.5")),
    ("SOLD 12 small", Claim(12, 1, "SMALL")),  # any word is a size; the lineup decides
    ("SOLD 9999 99 32/34", Claim(9999, 99, "32/34")),
    ("SOLD", None), ("SOLD 0", None), ("SOLD 012", None), ("SOLD 10000", None),
    ("SOLD ##12", None), ("SOLD12", None), ("I SOLD 12", None), ("SOLD 12 for me", None),
    ("SOLD 12 2 M now", None), ("SOLD 12 M L", None), ("SOLD 12 0 M", None),
    ("SOLD 12 M.", None), ("SOLD 12 yes!", None), ("SOLD 12 " + "X" * 21, None),
    ("\u017fOLD 12", None), ("BUY 12", None),
])
def test_parse_claim(text: str, claim: Claim | None) -> None:
    assert parse_claim(text, "SOLD") == claim


@pytest.mark.parametrize("keyword, valid", [
    ("SOLD", True), ("ok", True), ("mine2", True), ("x" * 16, True),
    ("x", False), ("x" * 17, False), ("sold!", False), ("so ld", False), ("\u00e9t\u00e9", False),
])
def test_valid_keyword(keyword: str, valid: bool) -> None:
    assert valid_keyword(keyword) is valid


def test_reactions() -> None:
    assert tuple(REACTION_EMOJI) == REACTIONS
    assert REACTION_EMOJI["bag"] == "\U0001f6cd\ufe0f"
