"""Follows and RSVPs against a real node and a real SMTP inbox: one mail each when a show
goes live (none to someone who unfollowed or follows someone else; none twice for a second
trigger or a second node), going live never waits on a broken mailer, and the routes' own
rules: caps, 409 for a show that is not scheduled, another account's follows unseen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from conftest import Live
from inbox import Inbox, Received, smtp  # noqa: F401 - the fixture
from shop import eventually, make_stream
from test_bad_input import assert_problem

from live.accounts.mail import LogMailer
from live.streams.alerts import AlertLimits, ShowAlerts

from test_sessions import people  # noqa: F401 - the fixture


@pytest.fixture
async def silent_smtp() -> AsyncIterator[str]:
    """An SMTP address whose server accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"smtp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
def node_settings(smtp: Inbox, silent_smtp: str, request: pytest.FixtureRequest  # noqa: F811
                  ) -> dict[str, Any]:
    """The inbox, and caps of 2; `indirect` "silent" points the node at `silent_smtp`."""
    url = silent_smtp if getattr(request, "param", None) == "silent" else smtp.url
    return {"smtp_url": url, "follows_per_account": 2, "reminders_per_account": 2,
            "mail_timeout_s": 60.0}


def alerts_to(inbox: Inbox, address: str) -> list[Received]:
    return [m for m in inbox.to(address) if " is live: " in str(m.message["Subject"])]


async def go_live(live: Live, stream: dict[str, Any], creator: str = "cleo") -> None:
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/live",
                             headers=live.auth("creator", creator))
    assert r.status_code == 200, r.text


async def test_followers_and_rsvps_get_one_mail_when_the_show_goes_live(
        live: Live, smtp: Inbox, people: Any, rclient: redis.Redis) -> None:  # noqa: F811
    show = await make_stream(live, [], "cleo", title="Sneaker drop")
    other = await make_stream(live, [], "max", title="Max's show")
    ann, bob, cat, dan, eve = [await people(f"{n}@example.com")
                               for n in ("ann", "bob", "cat", "dan", "eve")]
    for person, path in ((ann, "/api/v1/me/follows/cleo"),
                         (bob, f"/api/v1/me/reminders/{show['id']}"),
                         (cat, "/api/v1/me/follows/cleo"), (cat, f"/api/v1/me/reminders/{show['id']}"),
                         (dan, "/api/v1/me/follows/cleo"),
                         (eve, "/api/v1/me/follows/max"), (eve, f"/api/v1/me/reminders/{other['id']}")):
        r = await person.http.put(path, headers=person.csrf)
        assert r.status_code == 200, r.text
    r = await ann.http.put("/api/v1/me/follows/cleo", headers=ann.csrf)  # idempotent
    assert r.json() == {"creator_id": "cleo", "following": True, "followers": 3}
    r = await dan.http.delete("/api/v1/me/follows/cleo", headers=dan.csrf)
    assert r.status_code == 204
    assert (await live.http.get("/api/v1/creators/cleo")).json()["followers"] == 2
    assert (await ann.http.get("/api/v1/me/follows")).json()["items"][0]["creator_id"] == "cleo"
    assert (await cat.http.get("/api/v1/me/reminders")).json() == {
        "items": [{"stream_id": show["id"]}]}

    await go_live(live, show)
    for person in (ann, bob, cat):
        mail = await smtp.next_mail(person.session["account"]["email"])
        while " is live: " not in str(mail.message["Subject"]):  # the sign-in mail came first
            mail = await smtp.next_mail(person.session["account"]["email"])
        assert mail.message["Subject"] == "cleo is live: Sneaker drop"
        assert f"/s/{show['id']}" in mail.text
    await eventually(lambda: live.services.alerts.in_flight == 0, "the alert to finish")
    assert [len(alerts_to(smtp, f"{n}@example.com")) for n in ("ann", "bob", "cat", "dan", "eve")
            ] == [1, 1, 1, 0, 0]

    # A second trigger, or another node, finds the alert claimed and sends nothing.
    assert await live.services.alerts.send(show) == 0
    second = ShowAlerts(rclient, live.services.follows, live.services.accounts,
                        live.services.mailer, node="another-node", base_url=live.url,
                        limits=AlertLimits(batch=1, mails_per_s=100, max_recipients=10))
    assert await second.send(show) == 0
    assert [len(alerts_to(smtp, f"{n}@example.com")) for n in ("ann", "bob", "cat")] == [1, 1, 1]

    # "For you": the live show of a creator Ann follows; Eve follows nobody live.
    r = await ann.http.get("/api/v1/me/for-you")
    assert [s["id"] for s in r.json()["items"]] == [show["id"]]
    assert (await eve.http.get("/api/v1/me/for-you")).json()["items"] == []
    # The show is live now: it takes no more RSVPs.
    r = await eve.http.put(f"/api/v1/me/reminders/{show['id']}", headers=eve.csrf)
    assert_problem(r, 409, "not-scheduled")


