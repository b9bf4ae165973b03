"""The who-may-invite table (live/accounts/invite_rules.py), cell by cell: every inviter role,
as a brand admin or member, against every grant role, for its own subject and another's.
The expected cells are written out here, not derived from the table."""

from __future__ import annotations

import itertools

from live.accounts.accounts import Grant
from live.accounts.auth import Role
from live.accounts.invite_rules import RULES, Inviter, Reach, invite_refusal, sender_scope

O, B, C, U, M = Role.OPERATOR, Role.BRAND, Role.CREATOR, Role.BUYER, Role.MODERATOR

# (inviter role, brand admin?, grant role, same subject?) that may invite; every other cell
# is refused.
ALLOWED = {
    *((O, admin, granted, same) for admin in (False, True) for granted in (O, B, C, M)
      for same in (False, True)),
    (B, True, B, True),  # a brand's admin, to its own team
    (C, False, M, True), (C, True, M, True),  # a creator, its own moderators
}


def test_every_cell_of_the_table() -> None:
    checked = 0
    for inviter, admin, granted, same in itertools.product(Role, (False, True), Role,
                                                           (False, True)):
        who = Inviter(inviter, "x", brand_admin=admin)
        grant = Grant(granted, "x" if same else "y")
        refusal = invite_refusal(who, grant)
        expected = (inviter, admin, granted, same) in ALLOWED
        assert (refusal is None) == expected, (inviter, admin, granted, same, refusal)
        if refusal is not None:
            assert refusal and refusal[0].islower(), refusal  # words for a problem's detail
        checked += 1
    assert checked == len(Role) ** 2 * 4 == 100


def test_the_table_names_no_buyer_grant_and_no_inviting_moderator_or_buyer() -> None:
    assert all(granted is not U for _, granted in RULES)
    assert all(inviter not in (U, M) for inviter, _ in RULES)
    assert RULES[(B, B)] is Reach.OWN_AS_ADMIN and RULES[(C, M)] is Reach.OWN


def test_the_refusals_say_why() -> None:
    assert invite_refusal(Inviter(B, "acme", brand_admin=False), Grant(B, "acme")) == \
        "only an admin of the brand's team invites or removes members"
    assert invite_refusal(Inviter(B, "acme", brand_admin=True), Grant(B, "bravo")) == \
        "a brand invites only to its own acme"
    assert invite_refusal(Inviter(M, "cleo"), Grant(M, "cleo")) == \
        "a moderator cannot invite anyone as moderator"


def test_sender_scopes() -> None:
    assert sender_scope(Inviter(O, "ops")) == sender_scope(Inviter(O, "cli")) == "operator"
    assert sender_scope(Inviter(B, "acme", brand_admin=True)) == "brand:acme"
    assert sender_scope(Inviter(C, "cleo")) == "creator:cleo"
