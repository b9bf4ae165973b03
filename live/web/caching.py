"""HTTP caching for what the node serves to caches and CDNs (images, HLS): one header for
what never changes, and the conditional GET check."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["IMMUTABLE", "etag_matches"]

IMMUTABLE = "public, max-age=31536000, immutable"  # content-named: never changes


def etag_matches(request: Request, etag: str) -> bool:
    """The request's If-None-Match names `etag`: answer 304."""
    return etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
