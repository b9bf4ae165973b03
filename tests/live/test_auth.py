"""Pure tests for live.accounts.auth: tokens, roles, header parsing, redaction, secret file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import stat
import sys
from pathlib import Path

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live.accounts.auth import (
    AuthError,
    Forbidden,
    Principal,
    RedactTokens,
    Role,
    TokenAuthority,
    bearer_token,
    install_token_redaction,
    require_role,
    secret_from_env_or_file,
    token_from_query,
)

SECRET = "s" * 32 + "-livecart-test-secret"
OTHER_SECRET = "o" * 32 + "-some-other-secret"
NOW = 1_700_000_000


@pytest.fixture
def authority() -> TokenAuthority:
    return TokenAuthority(SECRET)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": "livecart",
        "aud": "livecart-api",
        "sub": "brand-1",
        "role": "brand",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 60,
        "jti": "abc123",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hand_made(header: dict[str, object], payload: dict[str, object], key: bytes | None) -> str:
    """Build a compact JWS by hand, signing with HMAC-SHA256 unless key is None."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    sig = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def reason(authority: TokenAuthority, token: str, now: int = NOW) -> str:
    with pytest.raises(AuthError) as info:
        authority.verify(token, now=now)
    return info.value.reason


# --- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_round_trip_each_role(authority: TokenAuthority, role: Role) -> None:
    token = authority.mint(role, "subject-1", ttl_s=300, now=NOW)
    principal = authority.verify(token, now=NOW + 10)
    assert principal.role is role
    assert principal.subject == "subject-1"
    assert principal.expires_at == NOW + 300
    assert principal.token_id


def test_token_ids_are_unique(authority: TokenAuthority) -> None:
    a = authority.verify(authority.mint(Role.BUYER, "b1", ttl_s=60, now=NOW), now=NOW)
    b = authority.verify(authority.mint(Role.BUYER, "b1", ttl_s=60, now=NOW), now=NOW)
    assert a.token_id != b.token_id


def test_verify_defaults_to_wall_clock(authority: TokenAuthority) -> None:
    assert authority.verify(authority.mint(Role.BUYER, "b1", ttl_s=60)).subject == "b1"


def test_mint_refuses_bad_subject_and_ttl(authority: TokenAuthority) -> None:
    for subject in ("", "x" * 65, "has space", "semi;colon", "ünï"):
        with pytest.raises(ValueError):
            authority.mint(Role.BUYER, subject, ttl_s=60, now=NOW)
    with pytest.raises(ValueError):
        authority.mint(Role.BUYER, "b1", ttl_s=0, now=NOW)


# --- time ----------------------------------------------------------------------


def test_expired(authority: TokenAuthority) -> None:
    token = authority.mint(Role.BUYER, "b1", ttl_s=60, now=NOW)
    assert authority.verify(token, now=NOW + 60 + 4).subject == "b1"  # within leeway
    assert reason(authority, token, now=NOW + 60 + 5) == "expired_token"
    assert reason(authority, token, now=NOW + 10_000) == "expired_token"


def test_not_yet_valid(authority: TokenAuthority) -> None:
    token = authority.mint(Role.BUYER, "b1", ttl_s=600, now=NOW + 100)
    assert reason(authority, token, now=NOW) == "invalid_claims"
    assert authority.verify(token, now=NOW + 96).subject == "b1"  # within leeway


def test_nbf_in_future_rejected(authority: TokenAuthority) -> None:
    token = jwt.encode(claims(nbf=NOW + 100, exp=NOW + 600), SECRET, algorithm="HS256")
    assert reason(authority, token) == "invalid_claims"


# --- signatures and algorithms ---------------------------------------------------


def test_forged_signature(authority: TokenAuthority) -> None:
    forged = TokenAuthority(OTHER_SECRET).mint(Role.OPERATOR, "root", ttl_s=60, now=NOW)
    assert reason(authority, forged) == "bad_signature"


def test_tampered_payload(authority: TokenAuthority) -> None:
    header, _, sig = authority.mint(Role.BUYER, "b1", ttl_s=60, now=NOW).split(".")
    payload = b64url(json.dumps(claims(role="operator", sub="b1")).encode())
    assert reason(authority, f"{header}.{payload}.{sig}") == "bad_signature"


