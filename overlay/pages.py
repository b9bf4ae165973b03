"""The pages people use: viewer, host console, OBS source, brand dashboard, creator page,
and the sign-in page.
Plain ES modules and CSS from overlay/static (no build step); each page learns its hub URL
and ids from <meta> tags and its token from the URL fragment (never sent to the server,
so never in a log). This module renders them (no I/O beyond reading its own templates);
live/web/overlay_pages.py serves them."""

from __future__ import annotations

from html import escape
from importlib import resources

__all__ = ["PAGES", "PATHS", "render", "content_security_policy", "static_dir"]

# page name -> (path parameter, title)
PAGES = {
    "viewer": ("stream", "Live"),
    "host": ("stream", "Host console"),
    "obs": ("stream", "Overlay"),
    "brand": ("brand", "Brand dashboard"),
    "creator": ("creator", "Creator"),
    "signin": ("", "Sign in"),  # not a PATHS page: live/web/auth_api.py serves it
    "invite": ("", "Invitation"),  # not a PATHS page: live/web/invite_api.py serves it
}
PATHS = {"viewer": "/s/{stream}", "host": "/host/{stream}", "obs": "/obs/{stream}",
         "brand": "/brand/{brand}", "creator": "/creator/{creator}"}


# What every page's <head> holds, after its viewport: filled in before title, ws and target.
_HEAD = """<meta name="livecart-ws" content="{{ws}}">
  <meta name="livecart-target" content="{{target}}">
  <title>{{title}} · livecart</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/base.css">"""


def _template(name: str) -> str:
    return resources.files("overlay").joinpath(f"templates/{name}.html").read_text("utf-8")


def render(name: str, target: str, ws: str) -> str:
    """Page `name` for `target` (a stream, brand or creator id), talking to hub `ws`."""
    _, title = PAGES[name]
    return (_template(name)
            .replace("{{head}}", _HEAD)
            .replace("{{title}}", escape(title))
            .replace("{{ws}}", escape(ws, quote=True))
            .replace("{{target}}", escape(target, quote=True)))


def content_security_policy(ws: str) -> str:
    """Scripts and styles only from the node; the socket only to its hub."""
    return ("default-src 'self'; img-src * data:; style-src 'self'; "
            f"connect-src 'self' {ws}; media-src 'self' blob:; base-uri 'none'; "
            "frame-ancestors *")


def static_dir() -> str:
    return str(resources.files("overlay").joinpath("static"))
