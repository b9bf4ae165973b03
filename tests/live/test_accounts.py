"""Accounts and sessions on the real Valkey, below HTTP: one account per email under races
and after a crash between the two writes, grants, and a session's idle and absolute ends."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from live.accounts.accounts import AccountStore, Grant
from live.accounts.auth import Role
from live.accounts.emails import BadEmail, email_hash, normalise_email
from live.accounts.keys import account_key, email_index_key, session_key
from live.accounts.scripts import load_account_scripts
from live.accounts.sessions import SessionStore, token_hash


@pytest.fixture
async def store(rclient: redis.Redis) -> AccountStore:
    await load_account_scripts(rclient)
    return AccountStore(rclient)


def test_one_normal_form_per_address() -> None:
    assert normalise_email("  Ann.B@Example.COM\t") == "Ann.B@example.com"
    assert normalise_email("ａｎｎ@ｅｘａｍｐｌｅ.com") == "ann@example.com"  # NFKC folds full-width
    assert normalise_email("ann@BÜCHER.example") == "ann@bücher.example"
    for bad in ("", "ann", "ann@", "@example.com", "ann@example", "ann @example.com",
                "a" * 300 + "@example.com"):
        with pytest.raises(BadEmail):
            normalise_email(bad)


async def test_two_sign_ups_of_one_email_make_one_account(store: AccountStore,
                                                          rclient: redis.Redis) -> None:
    results = await asyncio.gather(*[store.sign_in("race@example.com") for _ in range(20)])
    ids = {account.id for account, _ in results}
    assert len(ids) == 1
    assert sum(made for _, made in results) == 1
    [account_id] = ids
    assert await rclient.get(email_index_key(email_hash("race@example.com"))) == account_id.encode()
    account = await store.get(account_id)
    assert account is not None and account.grants == (Grant(Role.BUYER, account_id),)


async def test_an_index_left_without_its_record_is_repaired(store: AccountStore,
                                                            rclient: redis.Redis) -> None:
    """A crash between SET NX of the index and the record's write leaves the index alone:
    the next sign-in of that email finishes the account, under the indexed id."""
    await rclient.set(email_index_key(email_hash("crash@example.com")), "u_" + "a" * 32)
    assert await store.get("u_" + "a" * 32) is None
    account, made = await store.sign_in("crash@example.com")
    assert account.id == "u_" + "a" * 32 and not made
    assert account.email == "crash@example.com" and account.grants == (account.buyer_grant,)
    assert await rclient.exists(account_key(account.id))


async def test_grants_come_and_go_but_the_own_buyer_grant_stays(store: AccountStore) -> None:
    account, _ = await store.sign_in("grants@example.com")
    assert await store.grant(account.id, Grant(Role.BRAND, "acme"))
    assert not await store.grant(account.id, Grant(Role.BRAND, "acme"))
    assert await store.has_grant(account.id, Grant.parse("brand:acme"))
    again = await store.get(account.id)
    assert again is not None and [str(g) for g in again.grants] == ["brand:acme", f"buyer:{account.id}"]
    assert await store.revoke(account.id, Grant(Role.BRAND, "acme"))
    with pytest.raises(ValueError):
        await store.revoke(account.id, account.buyer_grant)
    assert Grant.parse("operator:ops:night") == Grant(Role.OPERATOR, "ops:night")
    for bad in ("buyer", "wizard:x", "buyer:", "buyer:a b", ":x"):
        with pytest.raises(ValueError):
            Grant.parse(bad)


async def test_a_session_ends_when_idle_and_at_its_absolute_end(rclient: redis.Redis) -> None:
    await load_account_scripts(rclient)
    sessions = SessionStore(rclient, idle_s=600, max_s=3600, touch_every_ms=60_000)
    t0 = 1_700_000_000_000
    grant = Grant(Role.BUYER, "u_" + "b" * 32)
    token, session = await sessions.create(grant.subject, grant, now_ms=t0)
    key = session_key(token_hash(token))
    assert session.id == token_hash(token) and token.encode() not in await rclient.hgetall(key)
    assert 0 < await rclient.pttl(key) <= 600_000  # the idle end is the key's expiry
    # Used within the minute: a read, no write.
    assert (await sessions.get(token, now_ms=t0 + 30_000)).seen_ms == t0  # type: ignore[union-attr]
    # Used later: seen, and the idle end moves on (but never past the absolute end).
    seen = await sessions.get(token, now_ms=t0 + 3_500_000)
    assert seen is not None and seen.seen_ms == t0 + 3_500_000
    assert 0 < await rclient.pttl(key) <= 100_000
    # At the absolute end it is over, whatever its key says.
    assert await sessions.get(token, now_ms=t0 + 3_600_000) is None
    assert not await rclient.exists(key)
    # An ended session is not brought back by a late touch.
    token2, session2 = await sessions.create(grant.subject, grant, now_ms=t0)
    await sessions.end(session2)
    assert await sessions.act_as(session2, grant, now_ms=t0 + 1) is None
    assert not await rclient.exists(session_key(session2.id))
    for bad in ("", "x", token2 + "A", token2[:-1] + "*"):
        assert await sessions.get(bad, now_ms=t0) is None
