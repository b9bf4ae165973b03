"""A software WebAuthn authenticator for the server tests (the pages' tests use Chromium's
virtual one): real P-256 keys and ECDSA signatures (cryptography), real CBOR (py_webauthn's
encoder), "none" attestation, so the server checks what an authenticator would send. Its
knobs forge what one should not: another origin or RP ID, no user verification, a
cross-origin frame, a signature counter that goes back (a copied authenticator).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import encode_cbor

__all__ = ["SoftAuthenticator", "b64", "unb64"]

_UP, _UV, _AT = 0x01, 0x04, 0x40  # authenticator data flags (WebAuthn L3 section 6.1)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One discoverable credential for one relying party (`rp_id`, pages at `origin`)."""

    origin: str
    rp_id: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    sign_count: int = 0
    counts: bool = True  # False: an authenticator without a counter (always 0)
    user_handle: bytes = b""

    @property
    def id(self) -> str:
        return b64(self.credential_id)

    def clone(self) -> "SoftAuthenticator":
        """A copy of the same key and counter (what a cloned authenticator is)."""
        return SoftAuthenticator(self.origin, self.rp_id, self.key, self.credential_id,
                                 self.sign_count, self.counts, self.user_handle)

    def create(self, options: dict[str, Any], *, origin: str | None = None,
               rp_id: str | None = None, verified: bool = True) -> dict[str, Any]:
        """navigator.credentials.create() answering `options`, as RegistrationResponseJSON."""
        self.user_handle = unb64(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        numbers = self.key.public_key().public_numbers()
        cose = {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big")}  # EC2, ES256, P-256 (RFC 9053)
        attested = (b"\0" * 16 + len(self.credential_id).to_bytes(2, "big")
                    + self.credential_id + encode_cbor(cose))
        auth_data = self._auth_data(rp_id, verified, _AT) + attested
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64(client_data),
                             "attestationObject": b64(attestation), "transports": ["internal"]}}

    def get(self, options: dict[str, Any], *, origin: str | None = None,
            rp_id: str | None = None, verified: bool = True, count: int | None = None,
            cross_origin: bool = False) -> dict[str, Any]:
        """navigator.credentials.get() answering `options`, as AuthenticationResponseJSON.
        The counter goes up by one, unless `count` says what to send."""
        if count is not None:
            self.sign_count = count
        elif self.counts:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", options["challenge"], origin,
                                        cross_origin)
        auth_data = self._auth_data(rp_id, verified, 0)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64(client_data), "authenticatorData": b64(auth_data),
                             "signature": b64(signature),
                             "userHandle": b64(self.user_handle) if self.user_handle else None}}

    def _client_data(self, kind: str, challenge: str, origin: str | None,
                     cross_origin: bool = False) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": cross_origin}).encode()

    def _auth_data(self, rp_id: str | None, verified: bool, extra_flags: int) -> bytes:
        flags = _UP | (_UV if verified else 0) | extra_flags
        count = self.sign_count if self.counts else 0
        return (hashlib.sha256((rp_id or self.rp_id).encode()).digest() + bytes([flags])
                + count.to_bytes(4, "big"))
