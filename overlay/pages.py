"""The pages people use: the storefront (home, creator profile, product page), the live
pages (viewer, host console, OBS source, brand dashboard and its orders, creator dashboard),
the sign-in page, and a buyer's own wallet, orders and receipt pages.
Plain ES modules and CSS from overlay/static (no build step); each page learns its hub URL
and ids from <meta> tags and its token from the URL fragment (never sent to the server,
so never in a log). This module renders them (no I/O beyond reading its own templates);
live/web/overlay_pages.py and live/web/pages.py serve them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import re
from html import escape
from importlib import resources

__all__ = ["PAGES", "PATHS", "BRAND_CONSOLE", "render", "content_security_policy", "static_dir"]

# page name -> (path parameter or None, title)
PAGES: dict[str, tuple[str | None, str]] = {
    "home": (None, "Live shopping"),
    "profile": ("creator", "Creator"),
    "product": ("product", "Product"),
    "viewer": ("stream", "Live"),
    "replay": ("stream", "Replay"),
    "host": ("stream", "Host console"),
    "obs": ("stream", "Overlay"),
    "brand": ("brand", "Brand dashboard"),
    "brand_orders": ("brand", "Orders"),
    "catalog": ("brand", "Catalog"),
    "creator": ("creator", "Creator"),
    "signin": ("", "Sign in"),  # not a PATHS page: live/web/auth_api.py serves it
    "invite": ("", "Invitation"),  # not a PATHS page: live/web/invite_api.py serves it
    # A signed-in buyer's own pages (live/web/account_pages.py serves them).
    "wallet": ("", "Your wallet"),
    "orders": ("", "Your orders"),
    "receipt": ("order", "Receipt"),
    # The creator studio and a brand's affiliate program (docs/affiliates.md).
    "studio": ("creator", "Creator studio"),
    "program": ("brand", "Affiliate program"),
    "api_docs": ("", "API reference"),  # not a PATHS page: live/web/docs_page.py serves it
    "webhooks": ("brand", "Webhooks"),
}
# Served by live/web/overlay_pages.py from the path alone; the product page needs the
# product first (live/web/pages.py).
PATHS = {"home": "/", "profile": "/c/{creator}", "viewer": "/s/{stream}", "replay": "/r/{stream}",
         "host": "/host/{stream}", "obs": "/obs/{stream}", "brand": "/brand/{brand}",
         "brand_orders": "/brand/{brand}/orders", "creator": "/creator/{creator}",
         "studio": "/studio/{creator}", "program": "/brand/{brand}/program",
         "webhooks": "/brand/{brand}/webhooks", "catalog": "/brand/{brand}/catalog"}


# What every page's <head> holds, after its viewport: filled in before title, ws and target.
_HEAD = """<meta name="livecart-ws" content="{{ws}}">
  <meta name="livecart-target" content="{{target}}">
  <title>{{title}} · livecart</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/base.css">"""


# The brand console's pages, as its nav lists them on each of them: (page, link text, link id).
BRAND_CONSOLE = (("brand", "Dashboard", "dashboard-link"), ("catalog", "Catalog", "catalog-link"),
                 ("brand_orders", "Orders", "orders-link"),
                 ("program", "Affiliate program", "program-link"),
                 ("webhooks", "Webhooks", "webhooks-link"))


def _brand_nav(current: str, brand: str) -> str:
    """The console's links, the current page marked for assistive tech and the eye."""
    links = []
    for page, text, link_id in BRAND_CONSOLE:
        href = escape(PATHS[page].replace("{brand}", brand), quote=True)
        here = ' aria-current="page"' if page == current else ""
        links.append(f'<a class="btn btn-secondary btn-small" id="{link_id}" href="{href}"{here}>'
                     f"{text}</a>")
    return ('<nav class="app-bar-actions console-nav" aria-label="Brand console">'
            + "".join(links) + "</nav>")


_SLOT = re.compile(r"\{\{(\w+)\}\}")


def _template(name: str) -> str:
    return resources.files("overlay").joinpath(f"templates/{name}.html").read_text("utf-8")


def render(name: str, target: str, ws: str, *, title: str | None = None,
           parts: Mapping[str, str] | None = None) -> str:
    """Page `name` for `target` (a stream, brand, creator or product id; "" for home),
    talking to hub `ws`. `parts` fills the template's other `{{slots}}` with HTML that
    the caller built and escaped (overlay/product_page.py)."""
    _, default_title = PAGES[name]
    slots = {**(parts or {}), "title": escape(title or default_title),
             "ws": escape(ws, quote=True), "target": escape(target, quote=True)}
    if any(page == name for page, _, _ in BRAND_CONSOLE):
        slots["brand_nav"] = _brand_nav(name, target)
    # One pass: text filled in is never read again as a slot (a title saying "{{ws}}").
    return _SLOT.sub(lambda m: slots[m.group(1)], _template(name).replace("{{head}}", _HEAD))


def content_security_policy(ws: str, third_party: Sequence[str] = ()) -> str:
    """Scripts and styles only from the node; the socket only to its hub. `third_party`:
    origins a page must admit for scripts, frames and connections (a payment gateway's
    card form), none by default."""
    extra = "".join(f" {origin}" for origin in third_party)
    return ("default-src 'self'; img-src * data:; style-src 'self'; "
            f"script-src 'self'{extra}; frame-src 'self'{extra}; "
            f"connect-src 'self' {ws}{extra}; media-src 'self' blob:; base-uri 'none'; "
            "frame-ancestors *")


def static_dir() -> str:
    return str(resources.files("overlay").joinpath("static"))
