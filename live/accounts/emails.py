"""Email addresses as accounts know them: one normal form, so one person has one account."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Final

from email_validator import EmailNotValidError, validate_email

from checkout.errors import Refused

__all__ = ["MAX_EMAIL_CHARS", "BadEmail", "normalise_email", "email_hash"]

MAX_EMAIL_CHARS: Final = 254  # RFC 5321 section 4.5.3.1.3: a path holds at most 256 octets


class BadEmail(Refused):
    """Not an address we can send a sign-in mail to (422)."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, "invalid-email", detail)


def normalise_email(raw: str) -> str:
    """Strip, NFKC (full-width and compatibility forms fold to one spelling), validate the
    syntax with email-validator (no DNS: a sign-in mail is the real check) and lowercase
    the domain (email-validator does, and IDNA-normalises it). The local part keeps its
    case: RFC 5321 leaves it to the receiving server."""
    text = unicodedata.normalize("NFKC", raw.strip())
    if not text or len(text) > MAX_EMAIL_CHARS:
        raise BadEmail(f"an email address is 1 to {MAX_EMAIL_CHARS} characters")
    try:
        valid = validate_email(text, check_deliverability=False, allow_display_name=False,
                               allow_quoted_local=False, allow_domain_literal=False)
    except EmailNotValidError as exc:
        raise BadEmail(str(exc)) from None
    local, _, domain = valid.normalized.rpartition("@")
    return f"{local}@{domain.lower()}"


def email_hash(email: str) -> str:
    """The SHA-256 (hex) of a normalised email: what keys and logs carry instead of it."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()
