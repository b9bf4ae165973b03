"""Page sessions over HTTP: the `lc_session` cookie, its CSRF and Origin checks, and the
principal a session acts as.

The cookie is HttpOnly (page scripts never see the token), SameSite=Lax (other sites' forms
and fetches do not carry it) and Secure when the node's public URL is https. Every unsafe
request (not GET, HEAD, OPTIONS) that a cookie authenticates must also carry the session's
CSRF token in `X-CSRF-Token`, which only our own pages can read (GET /auth/session), and an
Origin header, when the browser sends one, naming this node: else 403. Bearer tokens are
not cookies, so requests that carry one skip all this (live/web/api.py checks the header
first).
"""

from __future__ import annotations

import hmac
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from live.accounts.auth import Principal, Role
from live.accounts.accounts import Grant
from live.accounts.sessions import Session
from live.settings import Settings
from live.web.deps import services_of
from live.web.problems import Problem

__all__ = ["COOKIE", "CSRF_HEADER", "SAFE_METHODS", "session_of", "session_principal",
           "require_session", "check_origin", "set_session_cookie", "clear_session_cookie",
           "own_origins"]

COOKIE: Final = "lc_session"
CSRF_HEADER: Final = "X-CSRF-Token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_STATE: Final = "livecart_session"  # request.state attribute: the session, looked up once


def own_origins(request: Request) -> set[str]:
    """This node's origins: its public URL, the configured allowlist, and the origin the
    request itself was addressed to (scheme and Host)."""
    settings: Settings = services_of(request).settings
    host = request.headers.get("host", "")
    return {settings.base_url, *(o.rstrip("/") for o in settings.allowed_origins),
            f"{request.url.scheme}://{host}"}


def check_origin(request: Request) -> None:
    """403 unless the Origin header is absent or names this node (RFC 6454)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in own_origins(request):
        raise Problem(403, "origin-not-allowed", "this request came from another site")


async def session_of(request: Request) -> Session | None:
    """The live session of the request's cookie (None: no cookie, or it ended), looked up
    once per request. Checks nothing about the method: see `require_session`."""
    if hasattr(request.state, _STATE):
        cached: Session | None = getattr(request.state, _STATE)
        return cached
    token = request.cookies.get(COOKIE)
    services = services_of(request)
    session = await services.sessions.get(token) if token else None
    setattr(request.state, _STATE, session)
    return session


async def require_session(request: Request) -> Session:
    """The request's session, with the CSRF and Origin checks of an unsafe method passed:
    401 without a live session, 403 when a check fails."""
    session = await session_of(request)
    if session is None:
        raise _ended(request)
    if request.method not in SAFE_METHODS:
        check_origin(request)
        sent = request.headers.get(CSRF_HEADER.lower(), "")
        if not hmac.compare_digest(sent.encode("utf-8", "replace"), session.csrf.encode()):
            raise Problem(403, "csrf-failed",
                          f"a signed-in page's change needs the {CSRF_HEADER} header of its session")
    return session


async def session_principal(request: Request) -> Principal | None:
    """Who the request's session acts as, checked as `require_session` does; None when
    the request has no session cookie at all; 401 when it has one that ended."""
    if COOKIE not in request.cookies:
        return None
    session = await require_session(request)
    grant = session.grant
    if grant != Grant(Role.BUYER, session.account_id):
        # A grant can be revoked while a session acts with it: check it is still there.
        if not await services_of(request).accounts.has_grant(session.account_id, grant):
            grant = Grant(Role.BUYER, session.account_id)
    return Principal(role=grant.role, subject=grant.subject, token_id="session:" + session.id[:32],
                     expires_at=session.ends_ms // 1000)


def _ended(request: Request) -> Problem:
    has_cookie = COOKIE in request.cookies
    problem = Problem(401, "unauthorized", "the session has ended; sign in again" if has_cookie
                      else "sign in first")
    if has_cookie:  # drop the dead cookie
        problem.headers = {"Set-Cookie": _cookie_header(services_of(request).settings, "", 0)}
    return problem


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.headers.append("Set-Cookie", _cookie_header(settings, token, settings.session_max_s))


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.headers.append("Set-Cookie", _cookie_header(settings, "", 0))


def _cookie_header(settings: Settings, token: str, max_age: int) -> str:
    secure = "; Secure" if settings.base_url.startswith("https://") else ""
    return f"{COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}"
