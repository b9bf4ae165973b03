"""Invitations and teams over HTTP, and the page an invitation link opens.

/api/v1 (a bearer token or a page session, like every API route):
- POST /invitations {email, grant, brand_role?, brand?}: invite (who may: invite_rules.py)
- GET /invitations: the sender's own list; DELETE /invitations/{invitation}: revoke
- GET|DELETE /brands/{brand}/team[/{account}]: a brand's team
- GET|DELETE /creators/{creator}/moderators[/{account}]: a creator's moderators
/auth (the page's session):
- GET /auth/invitations/{token}: what the link invites to
- POST /auth/invitations/accept {token}: take it (signed in with the invited address)
- GET /invite/{token}: the page (overlay/templates/invite.html)
docs/accounts.md has the flow; removing a member uses the same table as inviting one.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Final, Literal

from pydantic import StringConstraints
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from checkout.catalog import BrandIn, CatalogError
from checkout.ids import BrandId, CreatorId, is_valid_id
from checkout.money import Currency
from checkout.models import StrictModel
from live.accounts.accounts import Account, Grant
from live.accounts.auth import Role
from live.accounts.emails import normalise_email
from live.accounts.invitations import (TOKEN_PATTERN, Invitation, InvitationGone,
                                       describe_grant, invitation_mail)
from live.accounts.invite_rules import BrandRole, Inviter, invite_refusal, sender_scope
from live.accounts.mail import MailError
from live.accounts.teams import Member
from live.web.api import Api, Call, Param, json_response
from live.web.relying_party import public_base
from live.web.catalog_api import PAGE, page_params
from live.web.problems import Problem
from live.web.session_auth import require_session
from live.web.stream_api import streams_of
from live.web.team_admin import is_brand_admin, session_account
from overlay.pages import content_security_policy, render

__all__ = ["register", "register_auth", "invite_page_routes", "inviter_of", "INVITE_PAGE"]

INVITE_PAGE: Final = "/invite"
_SENDERS: Final = (Role.OPERATOR, Role.BRAND, Role.CREATOR)
_TokenStr = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)]
_GrantStr = Annotated[str, StringConstraints(min_length=3, max_length=80,
                                              pattern=r"^[a-z]+:[A-Za-z0-9_.:-]{1,64}$")]


class NewBrandIn(StrictModel):
    """A brand made with its first admin's invitation (by an operator)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True,
                                           pattern=r"\S")]
    currency: Currency


class InvitationIn(StrictModel):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    grant: _GrantStr  # brand:<id>, creator:<id>, moderator:<creator id>, operator:<name>
    brand_role: Literal["admin", "member"] | None = None  # for a brand grant, and only then
    brand: NewBrandIn | None = None  # make the grant's brand with the invitation


class AcceptIn(StrictModel):
    token: _TokenStr


# ---------------------------------------------------------------- who is asking


async def inviter_of(call: Call[Any]) -> tuple[Inviter, str]:
    """The request's principal as an inviter, and its account ("" for a bearer token). A
    brand acting through a session is its team's admin only if it joined as one; a brand
    token (minted by the operator) is the brand's own key, so it counts as an admin."""
    principal = call.need_principal()
    account = await session_account(call) or ""
    return Inviter(principal.role, principal.subject,
                   brand_admin=await is_brand_admin(call)), account


def _grant(raw: str) -> Grant:
    try:
        grant = Grant.parse(raw)
    except ValueError:
        raise Problem(422, "unknown-grant", "a grant is role:subject of a known role") from None
    if grant.role is not Role.OPERATOR and not is_valid_id(grant.subject):
        raise Problem(422, "invalid-grant", f"a {grant.role.value} id is 1-64 of [A-Za-z0-9_-]")
    return grant


def _may(inviter: Inviter, grant: Grant) -> None:
    refusal = invite_refusal(inviter, grant)
    if refusal is not None:
        raise Problem(403, "may-not-invite", refusal)


# ---------------------------------------------------------------- what an invitation is for