def test_alg_none_rejected(authority: TokenAuthority) -> None:
    token = hand_made({"alg": "none", "typ": "JWT"}, claims(role="operator"), key=None)
    assert reason(authority, token) == "bad_signature"


@pytest.mark.parametrize("alg", ["None", "NONE", "", "HS512", "HS384", "RS256", "ES256", "PS256"])
def test_other_algorithms_rejected(authority: TokenAuthority, alg: str) -> None:
    # Signed with the real secret so only the algorithm pin can stop it
    # (the RS256 case is the classic public-key-as-HMAC-secret confusion).
    token = hand_made({"alg": alg, "typ": "JWT"}, claims(), key=SECRET.encode())
    assert reason(authority, token) == "bad_signature"


def test_hs512_with_real_secret_rejected(authority: TokenAuthority) -> None:
    token = jwt.encode(claims(), SECRET + "x" * 40, algorithm="HS512")
    assert reason(authority, token) == "bad_signature"


def test_missing_alg_rejected(authority: TokenAuthority) -> None:
    token = hand_made({"typ": "JWT"}, claims(), key=SECRET.encode())
    assert reason(authority, token) == "bad_signature"


def test_hand_made_hs256_accepted(authority: TokenAuthority) -> None:
    # Guards the tests above: the same recipe with alg HS256 verifies.
    token = hand_made({"alg": "HS256", "typ": "JWT"}, claims(), key=SECRET.encode())
    assert authority.verify(token, now=NOW) == Principal(Role.BRAND, "brand-1", "abc123", NOW + 60)


# --- claims ----------------------------------------------------------------------


def test_wrong_audience(authority: TokenAuthority) -> None:
    token = jwt.encode(claims(aud="someone-else"), SECRET, algorithm="HS256")
    assert reason(authority, token) == "invalid_claims"
    other = TokenAuthority(SECRET, audience="other-api").mint(Role.BUYER, "b1", ttl_s=60, now=NOW)
    assert reason(authority, other) == "invalid_claims"


def test_wrong_issuer(authority: TokenAuthority) -> None:
    other = TokenAuthority(SECRET, issuer="evil").mint(Role.BUYER, "b1", ttl_s=60, now=NOW)
    assert reason(authority, other) == "invalid_claims"


def test_unknown_role(authority: TokenAuthority) -> None:
    for role in ("admin", "", "OPERATOR", 1, None, ["operator"]):
        token = jwt.encode({**claims(), "role": role}, SECRET, algorithm="HS256")
        assert reason(authority, token) == "invalid_claims", role


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud", "iss", "role", "jti"])
def test_missing_claims(authority: TokenAuthority, claim: str) -> None:
    payload = claims()
    del payload[claim]
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    assert reason(authority, token) == "invalid_claims"


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": "has space"},
        {"sub": "x" * 65},
        {"sub": 42},
        {"exp": "later"},
        {"exp": True},
        {"iat": 1.5},
        {"nbf": "now"},
        {"jti": 7},
    ],
)
def test_bad_claim_values(authority: TokenAuthority, overrides: dict[str, object]) -> None:
    token = jwt.encode({**claims(), **overrides}, SECRET, algorithm="HS256")
    assert reason(authority, token) in {"invalid_claims", "malformed_token"}


def test_malformed(authority: TokenAuthority) -> None:
    assert reason(authority, "") == "missing_token"
    for junk in ("abc", "a.b", "a.b.c", "eyJ.eyJ.", "....", "x" * 10_000):
        assert reason(authority, junk) == "malformed_token"
    bad_header = f"{b64url(b'[1,2]')}.{b64url(b'{}')}.sig"
    assert reason(authority, bad_header) == "malformed_token"
    header = b64url(json.dumps({"alg": "HS256"}).encode())
    assert reason(authority, hand_made({"alg": "HS256"}, [], SECRET.encode())) == "malformed_token"  # type: ignore[arg-type]
    assert reason(authority, f"{header}.!!!.x") == "malformed_token"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_garbage_only_raises_auth_error(garbage: str) -> None:
    authority = TokenAuthority(SECRET)
    with pytest.raises(AuthError):
        authority.verify(garbage, now=NOW)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="eyJABCxyz019_-.=+/", max_size=40), min_size=1, max_size=4))
