"""What a chat message may say, decided on the text alone (docs/chat.md, "Messages").

Pure: no I/O, no clock. The hub cleans each message here before the posting script sees it,
so every screen shows the same clean text and the rules (links, blocked words, duplicates,
comment-to-buy claims) all look at that one text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache

from checkout.errors import Refused

__all__ = ["MAX_CHARS", "MAX_MARKS", "MAX_BLOCKED_WORDS", "MAX_BLOCKED_WORD_CHARS", "REACTIONS",
           "REACTION_EMOJI", "KEYWORD_RE", "ChatRefused", "Claim", "normalise", "has_link",
           "check_links", "blocked_match", "normalise_blocked_words", "dedupe_key",
           "parse_claim", "valid_keyword"]

MAX_CHARS = 200  # code points after cleaning: a comment read in passing, not a letter
MAX_MARKS = 3  # combining marks on one character: enough for any script, too few for "zalgo"
MAX_BLOCKED_WORDS = 200
MAX_BLOCKED_WORD_CHARS = 40
REACTIONS: tuple[str, ...] = ("heart", "fire", "laugh", "wow", "clap", "bag")
REACTION_EMOJI: dict[str, str] = {
    "heart": "\u2764\ufe0f", "fire": "\U0001f525", "laugh": "\U0001f602",
    "wow": "\U0001f62e", "clap": "\U0001f44f", "bag": "\U0001f6cd\ufe0f"}
KEYWORD_RE = re.compile(r"[A-Za-z0-9]{2,16}")

# Invisible or unassigned: bidi overrides (U+202E), zero-width spaces, private use, lone
# surrogates. Whitespace among them (newlines, U+2028) becomes a space instead.
_REMOVED = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
_ZWJ = "\u200d"


def _kept(char: str) -> bool:
    """The invisible characters that build emoji: the ZWJ of 👩‍💻, the variation selectors
    of ❤️, the tag characters of a subdivision flag such as 🏴󠁧󠁢󠁳󠁣󠁴󠁿."""
    return char == _ZWJ or char in "\ufe0e\ufe0f" or "\U000e0020" <= char <= "\U000e007f"


class ChatRefused(Refused):
    """A message (or a blocked-words list) the text rules turn down. A `Refused`, so the hub
    answers it as an error frame and the web layer as problem+json, with `code` as the kind."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(422, code, message)
        self.code = code
        self.message = message


def normalise(raw: str) -> str:
    """The clean text of a message: NFC; invisible and control characters removed (but for
    `_kept`); whitespace runs one space, ends stripped; at most MAX_MARKS combining marks per
    character. Refuses `empty` and `too-long` (over MAX_CHARS code points)."""
    text = unicodedata.normalize("NFC", raw)
    text = "".join(" " if c.isspace() else c for c in text
                   if c.isspace() or _kept(c) or unicodedata.category(c) not in _REMOVED)
    text = _cut_marks(unicodedata.normalize("NFC", " ".join(text.split())))
    if not text:
        raise ChatRefused("empty", "the message is empty")
    if len(text) > MAX_CHARS:
        raise ChatRefused("too-long", f"a message is at most {MAX_CHARS} characters")
    return text


def _cut_marks(text: str) -> str:
    """Keeps the first MAX_MARKS combining marks after each base character; a ZWJ does not
    start a new run, or interleaving ZWJs would stack marks again."""
    out: list[str] = []
    marks = 0
    for char in text:
        if unicodedata.category(char) in ("Mn", "Me"):
            marks += 1
            if marks > MAX_MARKS:
                continue
        elif char != _ZWJ:
            marks = 0
        out.append(char)
    return "".join(out)


_LINK_RE = re.compile(
    r"https?://|(?<![\w.])www\.|(?<![\w.])(?:[^\W_][\w-]*\.)+[^\W\d_]{2,24}(?!\w)",
    re.IGNORECASE)


def has_link(text: str) -> bool:
    """Whether the text holds a link: `http://`, `https://`, `www.`, or a bare `name.tld`
    (a name, a dot, then a TLD of 2-24 letters and no more word characters, after NFKC so
    fullwidth dots count), with or without a path: `evil.com/x`, `shop.example.io`, and an
    e-mail's domain. `hello.world` counts; `3.5`, `e.g.`, `...` and `v2.0` do not."""
    return _LINK_RE.search(unicodedata.normalize("NFKC", text)) is not None


