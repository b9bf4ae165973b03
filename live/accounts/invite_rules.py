"""Who may invite whom to what: one table, no I/O (tests/live/test_invite_rules.py checks it
cell by cell; docs/accounts.md prints it).

An inviter is the principal a request acts as, plus, for a brand, whether it is an admin of
its team (a brand token minted by the operator counts as one: it is the brand's own key).
A grant is what the invitation adds to the account that accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from live.accounts.accounts import Grant
from live.accounts.auth import Role

__all__ = ["Reach", "RULES", "BrandRole", "Inviter", "invite_refusal", "sender_scope"]

BrandRole = Literal["admin", "member"]


class Reach(Enum):
    """How far an inviter's right to hand out a grant goes."""

    ANY = "any subject"
    OWN = "its own subject only"
    OWN_AS_ADMIN = "its own subject only, as an admin of its team"


# (the inviter's role, the role of the grant) -> reach; a pair not listed is refused.
RULES: Final[dict[tuple[Role, Role], Reach]] = {
    (Role.OPERATOR, Role.OPERATOR): Reach.ANY,
    (Role.OPERATOR, Role.BRAND): Reach.ANY,
    (Role.OPERATOR, Role.CREATOR): Reach.ANY,
    (Role.OPERATOR, Role.MODERATOR): Reach.ANY,
    (Role.BRAND, Role.BRAND): Reach.OWN_AS_ADMIN,  # its team: admins and members
    (Role.CREATOR, Role.MODERATOR): Reach.OWN,  # its moderators
}


@dataclass(frozen=True, slots=True)
class Inviter:
    role: Role
    subject: str
    brand_admin: bool = False  # only read for a brand: may it manage its team?


def invite_refusal(inviter: Inviter, grant: Grant) -> str | None:
    """None if `inviter` may invite someone to `grant`; else why not, in words."""
    reach = RULES.get((inviter.role, grant.role))
    if reach is None:
        return f"a {inviter.role.value} cannot invite anyone as {grant.role.value}"
    if reach is Reach.ANY:
        return None
    if grant.subject != inviter.subject:
        return f"a {inviter.role.value} invites only to its own {inviter.subject}"
    if reach is Reach.OWN_AS_ADMIN and not inviter.brand_admin:
        return "only an admin of the brand's team invites or removes members"
    return None


def sender_scope(inviter: Inviter) -> str:
    """Whose list an invitation goes into: the operators share one, a brand's admins and a
    creator have theirs."""
    return "operator" if inviter.role is Role.OPERATOR else f"{inviter.role.value}:{inviter.subject}"
