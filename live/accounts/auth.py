"""Signed bearer tokens, roles and the checks every endpoint runs.

Tokens are HS256 JWTs signed with one shared secret, so any node holding the
secret can verify any token without a round trip to Valkey. The accepted
algorithm is pinned (RFC 8725 section 2.1): the token's own header never
chooses how it is verified, which shuts out ``alg: none`` and key-confusion
tricks. Errors carry a short machine reason and never the token itself, and
``RedactTokens`` keeps tokens out of log records for the same reason.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import jwt
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from checkout.errors import LivecartError

__all__ = [
    "ALGORITHM",
    "MIN_SECRET_BYTES",
    "SECRET_FILE_NAME",
    "AuthError",
    "Forbidden",
    "Principal",
    "RedactTokens",
    "Role",
    "TokenAuthority",
    "bearer_token",
    "bearer_token_of",
    "install_token_redaction",
    "require_role",
    "secret_from_env_or_file",
    "token_from_query",
]

logger = logging.getLogger(__name__)

ALGORITHM: Final = "HS256"
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES: Final = 32
SECRET_FILE_NAME: Final = "jwt.secret"
# Our tokens are a few hundred bytes; refuse to parse anything far larger.
MAX_TOKEN_CHARS: Final = 4096
VERIFIED_CACHE_SIZE: Final = 50_000

_SUBJECT_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_REQUIRED_CLAIMS: Final = ("exp", "iat", "sub", "aud", "iss", "role", "jti")


class Role(StrEnum):
    """Who a token speaks for; checked on every command."""

    OPERATOR = "operator"
    BRAND = "brand"
    CREATOR = "creator"
    BUYER = "buyer"
    MODERATOR = "moderator"  # a creator's chat moderator: granted to accounts, not minted


class AuthError(LivecartError):
    """The caller could not be authenticated (maps to HTTP 401).

    ``reason`` is one of ``missing_token``, ``malformed_token``,
    ``bad_signature``, ``expired_token``, ``invalid_claims``. It is safe to
    show to clients and to log; the token never appears in it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Forbidden(LivecartError):
    """The caller is known but may not do this (maps to HTTP 403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified identity behind a request.

    ``subject`` is the brand id, creator id or buyer id for those roles, and
    the operator's name for operators.
    """

    role: Role
    subject: str
    token_id: str
    expires_at: int
    # An API key's scopes (`tag:read`, `tag:write`: live/accounts/api_keys.py); None: a
    # token or a session, which the role alone bounds.
    scopes: frozenset[str] | None = None

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    def can_act_for_brand(self, brand_id: str) -> bool:
        """Operators act for every brand; a brand only for itself."""
        return self.is_operator or (self.role is Role.BRAND and self.subject == brand_id)

    def can_act_for_creator(self, creator_id: str) -> bool:
        """Operators act for every creator; a creator only for itself."""
        return self.is_operator or (
            self.role is Role.CREATOR and self.subject == creator_id
        )

    def can_moderate(self, creator_id: str) -> bool:
        """Whoever acts for the creator, and the creator's moderators: they read its
        streams as the host console does (docs/api.md has what each may change)."""
        return self.can_act_for_creator(creator_id) or (
            self.role is Role.MODERATOR and self.subject == creator_id
        )


def require_role(principal: Principal, *roles: Role) -> None:
    """Raise ``Forbidden("role_not_allowed")`` unless the principal has one of ``roles``."""
    if principal.role not in roles:
        raise Forbidden("role_not_allowed")


def _is_int(value: object) -> bool:
    # bool is an int subclass; ``"exp": true`` is not a timestamp.
    return isinstance(value, int) and not isinstance(value, bool)


