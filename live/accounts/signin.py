"""Email sign-in (sign-up is the same flow): a challenge mailed as a 6-digit code and a
one-time link, verified once.

`start` does the same work for every well-formed address, whether or not it has an
account (it never looks): rate limits, a new challenge, a mail. Only a verified answer
leads to the account (live/accounts/accounts.py), which is made on the first one. Codes and
link tokens are stored as HMACs under the node's secret, keyed by the challenge, so the
keyspace does not hold them; a challenge dies at its first right answer, at its expiry,
and is locked after `max_attempts` wrong ones (live/accounts/lua/verify.lua).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Final, Literal

import redis.asyncio as redis

from checkout.errors import Refused
from checkout.store.replies import text
from live.accounts.keys import challenge_key
from live.accounts.mail import Mail
from live.accounts.ratelimit import RateLimits
from live.accounts.scripts import call_account_script

__all__ = ["CHALLENGE_RE", "CODE_RE", "LINK_TOKEN_RE", "Challenge", "EmailSignIn",
           "SignInLimits", "SignInRefused", "signin_mail"]

CHALLENGE_RE: Final = re.compile(r"c_[0-9a-f]{32}")
CODE_RE: Final = re.compile(r"[0-9]{6}")
LINK_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
# The key outlives the challenge a little, so an answer just past the expiry is told
# "expired" (and the script deletes it) rather than "unknown".
_KEY_GRACE_S: Final = 60


class SignInRefused(Refused):
    """A verify that does not sign in: wrong code (400), over (410), locked (429)."""


@dataclass(frozen=True, slots=True)
class SignInLimits:
    code_ttl_s: int = 15 * 60
    max_attempts: int = 5
    window_s: int = 15 * 60
    per_email: int = 5
    per_ip: int = 30
    verify_per_challenge: int = 10


@dataclass(frozen=True, slots=True)
class Challenge:
    """A started sign-in: what goes into the mail, and the id the page verifies against."""

    id: str
    email: str
    code: str
    link_token: str
    expires_ms: int


class EmailSignIn:
    def __init__(self, client: redis.Redis, secret: bytes, rates: RateLimits,
                 limits: SignInLimits) -> None:
        self._client = client
        # A key of its own, derived from the node's secret (which also signs tokens).
        self._secret = hmac.new(secret, b"livecart email sign-in", hashlib.sha256).digest()
        self._rates = rates
        self.limits = limits

    async def start(self, email: str, client_ip: str, *, now_ms: int | None = None) -> Challenge:
        """A new challenge for a normalised email; `RateLimited` past the per-address or
        per-client rate. The caller mails the code and the link."""
        lim = self.limits
        await self._rates.hit("signin-ip", client_ip, limit=lim.per_ip, window_s=lim.window_s,
                              what="sign-in mails from one client")
        await self._rates.hit("signin-email", email, limit=lim.per_email,
                              window_s=lim.window_s, what="sign-in mails to one address")
        now = int(time.time() * 1000) if now_ms is None else now_ms
        challenge = Challenge(id="c_" + secrets.token_hex(16), email=email,
                              code=f"{secrets.randbelow(10**6):06d}",
                              link_token=secrets.token_urlsafe(32),
                              expires_ms=now + lim.code_ttl_s * 1000)
        key = challenge_key(challenge.id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={
                "email": email, "attempts": 0, "expires_ms": challenge.expires_ms,
                "code": self._mac(challenge.id, "code", challenge.code),
                "link": self._mac(challenge.id, "link", challenge.link_token)})
            pipe.expire(key, lim.code_ttl_s + _KEY_GRACE_S)
            await pipe.execute()
        return challenge

    async def verify(self, challenge_id: str, kind: Literal["code", "link"], answer: str, *,
                     now_ms: int | None = None) -> str:
        """The challenge's email if `answer` is right (the challenge is then spent), else
        `SignInRefused`; `RateLimited` past the verify rate of this challenge."""
        lim = self.limits
        await self._rates.hit("signin-verify", challenge_id, limit=lim.verify_per_challenge,
                              window_s=lim.window_s, what="verify calls per sign-in")
        now = int(time.time() * 1000) if now_ms is None else now_ms
        reply = await call_account_script(
            self._client, "verify", [challenge_key(challenge_id)],
            [kind, self._mac(challenge_id, kind, answer), now, lim.max_attempts])
        outcome = text(reply[0])
        if outcome == "ok":
            return text(reply[1])
        if outcome == "wrong":
            left = int(text(reply[1]))
            raise SignInRefused(400, "wrong-code", f"that code is not right; {left} tries left"
                                if left else "that code is not right; ask for a new one",
                                attempts_left=left)
        if outcome == "locked":
            raise SignInRefused(429, "too-many-attempts",
                                "too many wrong codes for this sign-in; ask for a new code")
        raise SignInRefused(410, "signin-expired",
                            "this sign-in has expired or was used; ask for a new code")

    def _mac(self, challenge_id: str, kind: str, answer: str) -> str:
        message = f"{kind}:{challenge_id}:{answer}".encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()


def signin_mail(challenge: Challenge, link: str, ttl_s: int) -> Mail:
    """The one mail of a sign-in, the same whether or not the address has an account."""
    minutes = max(1, ttl_s // 60)
    return Mail(to=challenge.email, subject=f"Your livecart sign-in code: {challenge.code}",
                text=(f"Your livecart sign-in code is {challenge.code}\n\n"
                      f"Or open this link to sign in:\n{link}\n\n"
                      f"The code and the link work once, for {minutes} minutes.\n"
                      "If you did not ask to sign in, ignore this mail: nothing happens "
                      "without the code.\n"))