async def _target_name(call: Call[Any], grant: Grant, new_brand: NewBrandIn | None) -> str:
    """The name an invitation shows: a brand's (which must exist, or be new with `brand`),
    else the subject itself."""
    if grant.role is not Role.BRAND:
        if new_brand is not None:
            raise Problem(422, "brand-not-applicable", "`brand` goes with a brand grant only")
        return grant.subject
    brand = await call.services.catalog.brand(BrandId(grant.subject))
    if new_brand is not None:
        if brand is not None:
            raise Problem(409, "brand-exists", f"brand {grant.subject} already exists; "
                          "invite to it without `brand`")
        return new_brand.name
    if brand is None:
        raise Problem(404, "not-found", f"no brand {grant.subject}; send `brand` "
                      "{name, currency} to make it with the invitation")
    return str(brand["name"])


def _check_brand_role(grant: Grant, brand_role: BrandRole | None) -> None:
    if grant.role is Role.BRAND and brand_role is None:
        raise Problem(422, "brand-role-required", "a brand invitation says admin or member")
    if grant.role is not Role.BRAND and brand_role is not None:
        raise Problem(422, "brand-role-not-applicable", "brand_role goes with a brand grant only")


async def _console(call: Call[Any], grant: Grant) -> str | None:
    """Where the grant is used: the brand dashboard, the creator page, a moderator's host
    console of the creator's newest live or scheduled stream (None when it has none)."""
    match grant.role:
        case Role.BRAND:
            return f"/brand/{grant.subject}"
        case Role.CREATOR:
            return f"/creator/{grant.subject}"
        case Role.MODERATOR:
            streams, _ = await streams_of(call, CreatorId(grant.subject), 0, 20)
            for state in ("live", "scheduled"):
                for stream in streams:
                    if stream["state"] == state:
                        return f"/host/{stream['id']}"
            return None
        case _:
            return "/"


# ---------------------------------------------------------------- teams


def _member_view(member: Member, account: Account | None) -> dict[str, Any]:
    return {"account": member.account_id, "email": account.email if account else None,
            "display_name": account.display_name if account else "",
            "brand_role": member.brand_role, "since_ms": member.since_ms}


async def _team(call: Call[Any], grant: Grant) -> Response:
    inviter, _ = await inviter_of(call)
    members = await call.services.teams.members(grant)
    items = [_member_view(m, await call.services.accounts.get(m.account_id)) for m in members]
    return json_response({"items": items,
                          "can_manage": invite_refusal(inviter, grant) is None})


async def _remove(call: Call[Any], grant: Grant) -> Response:
    """Take the grant back: sessions acting with it fall back to their buyer grant on their
    next request (live/web/session_auth.py checks the grant every time)."""
    inviter, _ = await inviter_of(call)
    refusal = invite_refusal(inviter, grant)  # who may invite to a grant may take it back
    if refusal is not None:
        raise Problem(403, "may-not-remove", refusal)
    account = str(call.param("account"))
    if await call.services.teams.get(grant, account) is None:
        raise Problem(404, "not-found", "no such member")
    await call.services.accounts.revoke(account, grant)  # first: the grant is what authorises
    await call.services.teams.remove(grant, account)
    return Response(status_code=204)


def _brand_of(call: Call[Any]) -> Grant:
    brand = BrandId(call.param("brand"))
    if not call.need_principal().can_act_for_brand(brand):
        raise Problem(403, "forbidden", "a brand sees only its own team")
    return Grant(Role.BRAND, brand)


def _moderated(call: Call[Any]) -> Grant:
    creator = CreatorId(call.param("creator"))
    if not call.need_principal().can_moderate(creator):
        raise Problem(403, "forbidden", "only the creator and its moderators see its moderators")
    return Grant(Role.MODERATOR, creator)


# ---------------------------------------------------------------- /api/v1


