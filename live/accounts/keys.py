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
           "session_key", "account_sessions_key", "rate_key", "passkey_key", "passkeys_key", "passkey_owner_key",
           "passkey_challenge_key", "confirmed_purchase_key", "follows_key", "reminders_key",
           "followers_key", "rsvps_key", "alerted_key", "invitation_key", "invitations_sent_key",
           "team_key", "api_key_key", "brand_api_keys_key"]


def account_key(account: str) -> str:
    """Hash: email, created_ms, display_name."""
    return f"lc:{{a:{key_part(account)}}}:account"


def account_grants_key(account: str) -> str:
    """Set of grants `role:subject` (buyer:<account id> always)."""
    return f"lc:{{a:{key_part(account)}}}:grants"


def email_index_key(email_hash: str) -> str:
    """String: the account id of the email whose SHA-256 (hex) is `email_hash`."""
    return f"lc:{{e:{key_part(email_hash)}}}:account"


def account_sessions_key(account: str) -> str:
    """Sorted set: the account's page sessions (their ids) by when each ends at the latest,
    so "sign out everywhere" finds them all."""
    return f"lc:{{a:{key_part(account)}}}:sessions"


def challenge_key(challenge: str) -> str:
    """Hash: one email sign-in in progress (email, code and link hashes, attempts, expiry)."""
    return f"lc:{{ch:{key_part(challenge)}}}:challenge"


def session_key(token_hash: str) -> str:
    """Hash: a page session, under the SHA-256 (hex) of the cookie's token."""
    return f"lc:{{ss:{key_part(token_hash)}}}:session"


def rate_key(scope: str, subject_hash: str) -> str:
    """Counter of one fixed window: `scope` is a fixed word, `subject_hash` says whose."""
    return f"lc:{{rl:{key_part(scope)}:{key_part(subject_hash)}}}:count"


def passkey_key(account: str, credential_hash: str) -> str:
    """Hash: one passkey of the account (credential id, public key, sign count, ...), under
    the SHA-256 (hex) of its raw credential id."""
    return f"lc:{{a:{key_part(account)}}}:passkey:{key_part(credential_hash)}"


def passkeys_key(account: str) -> str:
    """Sorted set: the account's passkeys (credential hashes) by the time they were added."""
    return f"lc:{{a:{key_part(account)}}}:passkeys"


def passkey_owner_key(credential_hash: str) -> str:
    """String: the account a credential is registered to (SET NX: one account per credential)."""
    return f"lc:{{pk:{key_part(credential_hash)}}}:account"


def passkey_challenge_key(challenge_hash: str) -> str:
    """Hash: a WebAuthn challenge in progress (purpose, account), under its SHA-256 (hex)."""
    return f"lc:{{pc:{key_part(challenge_hash)}}}:challenge"


def confirmed_purchase_key(account: str, name_hash: str) -> str:
    """String: the digest of a purchase the account confirmed with a passkey, under the
    SHA-256 (hex) of the purchase's name (live/web/buy_confirm.py), so a retry of that same
    purchase needs no new tap."""
    return f"lc:{{a:{key_part(account)}}}:confirmed:{key_part(name_hash)}"


def follows_key(account: str) -> str:
    """Sorted set: the creators the account follows, by when (the authoritative record)."""
    return f"lc:{{a:{key_part(account)}}}:follows"


def reminders_key(account: str) -> str:
    """Sorted set: the shows the account RSVP'd to, by their scheduled time (authoritative)."""
    return f"lc:{{a:{key_part(account)}}}:reminders"


def followers_key(creator: str) -> str:
    """Set: the accounts following the creator, derived from their `follows` (in the
    creator's own slot, so counting and alerting read one key)."""
    return f"lc:{{fo:{key_part(creator)}}}:followers"


def rsvps_key(stream: str) -> str:
    """Set: the accounts that RSVP'd to the show, derived from their `reminders` (in the
    stream's slot, next to its hash)."""
    return f"lc:{{s:{key_part(stream)}}}:rsvps"


def alerted_key(stream: str) -> str:
    """String: the node that claimed the show's go-live alert (SET NX: one sender, ever)."""
    return f"lc:{{s:{key_part(stream)}}}:alerted"


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


def api_key_key(key_id: str) -> str:
    """Hash: a brand's API key (brand, name, scopes, the secret's SHA-256, times)."""
    return f"lc:{{ak:{key_part(key_id)}}}:apikey"


def brand_api_keys_key(brand: str) -> str:
    """Sorted set: a brand's API key ids by when each was made (its cap in one script)."""
    return f"lc:{{bk:{key_part(brand)}}}:apikeys"
