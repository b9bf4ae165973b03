"""Passkeys for the pages, under /auth (docs/accounts.md, "Passkeys"):

- A signed-in page's own passkeys (the session's cookie and, on changes, its CSRF token):
  `POST /auth/passkeys/options` -> creation options; `POST /auth/passkeys {credential, name?}`
  -> the new passkey; `GET /auth/passkeys`; `DELETE /auth/passkeys/{passkey}`.
- Sign-in with a passkey, no email asked (discoverable credentials):
  `POST /auth/passkey/options` -> request options; `POST /auth/passkey/verify {credential}`
  -> the same session as an email sign-in (a new cookie, the old session ended). Both refuse
  a foreign Origin and are rate-limited per client address, as the email sign-in is.
The ceremonies are live/accounts/passkey_auth.py; the relying party is this node's public
address (live/web/relying_party.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints
from starlette.responses import Response

from checkout.models import StrictModel
from live.accounts.accounts import Account
from live.web.api import Api, Call, Param, json_response
from live.web.auth_api import start_session
from live.web.problems import Problem
from live.web.relying_party import relying_party
from live.web.session_auth import check_origin, require_session
from live.web.webauthn_json import AssertionIn, AttestationIn

__all__ = ["register"]

PASSKEY = Param("passkey", "path", Annotated[str, StringConstraints(
    min_length=1, max_length=1400, pattern=r"^[A-Za-z0-9_-]+$")])


class PasskeyIn(StrictModel):
    credential: AttestationIn
    name: Annotated[str, StringConstraints(max_length=64)] = ""


class PasskeySignInIn(StrictModel):
    credential: AssertionIn


async def _account(call: Call[Any]) -> Account:
    session = await require_session(call.request)
    account = await call.services.accounts.get(session.account_id)
    if account is None:
        raise Problem(401, "unauthorized", "this account no longer exists")
    return account


def _client_ip(call: Call[Any]) -> str:
    return call.request.client.host if call.request.client else "?"


def register(api: Api) -> None:
    """On the Api whose prefix is /auth."""

    @api.endpoint("POST", "/passkeys/options", summary="Options to add a passkey (WebAuthn)",
                  tag="auth", session=True)
    async def passkey_creation_options(call: Call[Any]) -> Response:
        account = await _account(call)
        options = await call.services.passkeys.registration_options(
            account, relying_party(call.request))
        return json_response(options)

    @api.endpoint("POST", "/passkeys", summary="Add a passkey to the signed-in account",
                  tag="auth", body=PasskeyIn, session=True, status=201)
    async def add_passkey(call: Call[PasskeyIn]) -> Response:
        account = await _account(call)
        passkey = await call.services.passkeys.register(
            account.id, relying_party(call.request),
            call.body.credential.model_dump(mode="json", exclude_none=True), call.body.name)
        return json_response(passkey.public(), 201)

    @api.endpoint("GET", "/passkeys", summary="The signed-in account's passkeys", tag="auth",
                  session=True)
    async def list_passkeys(call: Call[Any]) -> Response:
        account = await _account(call)
        passkeys = await call.services.passkeys.store.list(account.id)
        return json_response({"items": [p.public() for p in passkeys]})

    @api.endpoint("DELETE", "/passkeys/{passkey}", summary="Remove one of the account's passkeys",
                  tag="auth", session=True, status=204, params=(PASSKEY,))
    async def remove_passkey(call: Call[Any]) -> Response:
        account = await _account(call)
        if not await call.services.passkeys.store.remove(account.id, call.param("passkey")):
            raise Problem(404, "not-found", "no such passkey")
        return Response(status_code=204)

    @api.endpoint("POST", "/passkey/options", summary="Options to sign in with a passkey",
                  tag="auth")
    async def passkey_request_options(call: Call[Any]) -> Response:
        check_origin(call.request)
        options = await call.services.passkeys.signin_options(relying_party(call.request),
                                                              _client_ip(call))
        return json_response(options)

    @api.endpoint("POST", "/passkey/verify", summary="Sign in with a passkey", tag="auth",
                  body=PasskeySignInIn)
    async def passkey_verify(call: Call[PasskeySignInIn]) -> Response:
        check_origin(call.request)
        account_id = await call.services.passkeys.sign_in(
            relying_party(call.request),
            call.body.credential.model_dump(mode="json", exclude_none=True), _client_ip(call))
        account = await call.services.accounts.get(account_id)
        if account is None:  # only a hand-edited keyspace gets here
            raise Problem(400, "passkey-rejected", "the passkey could not be verified")
        return await start_session(call, account, new_account=False)