class TokenAuthority:
    """Mints and verifies tokens with one secret; safe to share across tasks."""

    __slots__ = ("_audience", "_issuer", "_jwt", "_leeway_s", "_secret", "_verified")

    def __init__(
        self,
        secret: str | bytes,
        *,
        issuer: str = "livecart",
        audience: str = "livecart-api",
        leeway_s: int = 5,
    ) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError(
                f"token secret is {len(key)} bytes; HS256 needs at least "
                f"{MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
            )
        if leeway_s < 0:
            raise ValueError("leeway_s must be >= 0")
        self._secret = key
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._verified: dict[str, Principal] = {}
        # Our own instance, not jwt's module-level one, so options stay local.
        self._jwt = jwt.PyJWT(options={"enforce_minimum_key_length": True})

    def mint(
        self, role: Role, subject: str, *, ttl_s: int, now: int | None = None
    ) -> str:
        """Return a signed token for ``role``/``subject`` valid for ``ttl_s`` seconds."""
        role = Role(role)
        if not isinstance(subject, str) or not _SUBJECT_RE.fullmatch(subject):
            raise ValueError("subject must be 1-64 chars of [A-Za-z0-9_.:-]")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        issued = int(time.time()) if now is None else now
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "role": role.value,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_s,
            "jti": secrets.token_urlsafe(16),
        }
        return self._jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str, *, now: int | None = None) -> Principal:
        """Return the principal a token speaks for, or raise ``AuthError``."""
        if not isinstance(token, str) or not token:
            raise AuthError("missing_token")
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError("malformed_token")
        current = int(time.time()) if now is None else now
        cached = self._verified.get(token)
        if cached is not None and cached.expires_at + self._leeway_s > current:
            return cached
        claims = self._decode(token)
        principal = self._check_claims(claims, current)
        # Verifying an HS256 JWT costs ~80 us; a buyer's taps reuse one token, so remember
        # good ones (bounded, oldest first out). Expiry is still checked on every use.
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))
        self._verified[token] = principal
        return principal

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return self._jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    # Time claims are checked in _check_claims against the
                    # caller's ``now``, so tests and replays use one clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            reason = "bad_signature"
        except (
            jwt.MissingRequiredClaimError,
            jwt.InvalidAudienceError,
            jwt.InvalidIssuerError,
            InvalidSubjectError,
            InvalidJTIError,
        ):
            reason = "invalid_claims"
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            reason = "malformed_token"
        logger.debug("token rejected: %s", reason)
        # ``from None``: the chained library error is noise and could quote input.
        raise AuthError(reason) from None

    def _check_claims(self, claims: dict[str, Any], now: int) -> Principal:
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", claims["iat"])
        if not (_is_int(exp) and _is_int(iat) and _is_int(nbf)):
            return self._reject("invalid_claims")
        if exp <= now - self._leeway_s:
            return self._reject("expired_token")
        if nbf > now + self._leeway_s or iat > now + self._leeway_s:
            return self._reject("invalid_claims")
        subject, token_id = claims["sub"], claims["jti"]
        if not isinstance(subject, str) or not _SUBJECT_RE.fullmatch(subject):
            return self._reject("invalid_claims")
        if not isinstance(token_id, str) or not token_id:
            return self._reject("invalid_claims")
        try:
            role = Role(claims["role"])
        except (ValueError, TypeError):
            return self._reject("invalid_claims")
        return Principal(role=role, subject=subject, token_id=token_id, expires_at=exp)

    @staticmethod
    def _reject(reason: str) -> Principal:
        logger.debug("token rejected: %s", reason)
        raise AuthError(reason)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # Plain dicts are case-sensitive; starlette's Headers already are not.
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def bearer_token(headers: Mapping[str, str]) -> str:
    """Return the token from ``Authorization: Bearer <token>``.

    The scheme is case-insensitive (RFC 9110 section 11.1). Raises
    ``AuthError("missing_token")`` when the header is absent or not a bearer
    credential.
    """
    return bearer_token_of(_header(headers, "authorization"))


def bearer_token_of(value: str | None) -> str:
    """``bearer_token``, given the Authorization header's value (None: absent)."""
    if not value:
        raise AuthError("missing_token")
    parts = value.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthError("missing_token")
    return parts[1]


def token_from_query(query_params: Mapping[str, str]) -> str:
    """Return ``?access_token=`` for WebSocket handshakes, which cannot set headers.

    Kept apart from ``bearer_token`` so plain HTTP endpoints never accept
    tokens in URLs, where proxies and browsers would log them.
    """
    value = query_params.get("access_token")
    if not value or not value.strip():
        raise AuthError("missing_token")
    return value.strip()


_REDACTED: Final = "[REDACTED]"
_SECRET_PATTERNS: Final = (
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), _REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + _REDACTED),
    (re.compile(r"(?i)\b(access_token=)[^&\s\"']+"), r"\1" + _REDACTED),
    # A WHIP/WHEP session URL is the capability to end that session (live/video/http.py).
    (re.compile(r"(/wh[ie]p/)[A-Za-z0-9_-]+"), r"\1" + _REDACTED),
)
_PLAIN_TYPES: Final = (int, float, bool, type(None), bytes)


def _redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactTokens(logging.Filter):
    """Scrub JWTs, ``Bearer`` credentials, ``access_token=`` values and WHIP/WHEP session
    ids from records.

    Args keep their position and type unless they contained a secret (uvicorn's
    access formatter unpacks ``record.args``), so formatting still works.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _redact(record.msg)
        elif _might_hold_secret(record.msg):
            record.msg = _redact(str(record.msg))
        if isinstance(record.args, Mapping):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set, so the redacted copy is what prints.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redact(record.exc_text)
        if record.stack_info:
            record.stack_info = _redact(record.stack_info)
        return True


def _might_hold_secret(value: object) -> bool:
    if isinstance(value, _PLAIN_TYPES):
        return False
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break logging
        return False
    return _redact(text) != text


def _redact_arg(value: object) -> object:
    if isinstance(value, str):
        return _redact(value)
    if _might_hold_secret(value):
        return _redact(str(value))
    return value


def install_token_redaction(loggers: Iterable[logging.Logger]) -> None:
    """Attach ``RedactTokens`` to each logger and each of its handlers, once.

    A logger's own filters do not see records propagated from its children;
    handler filters do, hence both.
    """
    for target in loggers:
        for holder in (target, *target.handlers):
            if not any(isinstance(f, RedactTokens) for f in holder.filters):
                holder.addFilter(RedactTokens())


def secret_from_env_or_file(data_dir: Path, env_value: str | None) -> bytes:
    """Return the token secret: ``env_value`` if set, else ``data_dir/jwt.secret``.

    The file is created on first run (32 random bytes, hex, mode 0600) so a
    fresh ``livecart serve`` needs no configuration and ``livecart token``
    run against the same data dir mints tokens it accepts. Creation is
    atomic: concurrent first runs agree on one secret.
    """
    if env_value:
        return env_value.encode("utf-8")
    path = Path(data_dir) / SECRET_FILE_NAME
    if not path.exists():
        _create_secret_file(path)
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{path} holds {len(secret)} bytes; need at least {MIN_SECRET_BYTES}. "
            "Delete it to generate a new secret (existing tokens stop working)."
        )
    if path.stat().st_mode & 0o077:
        logger.warning("%s is readable by group or others; chmod 600 it", path)
    return secret


def _create_secret_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link() refuses to replace an existing file, unlike rename(), so a
        # concurrent first run keeps whichever secret landed first.
        os.link(tmp, path)
        logger.info("created token secret %s", path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
