"""Who is a brand's admin: the one answer the invitations, the after-sale and the affiliate
program endpoints ask (a member of the team may look, only an admin gives money back, runs
the program or invites).

A brand token (minted by the operator) and a brand's API key are the brand's own keys, so
they count as an admin (a key is bounded by its scopes instead); a page session is an admin
only if its account joined the team as one.
"""

from __future__ import annotations

from typing import Any

from live.accounts.accounts import Grant
from live.accounts.auth import Role
from live.web.api import Call
from live.web.session_auth import session_of

__all__ = ["session_account", "is_brand_admin"]


async def session_account(call: Call[Any]) -> str | None:
    """The account behind the request when a page session (not a bearer token) made it."""
    if "authorization" in call.request.headers:
        return None
    session = await session_of(call.request)
    return session.account_id if session is not None else None


async def is_brand_admin(call: Call[Any]) -> bool:
    """Whether a brand principal acts as its brand's admin (False for other roles)."""
    principal = call.need_principal()
    if principal.role is not Role.BRAND:
        return False
    if "authorization" in call.request.headers:
        return True
    account = await session_account(call)
    if account is None:
        return False
    member = await call.services.teams.get(Grant(Role.BRAND, principal.subject), account)
    return member is not None and member.brand_role == "admin"
