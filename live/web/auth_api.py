"""Sign-in, sessions and hub tickets for the pages: the `/auth` endpoints, and the sign-in
page (`/signin`, and `/auth/email/verify` where a mailed link lands).

Endpoints (docs/accounts.md has the flow):
- POST /auth/email/start {email, next?}: 202 {challenge, expires_in_s}, for every
  well-formed address alike; mails a 6-digit code and a one-time link.
- POST /auth/email/verify {challenge, code | token}: signs in (a new session, its cookie).
- GET /auth/session: {signed_in, account, active, csrf} for the page's scripts.
- POST /auth/signout, POST /auth/signout-everywhere, PATCH /auth/account {display_name},
  POST /auth/act {grant}, POST /auth/ticket: with the session's X-CSRF-Token.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Final, Self
from urllib.parse import urlencode, urlsplit

import pydantic
from pydantic import StringConstraints
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from checkout.models import StrictModel
from live.accounts.accounts import Account, Grant
from live.accounts.emails import normalise_email
from live.accounts.mail import MailError
from live.accounts.sessions import Session
from live.accounts.signin import signin_mail
from live.web.api import Api, Call, json_response
from live.web.buy_confirm import buy_confirm_mode
from live.web.problems import Problem
from live.web.relying_party import public_base
from live.web.session_auth import (check_origin, clear_session_cookie, require_session,
                                   session_of, session_principal, set_session_cookie)
from overlay.pages import content_security_policy, render

__all__ = ["register", "auth_page_routes", "safe_next", "start_session", "AUTH_PREFIX"]

log = logging.getLogger(__name__)

AUTH_PREFIX: Final = "/auth"


class EmailStartIn(StrictModel):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    # Where the mailed link brings the person back to (a path on this node).
    next: Annotated[str, StringConstraints(max_length=2048)] | None = None


class EmailVerifyIn(StrictModel):
    challenge: Annotated[str, StringConstraints(pattern=r"^c_[0-9a-f]{32}$")]
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")] | None = None
    token: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")] | None = None

    @pydantic.model_validator(mode="after")
    def one_answer(self) -> Self:
        if (self.code is None) == (self.token is None):
            raise ValueError("send the code or the link's token, one of them")
        return self


class AccountIn(StrictModel):
    display_name: Annotated[str, StringConstraints(max_length=400)]  # checked again as kept


class ActIn(StrictModel):
    grant: Annotated[str, StringConstraints(min_length=3, max_length=80,
                                            pattern=r"^[a-z]+:[A-Za-z0-9_.:-]{1,64}$")]


def safe_next(value: str | None) -> str:
    """`value` if it is a path on this node, else "/": never another site (open redirect).
    Refuses `//host` and `/\\host` (browsers read both as another host), control characters
    (a URL parser drops tabs and newlines, which can make `//` of `/\\t/`), and anything
    with a scheme or a host."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/"


async def _session_body(call: Call[Any], account: Account, session: Session) -> dict[str, Any]:
    principal = await session_principal(call.request)  # the grant, if it still holds
    active = f"{principal.role.value}:{principal.subject}" if principal else str(session.grant)
    return {"signed_in": True, "account": account.public(), "active": active,
            "csrf": session.csrf,
            "buy_confirm": await buy_confirm_mode(call.services, account.id)}


async def start_session(call: Call[Any], account: Account, *, new_account: bool) -> Response:
    """Sign the browser in as `account`: a new session and its cookie, and the end of any
    session the browser had (never carry a session id across a sign-in: fixation)."""
    services = call.services
    before = await session_of(call.request)
    if before is not None:
        await services.sessions.end(before)
    token, session = await services.sessions.create(account.id, account.buyer_grant)
    response = json_response({"signed_in": True, "account": account.public(),
                              "active": str(session.grant), "csrf": session.csrf,
                              "new_account": new_account})
    set_session_cookie(response, services.settings, token)
    return response


async def _account_of(call: Call[Any], session: Session) -> Account:
    account = await call.services.accounts.get(session.account_id)
    if account is None:
        raise Problem(401, "unauthorized", "this account no longer exists")
    return account


