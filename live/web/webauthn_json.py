"""The JSON forms of WebAuthn answers that pages send (W3C WebAuthn L3 section 5.1:
RegistrationResponseJSON, AuthenticationResponseJSON), validated at the edge: bytes as
base64url without padding (RFC 4648 section 5), each with a bound. What they mean is
checked by py_webauthn (live/accounts/passkey_auth.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from checkout.models import StrictModel

__all__ = ["AssertionIn", "AttestationIn"]

_B64URL = r"^[A-Za-z0-9_-]+$"
# A credential id is at most 1023 bytes (WebAuthn L3 section 4, "Credential ID").
CredentialId = Annotated[str, StringConstraints(min_length=1, max_length=1400, pattern=_B64URL)]
UserHandle = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_B64URL)]
Signature = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=_B64URL)]
Data = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=_B64URL)]
# An attestation object may carry a certificate chain.
AttestationObject = Annotated[str, StringConstraints(min_length=1, max_length=16384,
                                                     pattern=_B64URL)]
Transport = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z-]+$")]
Attachment = Literal["platform", "cross-platform"]


class AttestationResponseIn(StrictModel):
    clientDataJSON: Data
    attestationObject: AttestationObject
    transports: Annotated[list[Transport], Field(max_length=8)] = []
    # What a browser's toJSON() adds; the attestation object holds all of it already.
    authenticatorData: Data | None = None
    publicKey: Data | None = None
    publicKeyAlgorithm: Annotated[int, Field(ge=-65536, le=65535)] | None = None


class AssertionResponseIn(StrictModel):
    clientDataJSON: Data
    authenticatorData: Data
    signature: Signature
    userHandle: UserHandle | None = None


class AttestationIn(StrictModel):
    """What navigator.credentials.create() made, as JSON."""

    id: CredentialId
    rawId: CredentialId
    type: Literal["public-key"]
    response: AttestationResponseIn
    authenticatorAttachment: Attachment | None = None
    clientExtensionResults: dict[str, Any] = {}


class AssertionIn(StrictModel):
    """What navigator.credentials.get() answered, as JSON."""

    id: CredentialId
    rawId: CredentialId
    type: Literal["public-key"]
    response: AssertionResponseIn
    authenticatorAttachment: Attachment | None = None
    clientExtensionResults: dict[str, Any] = {}
