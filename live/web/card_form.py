"""What the pages' card form needs from the node: which gateway takes the card, and which
origins the pages holding the form must let in (docs/checkout.md, "The card form").

- sandbox: the form posts the card to `/sandbox/tokens` (live/web/sandbox_api.py).
- stripe: the form is Stripe.js's card Element, loaded from `stripe_js_url` with the
  publishable key; the card goes to Stripe only (a SetupIntent confirmed in the page,
  live/web/stripe_api.py). The pages' Content-Security-Policy then admits Stripe.js's
  origin for scripts and frames and Stripe's API for connections, and nothing else.

`GET /api/v1/payments/config` (public) tells overlay/static/card_form.js which one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response

from live.settings import Settings
from live.web.api import Api, Call, json_response

__all__ = ["register", "card_form_origins", "CARD_FORM_PAGES"]

# The pages that hold the card form: the viewer's buy sheet and the wallet.
CARD_FORM_PAGES = frozenset({"viewer", "wallet"})
_STRIPE_API = "https://api.stripe.com"
_STRIPE_HOOKS = "https://hooks.stripe.com"  # Stripe.js's 3-D Secure frames


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def card_form_origins(settings: Settings) -> tuple[str, ...]:
    """The third-party origins the card form's pages admit (none with the sandbox)."""
    if settings.payments != "stripe":
        return ()
    origins = {_origin(settings.stripe_js_url), _origin(settings.stripe_api_base or _STRIPE_API)}
    if settings.stripe_api_base is None:  # Stripe's own: its authentication frames too
        origins.add(_STRIPE_HOOKS)
    return tuple(sorted(origins))


def _config(settings: Settings) -> dict[str, Any]:
    if settings.payments == "stripe":
        return {"gateway": "stripe", "publishable_key": settings.stripe_publishable_key,
                "js_url": settings.stripe_js_url}
    return {"gateway": "sandbox", "tokenizer": "/sandbox/tokens"}


def register(api: Api) -> None:
    @api.endpoint("GET", "/payments/config", summary="How the pages' card form takes a card",
                  tag="buy")
    async def payments_config(call: Call[Any]) -> Response:
        response = json_response(_config(call.services.settings))
        response.headers["Cache-Control"] = "no-cache"
        return response
