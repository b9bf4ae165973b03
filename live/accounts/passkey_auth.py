"""The WebAuthn ceremonies of passkeys, with py_webauthn (the `webauthn` package): adding a
passkey to an account, signing in with one, and confirming a purchase with one.

Every ceremony starts with a challenge that the server keeps (its SHA-256 names it in
Valkey, with what it is for and for which account) for `challenge_ttl_s`, and that the
first answer naming it spends, right or wrong: a replayed answer finds no challenge. The
answer's signature, origin and RP ID are then checked by the library, with user
verification required (a passkey alone signs in, so it must be the person, not just a
tap on a key). The signature counter is checked where it is stored, in one step
(PasskeyStore.record_use), not by the library on a value read earlier.

A purchase's challenge carries the purchase: 16 random bytes, then the SHA-256 digest of
the buy request. The authenticator signs over it, so an answer confirms that purchase and
no other. Design and limits: docs/accounts.md (Passkeys).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import redis.asyncio as redis
from webauthn import (generate_authentication_options, generate_registration_options,
                      verify_authentication_response, verify_registration_response)
from webauthn.helpers import base64url_to_bytes, options_to_json_dict, parse_client_data_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (AttestationConveyancePreference,
                                      AuthenticatorSelectionCriteria, AuthenticatorTransport,
                                      PublicKeyCredentialDescriptor, ResidentKeyRequirement,
                                      UserVerificationRequirement)

from checkout.store.replies import text, text_hash
from live.accounts.accounts import Account
from live.accounts.keys import confirmed_purchase_key, passkey_challenge_key
from live.accounts.passkeys import Passkey, PasskeyRefused, PasskeyStore, b64url
from live.accounts.ratelimit import RateLimits

__all__ = ["PasskeyAuth", "PasskeyLimits", "RelyingParty"]

log = logging.getLogger(__name__)

Purpose = Literal["register", "signin", "confirm"]
_DIGEST_BYTES: Final = 32  # a purchase's SHA-256
_NONCE_BYTES: Final = 16  # before a purchase's digest in its challenge
_CHALLENGE_BYTES: Final = 32  # registration and sign-in challenges
_MAX_NAME: Final = 64
# Answers that are not WebAuthn at all can fail inside the library's parsers as well as
# with its own exceptions: all of them are a response that does not verify.
_NOT_VERIFIED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, AttributeError)
_TRANSPORTS: Final = frozenset(t.value for t in AuthenticatorTransport)


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Whom passkeys are for: the RP ID is the host name of the node's public address and
    the origin that address (WebAuthn L3 section 5.1.3); a passkey works only there."""

    id: str
    origin: str
    name: str = "livecart"

    @classmethod
    def of(cls, base_url: str) -> "RelyingParty":
        parts = urlsplit(base_url)
        return cls(id=parts.hostname or "", origin=f"{parts.scheme}://{parts.netloc}")


@dataclass(frozen=True, slots=True)
class PasskeyLimits:
    challenge_ttl_s: int = 300
    window_s: int = 15 * 60  # the window of the two rates below
    signin_per_ip: int = 30  # sign-in options and answers, each, per client address
    options_per_account: int = 60  # registrations and purchase confirmations asked


