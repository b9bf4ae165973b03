"""RFC 9457 problem details: every error a client sees, with a stable `type`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from checkout.errors import Refused
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["Problem", "problem_response", "problem_body", "install_problem_handlers", "PROBLEM_BASE"]

PROBLEM_BASE = "https://livecart.dev/problems/"
_CONTENT_TYPE = "application/problem+json"


class Problem(Refused):
    """A refusal raised by the web layer itself, with response headers if it needs any.
    Every `Refused` (checkout/errors.py), this one included, is answered the same way."""

    def __init__(self, status: int, kind: str, detail: str = "", *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(status, kind, detail, **extra)
        self.headers = headers

    def as_response(self, headers: dict[str, str] | None = None) -> Response:
        return problem_response(self, {**(self.headers or {}), **(headers or {})})


def problem_body(refused: Refused) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + refused.kind,
        "title": refused.kind.replace("-", " ").capitalize(),
        "status": refused.status,
        "detail": refused.detail,
        **refused.extra,
    }


def problem_response(refused: Refused, headers: Mapping[str, str] | None = None) -> Response:
    """The problem+json answer to any refusal."""
    if headers is None:
        headers = getattr(refused, "headers", None)
    return Response(orjson.dumps(problem_body(refused)), status_code=refused.status,
                    media_type=_CONTENT_TYPE, headers=headers)


_STATUS_KINDS = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 409: "conflict", 413: "payload-too-large",
    415: "unsupported-media-type", 422: "unprocessable", 429: "too-many-requests",
}


async def _on_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return problem_response(exc)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _STATUS_KINDS.get(exc.status_code, "http-error")
    return problem_response(Problem(exc.status_code, kind, str(exc.detail)), headers=exc.headers)


def install_problem_handlers(app: Starlette) -> None:
    app.add_exception_handler(Refused, _on_refused)
    app.add_exception_handler(HTTPException, _on_http_exception)
