"""Invitations and teams against a real node, with a real SMTP server reading the mail and
the real Valkey: the mailed single-use link, acceptance bound to the invited address, the
410s of a used, expired or revoked link, who may invite and remove (as a bearer token and as
a page session), removal falling the member's session back, the race of an accept and a
revoke, a crash between claim and grant, the rates, the team cap and a mail server that is
down."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from conftest import Live
from inbox import Inbox, Received, smtp  # noqa: F401 - the fixture
from shop import db_state, make_brand, make_live_stream, make_product
from test_bad_input import assert_problem, state_diff
from test_sessions import Person, people  # noqa: F401 - the fixture

from live.accounts.accounts import Grant
from live.accounts.auth import Role
from live.accounts.invitations import InvitationGone
from live.accounts.keys import invitation_key


@pytest.fixture
def extra_settings() -> dict[str, Any]:
    return {}


@pytest.fixture
def node_settings(smtp: Inbox, extra_settings: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    return {"smtp_url": smtp.url, **extra_settings}


def link_of(mail: Received) -> str:
    match = re.search(r"(https?://\S+/invite/(inv_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}))", mail.text)
    assert match, mail.text
    return match.group(1)


def token_of(mail: Received) -> str:
    return link_of(mail).rsplit("/", 1)[1]


async def invite(live: Live, headers: dict[str, str], email: str, grant: str,
                 **extra: Any) -> httpx.Response:
    return await live.http.post("/api/v1/invitations", headers=headers,
                                json={"email": email, "grant": grant, **extra})


async def invited(live: Live, smtp: Inbox, email: str, grant: str,  # noqa: F811
                  headers: dict[str, str] | None = None, **extra: Any) -> str:
    """Invite `email` as an operator (or `headers`); the token from the mail."""
    r = await invite(live, headers or live.auth("operator", "ops"), email, grant, **extra)
    assert r.status_code == 201, r.text
    return token_of(await smtp.next_mail(email))


async def accept(person: Person, token: str) -> httpx.Response:
    return await person.http.post("/auth/invitations/accept", json={"token": token},
                                  headers=person.csrf)


async def act(person: Person, grant: str) -> None:
    r = await person.http.post("/auth/act", json={"grant": grant}, headers=person.csrf)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- the flow


async def test_an_operator_invites_a_brand_admin_who_accepts(live: Live, smtp: Inbox,  # noqa: F811
                                                             people: Any,  # noqa: F811
                                                             rclient: redis.Redis) -> None:
    await make_brand(live)
    r = await invite(live, live.auth("operator", "ops"), " Ann@Example.COM ", "brand:acme",
                     brand_role="admin")
    assert r.status_code == 201, r.text
    sent = r.json()
    assert sent["email"] == "Ann@example.com" and sent["grant"] == "brand:acme"
    assert sent["state"] == "pending" and sent["invited_by"] == "operator:ops"
    assert sent["what"] == "an admin of the brand Acme"
    assert sent["expires_ms"] - sent["created_ms"] == 7 * 24 * 3600 * 1000
    mail = await smtp.next_mail("Ann@example.com")
    assert mail.message["Subject"] == "You're invited to livecart as an admin of the brand Acme"
    assert link_of(mail) == sent["url"] and sent["url"].startswith(live.url + "/invite/inv_")
    token = token_of(mail)
    # Valkey keeps the secret's hash, never the token.
    assert token.split(".")[1] not in repr(await db_state(rclient))

    # The link says what it is for, signed out too.
    r = await live.http.get(f"/auth/invitations/{token}")
    assert r.status_code == 200, r.text
    assert r.json() == {"email": "Ann@example.com", "grant": "brand:acme", "brand_role": "admin",
                        "name": "Acme", "what": "an admin of the brand Acme",
                        "invited_by": "operator:ops", "expires_ms": sent["expires_ms"]}

    # Accepting needs a session, of the invited address.
    r = await live.http.post("/auth/invitations/accept", json={"token": token})
    assert_problem(r, 401, "unauthorized")
    ann = await people("ann@example.com")  # another address (the local part keeps its case)
    assert_problem(await accept(ann, token), 403, "invitation-not-yours")
    ann = await people("Ann@example.com")
    r = await accept(ann, token)
    assert r.status_code == 200, r.text
    assert r.json()["grant"] == "brand:acme" and r.json()["console"] == "/brand/acme"
    assert "brand:acme" in r.json()["account"]["grants"]
    await act(ann, "brand:acme")
    assert (await ann.http.get("/api/v1/brands/acme/report")).status_code == 200

    # Used: 410 for everyone, the link's page included.
    assert_problem(await accept(ann, token), 410, "invitation-used")
    assert_problem(await live.http.get(f"/auth/invitations/{token}"), 410, "invitation-used")
    r = await live.http.get("/api/v1/brands/acme/team", headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    (member,) = r.json()["items"]
    assert member["account"] == ann.id and member["email"] == "Ann@example.com"
    assert member["brand_role"] == "admin" and r.json()["can_manage"] is True
    r = await live.http.get("/api/v1/invitations", headers=live.auth("operator", "other"))
    (listed,) = r.json()["items"]
    assert listed["state"] == "accepted" and listed["accepted_by"] == ann.id
    assert "url" not in listed


async def test_a_brand_made_with_its_first_invitation(live: Live, smtp: Inbox) -> None:  # noqa: F811
    ops = live.auth("operator", "ops")
    r = await invite(live, ops, "founder@example.com", "brand:newco", brand_role="admin")
    assert_problem(r, 404, "not-found")
    new = {"name": "NewCo", "currency": "EUR"}
    r = await invite(live, ops, "founder@example.com", "brand:newco", brand_role="admin",
                     brand=new)
    assert r.status_code == 201, r.text
    assert r.json()["what"] == "an admin of the brand NewCo"
    assert (await live.http.get("/api/v1/brands/newco")).json() == {
        "id": "newco", "name": "NewCo", "currency": "EUR"}
    r = await invite(live, ops, "second@example.com", "brand:newco", brand_role="admin",
                     brand=new)
    assert_problem(r, 409, "brand-exists")
    # Only an operator makes brands, and only with a brand grant.
    r = await invite(live, live.auth("brand", "newco"), "x@example.com", "brand:newco",
                     brand_role="member", brand={"name": "Other", "currency": "USD"})
    assert_problem(r, 403, "may-not-invite")
    r = await invite(live, ops, "x@example.com", "creator:zed", brand=new)
    assert_problem(r, 422, "brand-not-applicable")


async def test_a_creator_appoints_a_moderator_who_reads_but_does_not_run_its_streams(
        live: Live, smtp: Inbox, people: Any) -> None:  # noqa: F811
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    cleo = await people("cleo@example.com")
    assert (await accept(cleo, await invited(live, smtp, "cleo@example.com",
                                             "creator:cleo"))).status_code == 200
    await act(cleo, "creator:cleo")
    # The creator invites from its session.
    r = await cleo.http.post("/api/v1/invitations", headers=cleo.csrf,
                             json={"email": "mo@example.com", "grant": "moderator:cleo"})
    assert r.status_code == 201, r.text
    assert r.json()["what"] == "a moderator of cleo's streams"
    token = token_of(await smtp.next_mail("mo@example.com"))
    mo = await people("mo@example.com")
    r = await accept(mo, token)
    assert r.status_code == 200, r.text
    assert r.json()["console"] == f"/host/{stream['id']}"  # cleo's live stream
    await act(mo, "moderator:cleo")
    for path in (f"/api/v1/streams/{stream['id']}/video", "/api/v1/creators/cleo/streams",
                 "/api/v1/creators/cleo/moderators"):
        assert (await mo.http.get(path)).status_code == 200, path
    streams = (await mo.http.get("/api/v1/creators/cleo/streams")).json()["items"]
    assert [s["id"] for s in streams] == [stream["id"]]
    r = await mo.http.get("/api/v1/creators/cleo/moderators")
    assert [m["email"] for m in r.json()["items"]] == ["mo@example.com"]
    assert r.json()["can_manage"] is False
    s = f"/api/v1/streams/{stream['id']}"
    for method, path, body in (("POST", f"{s}/pins", {"product_id": product["id"]}),
                               ("POST", f"{s}/end", None), ("PUT", f"{s}/lineup", {"lineup": []}),
                               ("GET", "/api/v1/creators/cleo/earnings", None),
                               ("POST", "/api/v1/invitations",
                                {"email": "x@example.com", "grant": "moderator:cleo"})):
        r = await mo.http.request(method, path, json=body, headers=mo.csrf)
        assert_problem(r, 403, "forbidden")
    # Another creator's streams are not its to read.
    dana = await make_live_stream(live, [product["id"]], creator="dana")
    assert_problem(await mo.http.get(f"/api/v1/streams/{dana['id']}/video"), 403, "forbidden")
    assert_problem(await mo.http.get("/api/v1/creators/dana/streams"), 403, "forbidden")
    # The creator lists and removes it; its session falls back to its buyer grant at once.
    r = await cleo.http.get("/api/v1/creators/cleo/moderators")
    assert r.json()["can_manage"] is True
    r = await cleo.http.delete(f"/api/v1/creators/cleo/moderators/{mo.id}", headers=cleo.csrf)
    assert r.status_code == 204, r.text
    assert (await mo.http.get("/auth/session")).json()["active"] == f"buyer:{mo.id}"
    assert_problem(await mo.http.get("/api/v1/creators/cleo/streams"), 403, "forbidden")
    r = await cleo.http.delete(f"/api/v1/creators/cleo/moderators/{mo.id}", headers=cleo.csrf)
    assert_problem(r, 404, "not-found")


# ---------------------------------------------------------------- who may


async def test_brand_admins_manage_their_team_members_do_not(live: Live, smtp: Inbox,  # noqa: F811
                                                             people: Any,  # noqa: F811
                                                             rclient: redis.Redis) -> None:
    await make_brand(live)
    await make_brand(live, "bravo")
    boss = await people("boss@example.com")
    await accept(boss, await invited(live, smtp, "boss@example.com", "brand:acme",
                                     brand_role="admin"))
    await act(boss, "brand:acme")
    r = await boss.http.post("/api/v1/invitations", headers=boss.csrf, json={
        "email": "mem@example.com", "grant": "brand:acme", "brand_role": "member"})
    assert r.status_code == 201, r.text
    token = token_of(await smtp.next_mail("mem@example.com"))
    mem = await people("mem@example.com")
    r = await accept(mem, token)
    assert r.status_code == 200 and r.json()["brand_role"] == "member"
    await act(mem, "brand:acme")

    # A brand admin cannot invite into another brand, nor as anything but its brand.
    for grant in ("brand:bravo", "creator:acme", "moderator:acme", "operator:acme"):
        body = {"email": "x@example.com", "grant": grant}
        if grant.startswith("brand:"):
            body["brand_role"] = "admin"
        r = await boss.http.post("/api/v1/invitations", headers=boss.csrf, json=body)
        assert_problem(r, 403, "may-not-invite")
    # A member can neither invite, nor remove, nor revoke.
    r = await mem.http.post("/api/v1/invitations", headers=mem.csrf, json={
        "email": "x@example.com", "grant": "brand:acme", "brand_role": "member"})
    assert_problem(r, 403, "may-not-invite")
    r = await mem.http.delete(f"/api/v1/brands/acme/team/{boss.id}", headers=mem.csrf)
    assert_problem(r, 403, "may-not-remove")
    pending = await boss.http.post("/api/v1/invitations", headers=boss.csrf, json={
        "email": "later@example.com", "grant": "brand:acme", "brand_role": "member"})
    assert pending.status_code == 201, pending.text
    before = await db_state(rclient)
    r = await mem.http.delete(f"/api/v1/invitations/{pending.json()['id']}", headers=mem.csrf)
    assert_problem(r, 403, "may-not-invite")
    # Another brand sees neither acme's team nor its invitations.
    bravo = live.auth("brand", "bravo")
    assert_problem(await live.http.get("/api/v1/brands/acme/team", headers=bravo), 403)
    r = await live.http.delete(f"/api/v1/invitations/{pending.json()['id']}", headers=bravo)
    assert_problem(r, 404, "not-found")
    assert (await live.http.get("/api/v1/invitations", headers=bravo)).json()["items"] == []
    assert state_diff(before, await db_state(rclient)) == []
    # The member sees the team, read-only.
    r = await mem.http.get("/api/v1/brands/acme/team")
    assert r.json()["can_manage"] is False
    assert [(m["email"], m["brand_role"]) for m in r.json()["items"]] == [
        ("boss@example.com", "admin"), ("mem@example.com", "member")]
    # The admin's list is the brand's; the operators' is theirs.
    r = await boss.http.get("/api/v1/invitations")
    assert [(i["email"], i["state"]) for i in r.json()["items"]] == [
        ("later@example.com", "pending"), ("mem@example.com", "accepted")]
    r = await live.http.get("/api/v1/invitations", headers=live.auth("operator", "ops"))
    assert [i["email"] for i in r.json()["items"]] == ["boss@example.com"]

    # Removing the member takes the grant back: its session falls back on the next request.
    r = await boss.http.delete(f"/api/v1/brands/acme/team/{mem.id}", headers=boss.csrf)
    assert r.status_code == 204, r.text
    assert_problem(await mem.http.get("/api/v1/brands/acme/report"), 403, "forbidden")
    assert (await mem.http.get("/auth/session")).json()["active"] == f"buyer:{mem.id}"
    r = await mem.http.post("/auth/act", json={"grant": "brand:acme"}, headers=mem.csrf)
    assert_problem(r, 403, "grant-not-held")
    # An operator (or a brand token, the brand's own key) manages any team.
    r = await live.http.delete(f"/api/v1/brands/acme/team/{boss.id}",
                               headers=live.auth("operator", "ops"))
    assert r.status_code == 204


async def test_bad_invitations_are_4xx_problems(live: Live, smtp: Inbox,  # noqa: F811
                                                people: Any,  # noqa: F811
                                                rclient: redis.Redis) -> None:
    await make_brand(live)
    ops = live.auth("operator", "ops")
    holder = await people("holder@example.com")
    await accept(holder, await invited(live, smtp, "holder@example.com", "creator:cleo"))
    before = await db_state(rclient)
    for body, status, kind in (
            ({"email": "a@example.com", "grant": "wizard:x"}, 422, "unknown-grant"),
            ({"email": "a@example.com", "grant": "brand:a.b"}, 422, "invalid-grant"),
            ({"email": "a@example.com", "grant": "brand:acme"}, 422, "brand-role-required"),
            ({"email": "a@example.com", "grant": "creator:x", "brand_role": "admin"}, 422,
             "brand-role-not-applicable"),
            ({"email": "a@example.com", "grant": "brand:acme", "brand_role": "owner"}, 422,
             "validation-error"),
            ({"email": "not an address", "grant": "creator:x"}, 422, "invalid-email"),
            ({"email": "a@example.com", "grant": "buyer:u_" + "0" * 32}, 403, "may-not-invite"),
            ({"email": "a@example.com", "grant": "brand:nope", "brand_role": "admin"}, 404,
             "not-found"),
            ({"email": "holder@example.com", "grant": "creator:cleo"}, 409, "already-granted"),
            ({"email": "a@example.com", "grant": "creator:x", "extra": 1}, 422,
             "validation-error")):
        assert_problem(await invite(live, ops, **body), status, kind)
    for who, grant in (("buyer", "bob"), ("moderator", "cleo")):
        r = await invite(live, live.auth(who, grant), "a@example.com", "moderator:cleo")
        assert_problem(r, 403, "forbidden")
    for token in ("nope", "inv_" + "0" * 24 + ".short", "inv_" + "0" * 24 + "." + "a" * 43):
        assert_problem(await live.http.get(f"/auth/invitations/{token}"), 404, "not-found")
        r = await holder.http.post("/auth/invitations/accept", json={"token": token},
                                   headers=holder.csrf)
        assert_problem(r, 422 if len(token) < 40 else 404)
    for bad in ("nope", "inv_" + "0" * 24):
        r = await live.http.delete(f"/api/v1/invitations/{bad}", headers=ops)
        assert_problem(r, 404, "not-found")
    assert state_diff(before, await db_state(rclient)) == []


# ---------------------------------------------------------------- 410s, races, crashes


async def test_expired_and_revoked_links_are_410(live: Live, smtp: Inbox,  # noqa: F811
                                                 people: Any,  # noqa: F811
                                                 rclient: redis.Redis) -> None:
    ops = live.auth("operator", "ops")
    ann = await people("ann@example.com")
    expired = await invited(live, smtp, "ann@example.com", "creator:cleo")
    await rclient.hset(invitation_key(expired.split(".")[0]), "expires_ms", 1)  # its time is up
    assert_problem(await accept(ann, expired), 410, "invitation-expired")
    assert_problem(await live.http.get(f"/auth/invitations/{expired}"), 410, "invitation-expired")
    revoked = await invited(live, smtp, "ann@example.com", "creator:cleo")
    invitation_id = revoked.split(".")[0]
    r = await live.http.delete(f"/api/v1/invitations/{invitation_id}", headers=ops)
    assert r.status_code == 204, r.text
    assert (await live.http.delete(f"/api/v1/invitations/{invitation_id}",
                                   headers=ops)).status_code == 204  # once is enough
    assert_problem(await accept(ann, revoked), 410, "invitation-revoked")
    assert_problem(await live.http.get(f"/auth/invitations/{revoked}"), 410, "invitation-revoked")
    states = {i["id"]: i["state"] for i in (await live.http.get(
        "/api/v1/invitations", headers=ops)).json()["items"]}
    assert states == {expired.split(".")[0]: "expired", invitation_id: "revoked"}
    # The right secret matters, not only the id.
    forged = invitation_id + "." + "A" * 43
    assert_problem(await live.http.get(f"/auth/invitations/{forged}"), 404, "not-found")
    # Accepted, it cannot be revoked: the member is removed instead.
    good = await invited(live, smtp, "ann@example.com", "creator:cleo")
    assert (await accept(ann, good)).status_code == 200
    r = await live.http.delete(f"/api/v1/invitations/{good.split('.')[0]}", headers=ops)
    assert_problem(r, 409, "invitation-accepted")
    assert "creator:cleo" in (await ann.http.get("/auth/session")).json()["account"]["grants"]


async def test_an_accept_racing_a_revoke_has_one_winner(live: Live, smtp: Inbox,  # noqa: F811
                                                        people: Any) -> None:  # noqa: F811
    ops = live.auth("operator", "ops")
    ann = await people("ann@example.com")
    outcomes = set()
    for _ in range(4):  # an address gets at most 5 invitations an hour
        token = await invited(live, smtp, "ann@example.com", "moderator:cleo")
        accepted, revoked = await asyncio.gather(
            accept(ann, token),
            live.http.delete(f"/api/v1/invitations/{token.split('.')[0]}", headers=ops))
        grants = (await ann.http.get("/auth/session")).json()["account"]["grants"]
        if accepted.status_code == 200:
            assert_problem(revoked, 409, "invitation-accepted")
            assert "moderator:cleo" in grants
            r = await live.http.delete(f"/api/v1/creators/cleo/moderators/{ann.id}", headers=ops)
            assert r.status_code == 204
        else:
            assert_problem(accepted, 410, "invitation-revoked")
            assert revoked.status_code == 204 and "moderator:cleo" not in grants
        outcomes.add(accepted.status_code)
    assert outcomes <= {200, 410}


async def test_a_claim_cut_short_is_finished_by_the_same_account_only(
        live: Live, smtp: Inbox, people: Any) -> None:  # noqa: F811
    """A node that died between the claim and the grant: the invitee accepting again finishes
    it; nobody else can take it meanwhile."""
    ann = await people("ann@example.com")
    token = await invited(live, smtp, "ann@example.com", "brand:acme", brand_role="member",
                          brand={"name": "Acme", "currency": "USD"})
    assert await live.services.invitations.claim(token, ann.id)  # ... and the node died here
    assert not await live.services.accounts.has_grant(ann.id, Grant(Role.BRAND, "acme"))
    assert_problem(await live.http.get(f"/auth/invitations/{token}"), 410, "invitation-used")
    r = await accept(ann, token)
    assert r.status_code == 200, r.text
    assert await live.services.accounts.has_grant(ann.id, Grant(Role.BRAND, "acme"))
    assert_problem(await accept(ann, token), 410, "invitation-used")


# ---------------------------------------------------------------- limits and the mail server


@pytest.mark.parametrize("extra_settings", [{"invite_per_email": 2, "invite_per_scope": 4,
                                             "team_max_members": 1}])
async def test_invitation_rates_and_the_team_cap(live: Live, smtp: Inbox,  # noqa: F811
                                                 people: Any) -> None:  # noqa: F811
    ops = live.auth("operator", "ops")
    for _ in range(2):
        assert (await invite(live, ops, "a@example.com", "creator:x")).status_code == 201
    r = await invite(live, ops, "a@example.com", "creator:x")  # the third to one address
    assert_problem(r, 429, "too-many-requests")
    assert int(r.headers["retry-after"]) > 0
    assert (await invite(live, ops, "b@example.com", "creator:x")).status_code == 201
    r = await invite(live, ops, "c@example.com", "creator:x")  # the fifth from the operators
    assert_problem(r, 429, "too-many-requests")
    # Another sender has its own count.
    cleo = live.auth("creator", "cleo")
    tokens = []
    for email in ("mo@example.com", "mo3@example.com"):
        assert (await invite(live, cleo, email, "moderator:cleo")).status_code == 201
        tokens.append(token_of(await smtp.next_mail(email)))
    mo, mo3 = await people("mo@example.com"), await people("mo3@example.com")
    assert (await accept(mo, tokens[0])).status_code == 200
    # The team is full: an open invitation cannot be taken, and no more are sent.
    assert_problem(await accept(mo3, tokens[1]), 409, "team-full")
    assert_problem(await invite(live, cleo, "mo2@example.com", "moderator:cleo"), 409,
                   "team-full")


@pytest.mark.parametrize("extra_settings", [{"smtp_url": "smtp://127.0.0.1:1"}])
async def test_a_mail_server_that_is_down_leaves_no_invitation(live: Live,
                                                               rclient: redis.Redis) -> None:
    await make_brand(live)
    before = await db_state(rclient)
    r = await invite(live, live.auth("operator", "ops"), "a@example.com", "brand:new",
                     brand_role="admin", brand={"name": "New", "currency": "USD"})
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/mail-unavailable") and r.headers["retry-after"] == "30"
    changed = state_diff(before, await db_state(rclient))
    assert all(b":{rl:invite-" in key for key in changed), changed  # only the rates counted
    assert (await live.http.get("/api/v1/brands/new")).status_code == 404


async def test_invitation_links_point_at_the_public_url(live: Live, smtp: Inbox,  # noqa: F811
                                                        rclient: redis.Redis) -> None:
    """A Host header from outside never picks the link's host (as with sign-in links)."""
    r = await live.http.post("/api/v1/invitations", headers={
        **live.auth("operator", "ops"), "Host": "evil.example"},
        json={"email": "a@example.com", "grant": "creator:x"})
    assert r.status_code == 201, r.text
    link = link_of(await smtp.next_mail("a@example.com"))
    assert link.startswith(live.services.settings.base_url + "/invite/"), link
    assert "evil" not in link


