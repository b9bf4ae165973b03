"""The HTTP API's plumbing: typed endpoints, body limits, auth, and the OpenAPI document.

An endpoint is declared once with its body model, its roles and its summary; the same
declaration builds the starlette route and the OpenAPI entry, so the two cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, TypeVar

import orjson
import pydantic
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.auth import AuthError, Principal, Role, bearer_token
from live.problems import PROBLEM_BASE, Problem

__all__ = ["Api", "Call", "json_response", "read_body", "read_json", "StrictModel"]

Body = TypeVar("Body", bound=pydantic.BaseModel)
Handler = Callable[["Call[Any]"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Call(Generic[Body]):
    """What a handler gets: the request, who made it (if anyone), the validated body."""

    request: Request
    principal: Principal | None
    body: Body

    def param(self, name: str) -> str:
        return self.request.path_params[name]

    @property
    def services(self) -> Any:
        return self.request.app.state.services

    def need_principal(self) -> Principal:
        if self.principal is None:
            raise Problem(401, "unauthorized", "a bearer token is required")
        return self.principal


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


async def read_body(request: Request, media_type: str, max_bytes: int) -> bytes:
    """The body, if it is `media_type` (415 otherwise) and at most `max_bytes` (413), which
    is checked against Content-Length first and against what arrives in any case."""
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != media_type:
        raise Problem(415, "unsupported-media-type", f"send the body as {media_type}")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise Problem(413, "payload-too-large", f"the body limit is {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Problem(413, "payload-too-large", f"the body limit is {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, model: type[Body], max_bytes: int) -> Body:
    """Read a capped JSON body and validate it; every failure is a 4xx problem."""
    raw = await read_body(request, "application/json", max_bytes)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Problem(400, "malformed-json", "the body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise Problem(422, "validation-error", "the body has invalid fields", errors=errors) from None


class StrictModel(pydantic.BaseModel):
    """Request bodies: unknown fields refused, no coercion ("5" is not 5)."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


class _NoBody(StrictModel):
    pass


@dataclass(frozen=True, slots=True)
class _Endpoint:
    method: str
    path: str
    summary: str
    body: type[pydantic.BaseModel] | None
    roles: tuple[Role, ...] | None  # None: public
    optional_auth: bool
    tag: str
    status: int
    headers: tuple[str, ...]
    raw_body: str | None  # a non-JSON body's media type; the handler reads the body itself
    response_media: str


class Api:
    """Collects endpoints; `routes()` gives starlette routes, `openapi()` the document."""

    def __init__(self, title: str, version: str, prefix: str = "/api/v1") -> None:
        self.title = title
        self.version = version
        self.prefix = prefix
        self._endpoints: list[tuple[_Endpoint, Handler]] = []

    def endpoint(self, method: str, path: str, *, summary: str, tag: str,
                 body: type[pydantic.BaseModel] | None = None,
                 roles: tuple[Role, ...] | None = None, optional_auth: bool = False,
                 status: int = 200, headers: tuple[str, ...] = (), raw_body: str | None = None,
                 response_media: str = "application/json") -> Callable[[Handler], Handler]:
        spec = _Endpoint(method.upper(), path, summary, body, roles, optional_auth, tag, status,
                         headers, raw_body, response_media)

        def register(handler: Handler) -> Handler:
            self._endpoints.append((spec, handler))
            return handler

        return register

    def routes(self, max_body_bytes: int) -> list[Route]:
        """One route per path, dispatching on the method, so a 405 lists every method."""
        by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
        for spec, handler in self._endpoints:
            by_path.setdefault(spec.path, {})[spec.method] = _wrap(spec, handler, max_body_bytes)
        return [Route(self.prefix + path, _dispatch(methods), methods=list(methods))
                for path, methods in by_path.items()]

    def openapi(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        schemas: dict[str, Any] = {"Problem": _PROBLEM_SCHEMA}
        for spec, handler in self._endpoints:
            problem = {"application/problem+json": {
                "schema": {"$ref": "#/components/schemas/Problem"}}}
            success: dict[str, Any] = {"description": "success"}
            if spec.status >= 400:  # an endpoint that only refuses (e.g. trickle ICE)
                success = {"description": "refused", "content": problem}
            elif spec.response_media != "application/json":
                success["content"] = {spec.response_media: {"schema": {"type": "string"}}}
            op: dict[str, Any] = {
                "operationId": handler.__name__, "summary": spec.summary, "tags": [spec.tag],
                "responses": {str(spec.status): success,
                              "4XX": {"description": "problem", "content": problem}},
            }
            params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                      for n in re.findall(r"{(\w+)}", spec.path)]
            params += [{"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                       for h in spec.headers]
            if params:
                op["parameters"] = params
            if spec.roles is not None:
                op["security"] = [{"bearer": []}]
                op["description"] = "roles: " + ", ".join(r.value for r in spec.roles)
            if spec.body is not None:
                schema = spec.body.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[spec.body.__name__] = schema
                op["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{spec.body.__name__}"}}}}
            elif spec.raw_body is not None:
                op["requestBody"] = {"required": True, "content": {spec.raw_body: {
                    "schema": {"type": "string"}}}}
            paths.setdefault(self.prefix + spec.path, {})[spec.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        }


_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {"type": {"type": "string", "format": "uri", "example": PROBLEM_BASE + "sold-out"},
                   "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}},
}


def _wrap(spec: _Endpoint, handler: Handler, max_body_bytes: int) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        principal = _authenticate(request, spec)
        body: pydantic.BaseModel = (await read_json(request, spec.body, max_body_bytes)
                                    if spec.body is not None else _NO_BODY)
        return await handler(Call(request, principal, body))

    endpoint.__name__ = handler.__name__
    return endpoint


_NO_BODY = _NoBody()


def _dispatch(methods: dict[str, Callable[[Request], Awaitable[Response]]]
              ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = request.method
        if method == "HEAD" and "HEAD" not in methods:
            method = "GET"  # starlette routes HEAD to GET routes; the server drops the body
        return await methods[method](request)

    return endpoint


def _authenticate(request: Request, spec: _Endpoint) -> Principal | None:
    if spec.roles is None and not spec.optional_auth:
        return None
    if spec.optional_auth and "authorization" not in request.headers:
        return None
    principal = verify_bearer(request)
    if spec.roles is not None and principal.role not in spec.roles:
        raise Problem(403, "forbidden", f"this needs the role {' or '.join(r.value for r in spec.roles)}")
    return principal


def verify_bearer(request: Request) -> Principal:
    """The request's verified principal, or a 401 problem that says what was wrong."""
    try:
        return request.app.state.services.tokens.verify(bearer_token(request.headers))
    except AuthError as exc:
        # RFC 6750 section 3: a 401 names the scheme and what was wrong.
        error = "" if exc.reason == "missing_token" else ', error="invalid_token"'
        raise Problem(401, "unauthorized", f"token rejected: {exc.reason}",
                      headers={"WWW-Authenticate": f'Bearer realm="livecart"{error}'}) from None
