"""A brand's API keys over HTTP (live/accounts/api_keys.py has the rules):
- `POST /api/v1/brands/{brand}/keys {name, scopes}`: 201 with the key itself, shown once.
- `GET /api/v1/brands/{brand}/keys`: the keys, never their secrets, with their last use, and
  `can_manage` (a team member who is not an admin gets no keys and `false`).
- `DELETE /api/v1/brands/{brand}/keys/{key}`: revoked at once (204).
The brand's team admins (a session), the brand's token and the operators manage them; a
key never manages keys, and a team member who is not an admin cannot.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints
from starlette.responses import Response

from checkout.ids import BrandId
from checkout.models import StrictModel
from live.accounts.api_keys import BRAND_KEY_SCOPES
from live.accounts.auth import Role
from live.web.api import Api, Call, json_response
from live.web.invite_api import inviter_of
from live.web.problems import Problem

__all__ = ["register"]

Scope = Annotated[str, StringConstraints(max_length=40)]


class KeyIn(StrictModel):
    # No surrounding spaces (a name is what a person reads back in the list).
    name: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^\S(.*\S)?$")]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(BRAND_KEY_SCOPES))]


async def _access(call: Call[Any]) -> tuple[str, bool]:
    """Who asks (an account, or the token's role:subject), and whether they manage the
    brand's keys: its team's admins, its token, operators; a member only learns they don't."""
    brand = call.param("brand")
    principal = call.need_principal()
    if principal.scopes is not None:
        raise Problem(403, "forbidden", "an API key cannot manage API keys")
    if not principal.can_act_for_brand(brand):
        raise Problem(404, "not-found", "no such brand")
    if await call.services.catalog.brand(BrandId(brand)) is None:
        raise Problem(404, "not-found", "no such brand")
    inviter, account = await inviter_of(call)
    manages = principal.role is not Role.BRAND or inviter.brand_admin
    return account or f"{principal.role.value}:{principal.subject}", manages


async def _manager(call: Call[Any]) -> str:
    """Who makes the change, once allowed (403 for a team member who is not an admin)."""
    by, manages = await _access(call)
    if not manages:
        raise Problem(403, "forbidden", "only an admin of the brand's team manages its API keys")
    return by


def register(api: Api) -> None:
    managers = (Role.BRAND, Role.OPERATOR)

    @api.endpoint("POST", "/brands/{brand}/keys", summary="Make an API key (shown once)",
                  tag="keys", body=KeyIn, roles=managers, status=201)
    async def create_key(call: Call[KeyIn]) -> Response:
        by = await _manager(call)
        scopes = frozenset(call.body.scopes)
        if not scopes <= BRAND_KEY_SCOPES:
            raise Problem(422, "unknown-scope", "scopes are some of "
                          + ", ".join(sorted(BRAND_KEY_SCOPES)),
                          allowed=sorted(BRAND_KEY_SCOPES))
        try:
            secret, key = await call.services.api_keys.create(call.param("brand"),
                                                              call.body.name, scopes, by)
        except OverflowError as exc:
            raise Problem(409, "too-many-api-keys", str(exc)) from None
        return json_response({**key.public(), "key": secret}, 201, {"Cache-Control": "no-store"})

    @api.endpoint("GET", "/brands/{brand}/keys", summary="The brand's API keys (no secrets)",
                  tag="keys", roles=managers)
    async def list_keys(call: Call[Any]) -> Response:
        _, manages = await _access(call)
        keys = await call.services.api_keys.list(call.param("brand")) if manages else []
        return json_response({"items": [k.public() for k in keys], "can_manage": manages})

    @api.endpoint("DELETE", "/brands/{brand}/keys/{key}", summary="Revoke an API key",
                  tag="keys", roles=managers, status=204)
    async def revoke_key(call: Call[Any]) -> Response:
        await _manager(call)
        if not await call.services.api_keys.revoke(call.param("brand"), call.param("key")):
            raise Problem(404, "not-found", "no such API key")
        return Response(status_code=204)
