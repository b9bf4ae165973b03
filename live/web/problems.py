"""RFC 9457 problem details: every error a client sees, with a stable `type`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["Problem", "problem_response", "install_problem_handlers", "PROBLEM_BASE"]

PROBLEM_BASE = "https://livecart.dev/problems/"
_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """An error meant for the client. `kind` becomes the stable `type` URI's last segment."""

    def __init__(self, status: int, kind: str, detail: str = "", *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or kind)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "type": PROBLEM_BASE + self.kind,
            "title": self.kind.replace("-", " ").capitalize(),
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }

    def as_response(self, headers: dict[str, str] | None = None) -> Response:
        return problem_response(self, {**(self.headers or {}), **(headers or {})})


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(problem.body()), status_code=problem.status,
                    media_type=_CONTENT_TYPE, headers=headers)


_STATUS_KINDS = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 409: "conflict", 413: "payload-too-large",
    415: "unsupported-media-type", 422: "unprocessable", 429: "too-many-requests",
}


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.as_response()


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _STATUS_KINDS.get(exc.status_code, "http-error")
    return problem_response(Problem(exc.status_code, kind, str(exc.detail)), headers=exc.headers)


def install_problem_handlers(app: Any) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(HTTPException, _on_http_exception)