def register(api: Api) -> None:
    @api.endpoint("POST", "/invitations", summary="Invite someone by email to a grant",
                  tag="invitations", body=InvitationIn, roles=_SENDERS, status=201)
    async def create_invitation(call: Call[InvitationIn]) -> Response:
        services, body = call.services, call.body
        inviter, account = await inviter_of(call)
        grant = _grant(body.grant)
        _check_brand_role(grant, body.brand_role)
        _may(inviter, grant)
        if body.brand is not None and inviter.role is not Role.OPERATOR:
            raise Problem(403, "may-not-invite", "only an operator makes brands")
        email = normalise_email(body.email)
        name = await _target_name(call, grant, body.brand)
        existing = await services.accounts.find(email)
        if existing is not None and grant in existing.grants:
            raise Problem(409, "already-granted", f"{email} is {grant} already")
        if await services.teams.count(grant) >= services.settings.team_max_members:
            raise Problem(409, "team-full", f"{grant} has {services.settings.team_max_members} "
                          "members, the most there may be (team_max_members)")
        scope = sender_scope(inviter)
        await services.invitations.count_sending(scope, email)
        token, invitation = await services.invitations.create(
            email, grant, body.brand_role, scope=scope, invited_by=f"{inviter.role.value}:"
            f"{inviter.subject}", inviter_account=account)
        link = f"{public_base(call.request)}{INVITE_PAGE}/{token}"
        what = describe_grant(grant, body.brand_role, name)
        try:
            await services.mailer.send(invitation_mail(invitation, link, what))
        except MailError:
            await services.invitations.delete(invitation)
            raise Problem(503, "mail-unavailable", "the invitation could not be mailed; "
                          "try again in a moment", headers={"Retry-After": "30"}) from None
        if body.brand is not None:  # after the mail: a failed mail leaves no brand behind
            try:
                await services.catalog.create_brand(BrandIn(
                    id=BrandId(grant.subject), name=body.brand.name, currency=body.brand.currency))
            except CatalogError:
                await services.invitations.revoke(invitation.id)  # lost a race for the id
                raise
        return json_response({**invitation.public(_now_ms()), "what": what, "url": link}, 201)

    @api.endpoint("GET", "/invitations", summary="The invitations the caller's side sent",
                  tag="invitations", roles=_SENDERS, params=PAGE)
    async def list_invitations(call: Call[Any]) -> Response:
        inviter, _ = await inviter_of(call)
        cursor, limit = page_params(call)
        items, next_cursor = await call.services.invitations.sent(
            sender_scope(inviter), cursor=cursor, limit=limit)
        now = _now_ms()
        return json_response({"items": [i.public(now) for i in items],
                              "next_cursor": next_cursor})

    @api.endpoint("DELETE", "/invitations/{invitation}",
                  summary="Revoke an invitation nobody has accepted", tag="invitations",
                  roles=_SENDERS, status=204)
    async def revoke_invitation(call: Call[Any]) -> Response:
        inviter, _ = await inviter_of(call)
        invitation = await call.services.invitations.get(str(call.param("invitation")))
        if invitation is None or (inviter.role is not Role.OPERATOR
                                  and invitation.scope != sender_scope(inviter)):
            raise Problem(404, "not-found", "no such invitation")  # another's: not revealed
        _may(inviter, invitation.grant)
        outcome = await call.services.invitations.revoke(invitation.id)
        if outcome == "accepted":
            raise Problem(409, "invitation-accepted", "it was accepted; remove the member instead")
        if outcome == "unknown":
            raise Problem(404, "not-found", "no such invitation")
        return Response(status_code=204)

    @api.endpoint("GET", "/brands/{brand}/team", summary="A brand's team: admins and members",
                  tag="invitations", roles=(Role.BRAND, Role.OPERATOR))
    async def brand_team(call: Call[Any]) -> Response:
        grant = _brand_of(call)
        if await call.services.catalog.brand(BrandId(grant.subject)) is None:
            raise Problem(404, "not-found", "no such brand")
        return await _team(call, grant)

    @api.endpoint("DELETE", "/brands/{brand}/team/{account}",
                  summary="Remove a member from a brand's team (revokes the grant)",
                  tag="invitations", roles=(Role.BRAND, Role.OPERATOR), status=204)
    async def remove_brand_member(call: Call[Any]) -> Response:
        return await _remove(call, _brand_of(call))

    @api.endpoint("GET", "/creators/{creator}/moderators", summary="A creator's moderators",
                  tag="invitations", roles=(Role.CREATOR, Role.OPERATOR, Role.MODERATOR))
    async def moderators(call: Call[Any]) -> Response:
        return await _team(call, _moderated(call))

    @api.endpoint("DELETE", "/creators/{creator}/moderators/{account}",
                  summary="Remove a moderator (revokes the grant)", tag="invitations",
                  roles=(Role.CREATOR, Role.OPERATOR), status=204)
    async def remove_moderator(call: Call[Any]) -> Response:
        return await _remove(call, _moderated(call))