def register(api: Api) -> None:
    """On an Api whose prefix is AUTH_PREFIX."""

    @api.endpoint("POST", "/email/start", summary="Mail a sign-in code and link (sign-up too)",
                  tag="auth", body=EmailStartIn, status=202)
    async def email_start(call: Call[EmailStartIn]) -> Response:
        check_origin(call.request)
        services, settings = call.services, call.services.settings
        email = normalise_email(call.body.email)
        ip = call.request.client.host if call.request.client else "?"
        challenge = await services.signin.start(email, ip)
        query = {"challenge": challenge.id, "token": challenge.link_token}
        if call.body.next and safe_next(call.body.next) != "/":
            query["next"] = safe_next(call.body.next)
        link = f"{public_base(call.request)}{AUTH_PREFIX}/email/verify?{urlencode(query)}"
        try:
            await services.mailer.send(signin_mail(challenge, link, settings.signin_code_ttl_s))
        except MailError:
            raise Problem(503, "mail-unavailable", "the sign-in mail could not be sent; "
                          "try again in a moment", headers={"Retry-After": "30"}) from None
        return json_response({"challenge": challenge.id,
                              "expires_in_s": settings.signin_code_ttl_s}, 202)

    @api.endpoint("POST", "/email/verify", summary="Sign in with the mailed code or link",
                  tag="auth", body=EmailVerifyIn)
    async def email_verify(call: Call[EmailVerifyIn]) -> Response:
        check_origin(call.request)
        services, body = call.services, call.body
        if body.code is not None:
            email = await services.signin.verify(body.challenge, "code", body.code)
        else:
            email = await services.signin.verify(body.challenge, "link", body.token or "")
        account, made = await services.accounts.sign_in(email)
        return await start_session(call, account, new_account=made)

    @api.endpoint("GET", "/session", summary="The page's session: account, grant, CSRF token",
                  tag="auth")
    async def get_session(call: Call[Any]) -> Response:
        session = await session_of(call.request)
        account = await call.services.accounts.get(session.account_id) if session else None
        if session is None or account is None:
            response = json_response({"signed_in": False})
            if "lc_session" in call.request.cookies:
                clear_session_cookie(response, call.services.settings)
            return response
        return json_response(await _session_body(call, account, session))

    @api.endpoint("POST", "/signout", summary="End the page's session", tag="auth", status=204)
    async def signout(call: Call[Any]) -> Response:
        if await session_of(call.request) is not None:
            session = await require_session(call.request)
            await call.services.sessions.end(session)
        response = Response(status_code=204)
        clear_session_cookie(response, call.services.settings)
        return response

    @api.endpoint("POST", "/signout-everywhere", summary="End every session of the account",
                  tag="auth", session=True)
    async def signout_everywhere(call: Call[Any]) -> Response:
        session = await require_session(call.request)
        ended = await call.services.sessions.end_all(session.account_id)
        log.info("account %s signed out everywhere: %d sessions ended", session.account_id, ended)
        response = json_response({"ended": ended})
        clear_session_cookie(response, call.services.settings)
        return response

    @api.endpoint("PATCH", "/account", summary="Change the account's display name", tag="auth",
                  body=AccountIn, session=True)
    async def change_account(call: Call[AccountIn]) -> Response:
        session = await require_session(call.request)
        try:
            await call.services.accounts.set_display_name(session.account_id,
                                                          call.body.display_name)
        except ValueError as exc:
            raise Problem(422, "invalid-display-name", str(exc)) from None
        return json_response((await _account_of(call, session)).public())

    @api.endpoint("POST", "/act", summary="Act as another of the account's grants", tag="auth",
                  body=ActIn)
    async def act(call: Call[ActIn]) -> Response:
        session = await require_session(call.request)
        account = await _account_of(call, session)
        try:
            grant = Grant.parse(call.body.grant)
        except ValueError:
            raise Problem(422, "unknown-grant", "a grant is role:subject of a known role") from None
        if grant not in account.grants:
            raise Problem(403, "grant-not-held", "this account does not hold that grant")
        updated = await call.services.sessions.act_as(session, grant)
        if updated is None:
            raise Problem(401, "unauthorized", "the session has ended; sign in again")
        return json_response({"signed_in": True, "account": account.public(),
                              "active": str(updated.grant), "csrf": updated.csrf})

    @api.endpoint("POST", "/ticket", summary="A short-lived hub token for the page's session",
                  tag="auth")
    async def ticket(call: Call[Any]) -> Response:
        await require_session(call.request)
        principal = await session_principal(call.request)
        assert principal is not None  # require_session found the cookie's session
        ttl = call.services.settings.ticket_ttl_s
        token = call.services.tokens.mint(principal.role, principal.subject, ttl_s=ttl)
        return json_response({"ticket": token, "expires_in_s": ttl,
                              "role": principal.role.value, "subject": principal.subject})


async def signin_page(request: Request) -> Response:
    """The sign-in page; also where a mailed link lands (its script posts the link's token:
    a mail scanner that only fetches the link spends nothing)."""
    return HTMLResponse(render("signin", "", ""), headers={
        "Content-Security-Policy": content_security_policy(""),
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


def auth_page_routes() -> list[Route]:
    return [Route("/signin", signin_page, methods=["GET"]),
            Route(f"{AUTH_PREFIX}/email/verify", signin_page, methods=["GET"])]