class PasskeyAuth:
    """The ceremonies; `store` holds the passkeys themselves."""

    def __init__(self, client: redis.Redis, store: PasskeyStore, rates: RateLimits,
                 limits: PasskeyLimits) -> None:
        self._client = client
        self.store = store
        self._rates = rates
        self.limits = limits

    # ------------------------------------------------------------------ registration

    async def registration_options(self, account: Account, rp: RelyingParty) -> dict[str, Any]:
        """PublicKeyCredentialCreationOptions (JSON form) for a new discoverable passkey of
        the account; its existing passkeys are excluded (one per authenticator)."""
        await self._account_rate(account.id)
        existing = await self.store.list(account.id)
        challenge = await self._new_challenge("register", account.id)
        options = generate_registration_options(
            rp_id=rp.id, rp_name=rp.name, user_id=account.id.encode("ascii"),
            user_name=account.email, user_display_name=account.display_name or account.email,
            challenge=challenge, timeout=self.limits.challenge_ttl_s * 1000,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED),
            exclude_credentials=[_descriptor(p) for p in existing])
        return options_to_json_dict(options)

    async def register(self, account_id: str, rp: RelyingParty, credential: dict[str, Any],
                       name: str, *, now_ms: int | None = None) -> Passkey:
        """Verify an attestation (RegistrationResponseJSON) against the account's challenge
        and store the new passkey."""
        challenge = await self._take_challenge(credential, "register", account_id)
        try:
            verified = verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
                expected_origin=rp.origin, require_user_verification=True)
        except _NOT_VERIFIED as exc:
            raise _rejected("registration", exc) from None
        transports = credential["response"].get("transports") or []
        passkey = Passkey(
            id=b64url(verified.credential_id), account_id=account_id,
            public_key=verified.credential_public_key, sign_count=verified.sign_count,
            transports=tuple(t for t in transports if t in _TRANSPORTS),
            created_ms=_now(now_ms), last_used_ms=0,
            name=name.strip()[:_MAX_NAME] or "Passkey", backed_up=verified.credential_backed_up)
        await self.store.add(passkey)
        return passkey

    # ------------------------------------------------------------------ sign-in

    async def signin_options(self, rp: RelyingParty, client_ip: str) -> dict[str, Any]:
        """PublicKeyCredentialRequestOptions naming no account and no credential: the
        browser offers this site's discoverable passkeys."""
        await self._signin_rate("passkey-signin", client_ip)
        challenge = await self._new_challenge("signin", "")
        return options_to_json_dict(generate_authentication_options(
            rp_id=rp.id, challenge=challenge, timeout=self.limits.challenge_ttl_s * 1000,
            user_verification=UserVerificationRequirement.REQUIRED))

    async def sign_in(self, rp: RelyingParty, credential: dict[str, Any], client_ip: str, *,
                      now_ms: int | None = None) -> str:
        """The account an assertion (AuthenticationResponseJSON) signs in, once verified.
        An unknown credential is refused exactly as a bad signature is."""
        await self._signin_rate("passkey-verify", client_ip)
        challenge = await self._take_challenge(credential, "signin", "")
        credential_id = str(credential.get("id", ""))
        account_id = await self.store.owner(credential_id)
        passkey = await self.store.get(account_id, credential_id) if account_id else None
        handle = credential["response"].get("userHandle")
        if passkey is None or (handle is not None and handle != b64url(passkey.account_id.encode())):
            raise _rejected("sign-in", "unknown credential or user handle")
        await self._verify_assertion(passkey, rp, credential, challenge, now_ms)
        return passkey.account_id

    # ------------------------------------------------------------------ purchases

    async def confirmation_options(self, account_id: str, rp: RelyingParty,
                                   digest: bytes) -> dict[str, Any]:
        """Request options whose challenge carries the purchase's digest, for the account's
        own passkeys."""
        if len(digest) != _DIGEST_BYTES:
            raise ValueError("a purchase digest is a SHA-256")
        await self._account_rate(account_id)
        passkeys = await self.store.list(account_id)
        challenge = await self._new_challenge("confirm", account_id, digest)
        return options_to_json_dict(generate_authentication_options(
            rp_id=rp.id, challenge=challenge, timeout=self.limits.challenge_ttl_s * 1000,
            allow_credentials=[_descriptor(p) for p in passkeys],
            user_verification=UserVerificationRequirement.REQUIRED))

    async def confirm(self, account_id: str, rp: RelyingParty, credential: dict[str, Any],
                      digest: bytes, name: str, *, now_ms: int | None = None) -> None:
        """Verify that an assertion by one of the account's passkeys confirms the purchase
        `digest`; remember the confirmation under `name` (live/web/buy_confirm.py's Purchase) for
        `challenge_ttl_s`, so the same purchase may be retried without a new tap."""
        challenge = await self._take_challenge(credential, "confirm", account_id)
        if not hmac.compare_digest(challenge[_NONCE_BYTES:], digest):
            raise PasskeyRefused(400, "passkey-wrong-purchase",
                                 "this passkey answer confirms another purchase")
        passkey = await self.store.get(account_id, str(credential.get("id", "")))
        if passkey is None:
            raise _rejected("confirmation", "not one of the account's passkeys")
        await self._verify_assertion(passkey, rp, credential, challenge, now_ms)
        await self._client.set(confirmed_purchase_key(account_id, _sha256(name)), digest.hex(),
                               ex=self.limits.challenge_ttl_s)

    async def confirmed(self, account_id: str, name: str, digest: bytes) -> bool:
        """Whether the account confirmed this very purchase under `name` lately."""
        stored = await self._client.get(confirmed_purchase_key(account_id, _sha256(name)))
        return stored is not None and hmac.compare_digest(text(stored), digest.hex())

    # ------------------------------------------------------------------ the steps

    async def _verify_assertion(self, passkey: Passkey, rp: RelyingParty,
                                credential: dict[str, Any], challenge: bytes,
                                now_ms: int | None) -> None:
        try:
            verified = verify_authentication_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
                expected_origin=rp.origin, credential_public_key=passkey.public_key,
                # 0: the library skips its counter check; record_use makes it atomically.
                credential_current_sign_count=0, require_user_verification=True)
        except _NOT_VERIFIED as exc:
            raise _rejected("assertion", exc) from None
        try:
            await self.store.record_use(passkey, verified.new_sign_count, _now(now_ms))
        except PasskeyRefused as exc:
            if exc.kind == "passkey-replayed":
                log.warning("passkey of %s: sign count %d did not go up (a copied "
                            "authenticator or a replay); refused", passkey.account_id,
                            verified.new_sign_count)
            raise

    async def _new_challenge(self, purpose: Purpose, account_id: str,
                             digest: bytes = b"") -> bytes:
        challenge = (secrets.token_bytes(_NONCE_BYTES) + digest if digest
                     else secrets.token_bytes(_CHALLENGE_BYTES))
        key = passkey_challenge_key(_sha256(challenge))
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"purpose": purpose, "account": account_id})
            pipe.expire(key, self.limits.challenge_ttl_s)
            await pipe.execute()
        return challenge

    async def _take_challenge(self, credential: dict[str, Any], purpose: Purpose,
                              account_id: str) -> bytes:
        """The challenge the answer's clientDataJSON names, spent (single use): 410 if it
        is unknown, spent or expired; 400 if it was for something else."""
        try:
            client_data = parse_client_data_json(
                base64url_to_bytes(credential["response"]["clientDataJSON"]))
        except _NOT_VERIFIED as exc:
            raise _rejected(purpose, exc) from None
        if client_data.cross_origin:  # never asked from inside another site's frame
            raise _rejected(purpose, "cross-origin ceremony")
        key = passkey_challenge_key(_sha256(client_data.challenge))
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.delete(key)
            record, _ = await pipe.execute()
        if not record:
            raise PasskeyRefused(410, "passkey-challenge-expired", "this passkey request has "
                                 "expired or was used; start again")
        fields = text_hash(record)
        if fields.get("purpose") != purpose or fields.get("account") != account_id:
            raise _rejected(purpose, f"a challenge for {fields.get('purpose')}")
        return client_data.challenge

    async def _signin_rate(self, scope: str, client_ip: str) -> None:
        lim = self.limits
        await self._rates.hit(scope, client_ip, limit=lim.signin_per_ip, window_s=lim.window_s,
                              what="passkey sign-ins from one client")

    async def _account_rate(self, account_id: str) -> None:
        lim = self.limits
        await self._rates.hit("passkey-options", account_id, limit=lim.options_per_account,
                              window_s=lim.window_s, what="passkey requests per account")


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.id),
        transports=[AuthenticatorTransport(t) for t in passkey.transports])


def _rejected(what: str, reason: object) -> PasskeyRefused:
    """One answer for every response that does not verify (the reason goes to the log
    only: an unknown credential must look like a bad signature)."""
    log.info("passkey %s refused: %s", what, reason)
    return PasskeyRefused(400, "passkey-rejected", "the passkey could not be verified")


def _sha256(value: bytes | str) -> str:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return hashlib.sha256(raw).hexdigest()


def _now(now_ms: int | None) -> int:
    return int(time.time() * 1000) if now_ms is None else now_ms
