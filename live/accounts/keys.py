"""The Valkey keys of accounts, sign-in and sessions, in the style of checkout/store/keys.py:
one function per key, every variable part through `key_part`, and a hash tag per owner so
that the keys one step touches together share a slot (an account's record and its grants;
a challenge; a session).

Emails never appear in key names: the index is keyed by the normalised email's SHA-256,
and the rate limits by a hash too, so a key listing shows no addresses.
"""

from __future__ import annotations

from checkout.store.keys import key_part

__all__ = ["account_key", "account_grants_key", "email_index_key", "challenge_key",
           "session_key", "rate_key", "invitation_key", "invitations_sent_key", "team_key"]


def account_key(account: str) -> str:
    """Hash: email, created_ms, display_name."""
    return f"lc:{{a:{key_part(account)}}}:account"


def account_grants_key(account: str) -> str:
    """Set of grants `role:subject` (buyer:<account id> always)."""
    return f"lc:{{a:{key_part(account)}}}:grants"


def email_index_key(email_hash: str) -> str:
    """String: the account id of the email whose SHA-256 (hex) is `email_hash`."""
    return f"lc:{{e:{key_part(email_hash)}}}:account"


def challenge_key(challenge: str) -> str:
    """Hash: one email sign-in in progress (email, code and link hashes, attempts, expiry)."""
    return f"lc:{{ch:{key_part(challenge)}}}:challenge"


def session_key(token_hash: str) -> str:
    """Hash: a page session, under the SHA-256 (hex) of the cookie's token."""
    return f"lc:{{ss:{key_part(token_hash)}}}:session"


def rate_key(scope: str, subject_hash: str) -> str:
    """Counter of one fixed window: `scope` is a fixed word, `subject_hash` says whose."""
    return f"lc:{{rl:{key_part(scope)}:{key_part(subject_hash)}}}:count"


def invitation_key(invitation: str) -> str:
    """Hash: one invitation (email, grant, the token's hash, state, who sent and took it)."""
    return f"lc:{{iv:{key_part(invitation)}}}:invitation"


def invitations_sent_key(scope: str) -> str:
    """Sorted set: the invitation ids one sender scope (`operator`, `brand:<id>`,
    `creator:<id>`) sent, by creation time (ms)."""
    return f"lc:{{is:{key_part(scope)}}}:sent"


def team_key(grant: str) -> str:
    """Hash: account id -> JSON {brand_role, since_ms, invitation} of the accounts that took
    `grant` by invitation (a brand's team, a creator's moderators)."""
    return f"lc:{{tm:{key_part(grant)}}}:members"