def check_links(text: str, staff: bool) -> None:
    """Links only from staff (host, moderators, brands): a viewer's link is spam or phishing."""
    if not staff and has_link(text):
        raise ChatRefused("links-not-allowed", "only the host and moderators may post links")


def _fold(text: str) -> str:
    """The text matching compares: NFKC casefolded (so fullwidth `ＡＳＳ` is `ass`) without
    the invisible characters a word could hide behind."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in folded if not _kept(c) and unicodedata.category(c) != "Cf")


@lru_cache(maxsize=256)
def _blocked_re(words: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation per list (longest first), compiled once per list, not per message."""
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def blocked_match(text: str, words: Collection[str]) -> str | None:
    """The blocked word or phrase (folded) the text contains, on word boundaries: `ass`
    matches "you ass" but not "class"; `buy now` matches "ok buy now!"."""
    folded = tuple(sorted({w for w in (" ".join(_fold(w).split()) for w in words) if w}))
    if not folded:
        return None
    match = _blocked_re(folded).search(" ".join(_fold(text).split()))
    return match.group(0) if match else None


def normalise_blocked_words(words: Iterable[str]) -> list[str]:
    """The creator's list, folded as `blocked_match` compares, deduplicated in order. Refuses
    `bad-blocked-words`: an entry that is not 1-40 characters, or more than 200 entries."""
    cleaned: dict[str, None] = {}
    for word in words:
        folded = " ".join(_fold(word).split()) if isinstance(word, str) else ""
        if not 1 <= len(folded) <= MAX_BLOCKED_WORD_CHARS:
            raise ChatRefused("bad-blocked-words",
                              f"each blocked word is 1-{MAX_BLOCKED_WORD_CHARS} characters")
        cleaned[folded] = None
        if len(cleaned) > MAX_BLOCKED_WORDS:
            raise ChatRefused("bad-blocked-words",
                              f"at most {MAX_BLOCKED_WORDS} blocked words")
    return list(cleaned)


def dedupe_key(text: str) -> str:
    """What the duplicate rule compares: folded, whitespace removed, runs of one punctuation
    character collapsed ("Nice!!!" is "nice!"), hashed short so the store keeps 16 hex."""
    key = re.sub(r"([^\w\s])\1+", r"\1", "".join(_fold(text).split()))
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """A comment-to-buy: the lineup code, how many, and the size (upper-cased) if given."""

    code: int
    qty: int
    size: str | None


_CODE_RE = re.compile(r"#?([1-9][0-9]{0,3})")
_QTY_RE = re.compile(r"[1-9][0-9]?")
_SIZE_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9./-]{0,18}[A-Za-z0-9])?")


def valid_keyword(keyword: str) -> bool:
    """A show's claim keyword: 2-16 ASCII letters or digits, typed on any phone keyboard."""
    return KEYWORD_RE.fullmatch(keyword) is not None


def parse_claim(text: str, keyword: str) -> Claim | None:
    """`<KEYWORD> <code> [qty] [size]` (keyword in any case, `#` before the code allowed,
    qty and size in either order), else None. A lone number after the code is the quantity
    (`SOLD 12 2`); a numeric size needs the quantity first (`SOLD 12 1 10`)."""
    tokens = text.split()
    if not 2 <= len(tokens) <= 4 or not valid_keyword(tokens[0]) \
            or tokens[0].lower() != keyword.lower():
        return None
    code = _CODE_RE.fullmatch(tokens[1])
    if code is None:
        return None
    match tokens[2:]:
        case []:
            return Claim(int(code[1]), 1, None)
        case [one] if _QTY_RE.fullmatch(one):
            return Claim(int(code[1]), int(one), None)
        case [one] if _SIZE_RE.fullmatch(one):
            return Claim(int(code[1]), 1, one.upper())
        case [qty, size] if _QTY_RE.fullmatch(qty) and _SIZE_RE.fullmatch(size):
            return Claim(int(code[1]), int(qty), size.upper())
        case [size, qty] if _SIZE_RE.fullmatch(size) and _QTY_RE.fullmatch(qty):
            return Claim(int(code[1]), int(qty), size.upper())
    return None