# ---------------------------------------------------------------- /auth


def _gone_unless_open(invitation: Invitation, account_id: str | None) -> None:
    """410 for an invitation that is over, unless the caller's own claim is unfinished."""
    if invitation.state == "claimed" and invitation.account == account_id:
        return
    match invitation.state_at(_now_ms()):
        case "accepted":
            raise InvitationGone("used")
        case "revoked":
            raise InvitationGone("revoked")
        case "expired":
            raise InvitationGone("expired")


def register_auth(api: Api) -> None:
    """On the Api whose prefix is /auth (live/web/auth_api.py)."""

    @api.endpoint("GET", "/invitations/{token}", summary="What an invitation link invites to",
                  tag="auth", params=(Param("token", "path", _TokenStr),))
    async def get_invitation(call: Call[Any]) -> Response:
        invitation = await call.services.invitations.find(str(call.param("token")))
        if invitation is None:
            raise Problem(404, "not-found", "no such invitation; check the link")
        _gone_unless_open(invitation, await session_account(call))
        name = await _target_name(call, invitation.grant, None) \
            if invitation.grant.role is Role.BRAND else invitation.grant.subject
        return json_response({
            "email": invitation.email, "grant": str(invitation.grant),
            "brand_role": invitation.brand_role, "name": name,
            "what": describe_grant(invitation.grant, invitation.brand_role, name),
            "invited_by": invitation.invited_by, "expires_ms": invitation.expires_ms})

    @api.endpoint("POST", "/invitations/accept",
                  summary="Accept an invitation, signed in with the address it was sent to",
                  tag="auth", body=AcceptIn)
    async def accept_invitation(call: Call[AcceptIn]) -> Response:
        services = call.services
        session = await require_session(call.request)
        account = await services.accounts.get(session.account_id)
        if account is None:
            raise Problem(401, "unauthorized", "this account no longer exists")
        invitation = await services.invitations.find(call.body.token)
        if invitation is None:
            raise Problem(404, "not-found", "no such invitation; check the link")
        _gone_unless_open(invitation, account.id)
        if invitation.email != account.email:
            raise Problem(403, "invitation-not-yours", "this invitation was sent to another "
                          "address; sign in with that one to accept it")
        grant = invitation.grant
        if (grant not in account.grants and await services.teams.count(grant)
                >= services.settings.team_max_members):
            raise Problem(409, "team-full", f"{grant} has the most members there may be")
        if not await services.invitations.claim(call.body.token, account.id):
            raise Problem(404, "not-found", "no such invitation; check the link")
        # The team entry first, then the grant (live/accounts/teams.py says why).
        await services.teams.add(grant, Member(account.id, invitation.brand_role, _now_ms(),
                                               invitation.id))
        await services.accounts.grant(account.id, grant)
        await services.invitations.finish(invitation.id)
        updated = await services.accounts.get(account.id)
        return json_response({"grant": str(grant), "brand_role": invitation.brand_role,
                              "console": await _console(call, grant),
                              "account": (updated or account).public()})


async def invite_page(request: Request) -> Response:
    """The page of an invitation link: what it is for, sign in, Accept (its script)."""
    return HTMLResponse(render("invite", "", ""), headers={
        "Content-Security-Policy": content_security_policy(""),
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


def invite_page_routes() -> list[Route]:
    return [Route(INVITE_PAGE + "/{token}", invite_page, methods=["GET"])]


def _now_ms() -> int:
    return int(time.time() * 1000)