def test_dotted_garbage_only_raises_auth_error(parts: list[str]) -> None:
    with pytest.raises(AuthError):
        TokenAuthority(SECRET).verify(".".join(parts), now=NOW)


def test_error_never_contains_token(authority: TokenAuthority) -> None:
    token = TokenAuthority(OTHER_SECRET).mint(Role.OPERATOR, "root", ttl_s=60, now=NOW)
    with pytest.raises(AuthError) as info:
        authority.verify(token, now=NOW)
    assert token not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- secrets ---------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, b"\x00" * 31])
def test_short_secret_refused(secret: str | bytes) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        TokenAuthority(secret)


def test_32_byte_secret_accepted() -> None:
    assert TokenAuthority(b"k" * 32).mint(Role.BUYER, "b1", ttl_s=1, now=NOW)


def test_secret_file_created_once_0600_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = secret_from_env_or_file(data_dir, None)
    path = data_dir / "jwt.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert secret_from_env_or_file(data_dir, None) == first
    assert secret_from_env_or_file(data_dir, "") == first
    assert [p.name for p in data_dir.iterdir()] == ["jwt.secret"]  # no temp files left
    # A token minted by one process (`livecart token`) verifies in another (`serve`).
    token = TokenAuthority(first).mint(Role.OPERATOR, "ops", ttl_s=60, now=NOW)
    reread = secret_from_env_or_file(data_dir, None)
    assert TokenAuthority(reread).verify(token, now=NOW).is_operator


def test_secret_from_env_wins(tmp_path: Path) -> None:
    assert secret_from_env_or_file(tmp_path, "e" * 40) == b"e" * 40
    assert not (tmp_path / "jwt.secret").exists()


def test_secret_file_too_short_refused(tmp_path: Path) -> None:
    (tmp_path / "jwt.secret").write_text("tiny\n")
    with pytest.raises(ValueError, match="at least 32"):
        secret_from_env_or_file(tmp_path, None)


# --- transport extraction ----------------------------------------------------------


def test_bearer_token() -> None:
    assert bearer_token({"authorization": "Bearer abc.def.ghi"}) == "abc.def.ghi"
    assert bearer_token({"Authorization": "bearer tok"}) == "tok"
    assert bearer_token({"AUTHORIZATION": "BEARER  tok "}) == "tok"
    for headers in (
        {},
        {"authorization": ""},
        {"authorization": "Bearer"},
        {"authorization": "Bearer "},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer a b"},
        {"authorization": "Token tok"},
    ):
        with pytest.raises(AuthError) as info:
            bearer_token(headers)
        assert info.value.reason == "missing_token"


def test_bearer_token_with_starlette_headers() -> None:
    from starlette.datastructures import Headers

    headers = Headers(raw=[(b"authorization", b"Bearer tok")])
    assert bearer_token(headers) == "tok"


def test_token_from_query() -> None:
    assert token_from_query({"access_token": "tok"}) == "tok"
    for params in ({}, {"access_token": ""}, {"access_token": "  "}, {"token": "tok"}):
        with pytest.raises(AuthError) as info:
            token_from_query(params)
        assert info.value.reason == "missing_token"


# --- roles -------------------------------------------------------------------------


def principal(role: Role, subject: str) -> Principal:
    return Principal(role=role, subject=subject, token_id="j", expires_at=NOW)


def test_principal_helpers() -> None:
    op = principal(Role.OPERATOR, "alice")
    brand = principal(Role.BRAND, "b1")
    creator = principal(Role.CREATOR, "c1")
    buyer = principal(Role.BUYER, "b1")
    assert op.is_operator and not brand.is_operator
    assert op.can_act_for_brand("b1") and op.can_act_for_creator("c1")
    assert brand.can_act_for_brand("b1") and not brand.can_act_for_brand("b2")
    assert not brand.can_act_for_creator("b1")
    assert creator.can_act_for_creator("c1") and not creator.can_act_for_creator("c2")
    assert not creator.can_act_for_brand("c1")
    # Same id string, different role: a buyer "b1" is not brand "b1".
    assert not buyer.can_act_for_brand("b1") and not buyer.can_act_for_creator("b1")


def test_principal_is_frozen() -> None:
    p = principal(Role.BUYER, "b1")
    with pytest.raises(AttributeError):
        p.role = Role.OPERATOR  # type: ignore[misc]