async def test_the_claim_has_one_winner_and_never_reopens(live: Live) -> None:
    """The store's steps as an accept and a revoke interleave them (live/accounts/lua):
    a claim is its account's until finished, an accepted or revoked invitation never
    becomes claimable again (a late second accept after a removal gets nothing back), and
    time is the expiry's."""
    store = live.services.invitations
    grant = Grant(Role.MODERATOR, "cleo")
    now = int(time.time() * 1000)  # the records expire on the server's clock: stay near it
    token, invitation = await store.create("a@example.com", grant, None, scope="creator:cleo",
                                           invited_by="creator:cleo", now_ms=now)
    assert not await store.claim(invitation.id + "." + "A" * 43, "u_a", now_ms=now + 1)
    assert await store.claim(token, "u_a", now_ms=now + 1)
    assert await store.claim(token, "u_a", now_ms=now + 1)  # its own, unfinished: again
    with pytest.raises(InvitationGone, match="accepted already"):
        await store.claim(token, "u_b", now_ms=now + 1)
    assert await store.revoke(invitation.id) == "accepted"
    await store.finish(invitation.id, now_ms=now + 2)
    for account in ("u_a", "u_b"):
        with pytest.raises(InvitationGone, match="accepted already"):
            await store.claim(token, account, now_ms=now + 2)
    late, invitation = await store.create("a@example.com", grant, None, scope="creator:cleo",
                                          invited_by="creator:cleo", now_ms=now)
    with pytest.raises(InvitationGone, match="expired"):
        await store.claim(late, "u_a", now_ms=invitation.expires_ms)
    assert await store.revoke(invitation.id) == "revoked"
    assert await store.revoke(invitation.id) == "already-revoked"
    with pytest.raises(InvitationGone, match="revoked"):
        await store.claim(late, "u_a", now_ms=now + 1)
