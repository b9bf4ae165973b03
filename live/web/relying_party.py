"""The node's own address as a request sees it: where mailed sign-in links point, and the
WebAuthn relying party that passkeys are bound to (its RP ID and origin)."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request

from live.accounts.passkey_auth import RelyingParty
from live.web.deps import services_of

__all__ = ["public_base", "relying_party"]

_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def public_base(request: Request) -> str:
    """The public URL; without one, the address the request came to only if it is a
    loopback one (a developer's machine, the tests), else the node's own base URL. Never a
    Host header from outside: a forged one would mail a victim a link to the forger's site,
    carrying the victim's sign-in token (or bind a passkey to the forger's name)."""
    settings = services_of(request).settings
    if settings.public_url:
        return str(settings.base_url)
    if request.url.hostname in _LOOPBACK:
        return f"{request.url.scheme}://{request.url.netloc}"
    return str(settings.base_url)


def relying_party(request: Request) -> RelyingParty:
    """RP ID: the public base's host name; origin: the public base. A passkey made here
    works only at that host: changing LIVECART_PUBLIC_URL's host orphans every passkey."""
    return RelyingParty.of(public_base(request))