async def test_two_nodes_racing_send_one_alert(live: Live, rclient: redis.Redis) -> None:
    account, _ = await live.services.accounts.sign_in("race@example.com")
    await make_stream(live, [], "cleo")
    r = await live.http.put("/api/v1/me/follows/cleo", headers=live.auth("buyer", account.id))
    assert r.status_code == 200, r.text
    stream = {"id": "s_race", "creator_id": "cleo", "title": "Race"}
    nodes = [ShowAlerts(rclient, live.services.follows, live.services.accounts, LogMailer(),
                        node=f"node-{i}", base_url=live.url,
                        limits=AlertLimits(batch=10, mails_per_s=1000, max_recipients=10))
             for i in range(4)]
    sent = await asyncio.gather(*(n.send(stream) for n in nodes))
    assert sorted(sent) == [0, 0, 0, 1]


@pytest.mark.parametrize("node_settings", ["silent"], indirect=True)
async def test_going_live_never_waits_on_a_hung_mailer(live: Live) -> None:
    """The SMTP server never answers (and the node waits 60 s for it): going live answers at
    once all the same, the alert hangs on in the background, and stopping the node ends it."""
    account, _ = await live.services.accounts.sign_in("fan@example.com")
    show = await make_stream(live, [], "cleo")
    r = await live.http.put("/api/v1/me/follows/cleo", headers=live.auth("buyer", account.id))
    assert r.status_code == 200
    await go_live(live, show)
    assert (await live.http.get(f"/api/v1/streams/{show['id']}")).json()["state"] == "live"
    assert live.services.alerts.in_flight == 1  # still stuck on the silent server
    await live.services.alerts.close()
    assert live.services.alerts.in_flight == 0


async def test_the_routes_refuse_what_they_must(live: Live, people: Any) -> None:  # noqa: F811
    for creator in ("cleo", "max", "zoe"):
        await make_stream(live, [], creator)
    live_show = await make_stream(live, [], "cleo")
    await go_live(live, live_show)
    shows = [await make_stream(live, [], "cleo") for _ in range(3)]
    ann, bob = await people("ann2@example.com"), await people("bob2@example.com")

    # Signed out: 401; a creator's token is not a buyer's: 403; no CSRF token: 403.
    assert_problem(await live.http.put("/api/v1/me/follows/cleo"), 401, "unauthorized")
    assert_problem(await live.http.get("/api/v1/me/follows"), 401, "unauthorized")
    r = await live.http.put("/api/v1/me/follows/cleo", headers=live.auth("creator", "max"))
    assert_problem(r, 403, "forbidden")
    assert_problem(await ann.http.put("/api/v1/me/follows/cleo"), 403, "csrf-failed")
    assert_problem(await ann.http.delete(f"/api/v1/me/reminders/{shows[0]['id']}"), 403,
                   "csrf-failed")
    # Unknown or malformed ids: 404 problems.
    for path in ("/api/v1/me/follows/nobody", "/api/v1/me/follows/%7Bx%7D",
                 "/api/v1/me/reminders/s_nope", "/api/v1/me/reminders/a%20b"):
        assert_problem(await ann.http.put(path, headers=ann.csrf), 404, "not-found")
    # Only a scheduled show takes an RSVP.
    r = await ann.http.put(f"/api/v1/me/reminders/{live_show['id']}", headers=ann.csrf)
    assert_problem(r, 409, "not-scheduled")
    # The caps (2 here): a third is refused, a repeat of one held is fine.
    for creator in ("cleo", "max", "cleo"):
        assert (await ann.http.put(f"/api/v1/me/follows/{creator}", headers=ann.csrf)
                ).status_code == 200
    assert_problem(await ann.http.put("/api/v1/me/follows/zoe", headers=ann.csrf), 409,
                   "follows-full")
    for show in shows[:2]:
        assert (await ann.http.put(f"/api/v1/me/reminders/{show['id']}", headers=ann.csrf)
                ).status_code == 200
    r = await ann.http.put(f"/api/v1/me/reminders/{shows[2]['id']}", headers=ann.csrf)
    assert_problem(r, 409, "reminders-full")
    # Another account never sees Ann's.
    assert (await bob.http.get("/api/v1/me/follows")).json() == {"items": []}
    assert (await bob.http.get("/api/v1/me/reminders")).json() == {"items": []}
    assert len((await ann.http.get("/api/v1/me/follows")).json()["items"]) == 2