def test_require_role() -> None:
    require_role(principal(Role.BRAND, "b1"), Role.BRAND, Role.OPERATOR)
    with pytest.raises(Forbidden) as info:
        require_role(principal(Role.BUYER, "b1"), Role.BRAND, Role.OPERATOR)
    assert info.value.reason == "role_not_allowed"
    with pytest.raises(Forbidden):
        require_role(principal(Role.OPERATOR, "root"))


# --- log redaction -----------------------------------------------------------------


def make_record(msg: object, args: object = ()) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]


def test_redacts_token_in_msg_and_args(authority: TokenAuthority) -> None:
    token = authority.mint(Role.OPERATOR, "root", ttl_s=60, now=NOW)
    filt = RedactTokens()

    record = make_record(f"got {token} from client")
    assert filt.filter(record)
    assert token not in record.getMessage() and "[REDACTED]" in record.getMessage()

    record = make_record("got %s for %s", (token, "root"))
    filt.filter(record)
    assert token not in record.getMessage()
    assert record.getMessage().endswith("for root")

    record = make_record("auth=%(auth)s", ({"auth": f"Bearer {token}"},))
    filt.filter(record)
    assert token not in record.getMessage()

    record = make_record("headers %r", ({"authorization": f"Bearer {token}"},))
    filt.filter(record)
    assert token not in record.getMessage()


def test_redacts_bearer_and_query_and_keeps_other_args() -> None:
    filt = RedactTokens()
    record = make_record("Authorization: Bearer opaque-secret-123 ok")
    filt.filter(record)
    assert "opaque-secret-123" not in record.getMessage()
    assert record.getMessage() == "Authorization: Bearer [REDACTED] ok"

    # uvicorn's access log shape: positional args, status code stays an int.
    args = ("127.0.0.1:5000", "GET", "/ws?access_token=zzz-opaque&room=1", "1.1", 101)
    record = make_record('%s - "%s %s HTTP/%s" %d', args)
    filt.filter(record)
    assert record.args is not None and record.args[4] == 101
    assert "zzz-opaque" not in record.getMessage()
    assert "room=1" in record.getMessage()

    # A WHEP/WHIP session URL is a capability (DELETE ends the session): its id goes too.
    args = ("127.0.0.1:5000", "DELETE", "/api/v1/streams/s_1/whep/Zq3-x_9AbCdEfGhIjKlMnOpQ", "1.1", 200)
    record = make_record('%s - "%s %s HTTP/%s" %d', args)
    filt.filter(record)
    assert "Zq3-x_9AbCdEfGhIjKlMnOpQ" not in record.getMessage()
    assert "/api/v1/streams/s_1/whep/[REDACTED]" in record.getMessage()


def test_redacts_exception_text(authority: TokenAuthority) -> None:
    token = authority.mint(Role.BUYER, "b1", ttl_s=60, now=NOW)
    try:
        raise RuntimeError(f"boom {token}")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    RedactTokens().filter(record)
    assert token not in logging.Formatter().format(record)


def test_install_token_redaction_on_logger_and_handlers(authority: TokenAuthority) -> None:
    token = authority.mint(Role.BUYER, "b1", ttl_s=60, now=NOW)
    parent = logging.getLogger("livecart-test-redaction")
    child = logging.getLogger("livecart-test-redaction.child")
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = ListHandler()
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False
    try:
        install_token_redaction([parent])
        install_token_redaction([parent])  # idempotent
        assert sum(isinstance(f, RedactTokens) for f in handler.filters) == 1
        parent.info("direct %s", token)
        child.info("propagated %s", token)
    finally:
        parent.removeHandler(handler)
    assert len(lines) == 2
    assert all(token not in line and "[REDACTED]" in line for line in lines)


def test_a_remembered_token_still_expires() -> None:
    authority = TokenAuthority("s" * 40)
    token = authority.mint(Role.BUYER, "bob", ttl_s=10, now=1000)
    assert authority.verify(token, now=1005).subject == "bob"
    assert authority.verify(token, now=1006).subject == "bob"  # served from the cache
    with pytest.raises(AuthError) as refused:
        authority.verify(token, now=1020)
    assert refused.value.reason == "expired_token"
