"""The HTTP API's plumbing: typed endpoints, body limits, auth, and the OpenAPI document.

An endpoint is declared once with its body model, its parameters, its roles and its
summary; the same declaration builds the starlette route and the OpenAPI entry, so the two
cannot drift: every schema in the document is a type the server validates with, and a
limit that is a node setting (`Capped`) is documented with this node's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Awaitable, Callable, Generic, Literal, TypeVar, get_args

import orjson
import pydantic
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from checkout.ids import ID_PATTERN
from checkout.models import StrictModel
from live.accounts.api_keys import is_api_key
from live.accounts.auth import AuthError, Principal, Role, bearer_token_of
from live.web.deps import WebServices, services_of
from live.web.problems import PROBLEM_BASE, Problem
from live.web.session_auth import require_session, session_principal
from live.settings import Settings

__all__ = ["Api", "Call", "Capped", "IdStr", "Param", "json_response", "read_body", "read_json"]

IdStr = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
# JSON Schema counts 802.0 as an integer (draft 2020-12, section 6.1.1); the server does not,
# so the document says it in words.
_STRICT_INTEGER = "a JSON integer: 802, never 802.0 or \"802\""
_QUERY_INTEGER = "decimal digits: 802, never 802.0, +802 or 8.02e2"
_QUERY_INT = re.compile(r"-?[0-9]{1,20}")

Body = TypeVar("Body", bound=pydantic.BaseModel)
Handler = Callable[["Call[Any]"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Call(Generic[Body]):
    """What a handler gets: the request, who made it (if anyone), the validated body, and
    the node's services (looked up once per request: handlers reach them many times)."""

    request: Request
    principal: Principal | None
    body: Body
    params: Mapping[str, Any]  # the declared path, query and header parameters, validated
    services: WebServices
    # The request carried an Authorization header (an API client, not a page session).
    by_header: bool = False

    def param(self, name: str) -> Any:
        return self.params[name]

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
    headers = request.headers
    return await _read_body(request, headers.get("content-type"), headers.get("content-length"),
                            media_type, max_bytes)


async def _read_body(request: Request, ctype: str | None, declared: str | None,
                     media_type: str, max_bytes: int) -> bytes:
    """`read_body`, given the request's Content-Type and Content-Length (None: absent)."""
    if (ctype or "").split(";")[0].strip().lower() != media_type:
        raise Problem(415, "unsupported-media-type", f"send the body as {media_type}")
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
    headers = request.headers
    return await _read_json(request, model, max_bytes, headers.get("content-type"),
                            headers.get("content-length"))


async def _read_json(request: Request, model: type[Body], max_bytes: int, ctype: str | None,
                     declared: str | None) -> Body:
    """`read_json`, given the request's Content-Type and Content-Length (None: absent)."""
    raw = await _read_body(request, ctype, declared, "application/json", max_bytes)
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


@dataclass(frozen=True, slots=True)
class Capped:
    """In an `Annotated` int (a parameter's type or a body's top-level field): the node's
    setting of that name lowers the maximum. The document states this node's value."""

    setting: str


@dataclass(frozen=True, slots=True)
class Param:
    """A path, query or header parameter. Its type is the one statement of what it may be:
    the document's schema comes from it and the server validates every request with it
    (off-type paths are 404, headers and queries 400) before the handler runs."""

    name: str
    where: Literal["path", "query", "header"]
    type: Any = IdStr
    default: Any = None  # a query parameter's value when it is absent; None: required
    adapter: pydantic.TypeAdapter[Any] = field(init=False, repr=False, compare=False)
    integer: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        adapter = pydantic.TypeAdapter(self.type)
        object.__setattr__(self, "adapter", adapter)
        object.__setattr__(self, "integer", adapter.json_schema().get("type") == "integer")

    def schema(self, settings: Settings) -> dict[str, Any]:
        schema = self.adapter.json_schema(schema_generator=_Schema)
        if self.integer:
            schema["description"] = _QUERY_INTEGER
        cap = self.cap(settings)
        if cap is not None:
            schema = _capped(schema, cap)
        if self.default is not None:
            schema["default"] = self.value_if_absent(settings)
        return schema

    def cap(self, settings: Settings) -> int | None:
        return _cap(get_args(self.type)[1:], settings)

    def value_if_absent(self, settings: Settings) -> Any:
        cap = self.cap(settings)
        return self.default if cap is None else min(self.default, cap)

    def read(self, request: Request, settings: Settings) -> Any:
        raw = (request.path_params if self.where == "path" else
               request.query_params if self.where == "query" else request.headers).get(self.name)
        return self.parse(raw, self.cap(settings))

    def parse(self, raw: str | None, cap: int | None) -> Any:
        """The value sent (None: absent) validated, with `cap` this node's `cap(settings)`."""
        if raw is None and self.default is not None:
            return self.default if cap is None else min(self.default, cap)
        if raw is None:
            raise self._problem("missing", f"the {self.where} parameter {self.name} is required")
        if self.integer and not _QUERY_INT.fullmatch(raw):
            raise self._problem("invalid", f"{self.name} must be an integer")
        try:
            value = self.adapter.validate_python(int(raw) if self.integer else raw, strict=True)
        except pydantic.ValidationError as exc:
            raise self._problem("invalid", f"{self.name}: {exc.errors()[0]['msg']}") from None
        if cap is not None and value > cap:
            raise self._problem("invalid", f"{self.name} is at most {cap}")
        return value

    def _problem(self, what: str, detail: str) -> Problem:
        if self.where == "path":
            return Problem(404, "not-found", f"no such {self.name}")
        if self.where == "query":
            return Problem(400, "bad-query", detail)
        return Problem(400, f"{self.name.lower()}-{what}", detail)


class _Schema(GenerateJsonSchema):
    """Pydantic's JSON Schema, plus what JSON Schema cannot enforce, stated in words."""

    def int_schema(self, schema: core_schema.IntSchema) -> JsonSchemaValue:
        return {**super().int_schema(schema), "description": _STRICT_INTEGER}


def _cap(metadata: Any, settings: Settings) -> int | None:
    caps = [getattr(settings, m.setting) for m in metadata if isinstance(m, Capped)]
    return min(caps) if caps else None


def _capped(schema: dict[str, Any], cap: int) -> dict[str, Any]:
    if "anyOf" in schema:
        return {**schema, "anyOf": [_capped(s, cap) for s in schema["anyOf"]]}
    if schema.get("type") != "integer":
        return schema
    return {**schema, "maximum": min(cap, schema.get("maximum", cap))}


def _body_caps(model: type[pydantic.BaseModel], settings: Settings) -> dict[str, int]:
    """The model's top-level fields that a node setting caps, with this node's cap."""
    caps = {name: _cap(info.metadata, settings) for name, info in model.model_fields.items()}
    return {name: cap for name, cap in caps.items() if cap is not None}


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
    session: bool  # the page session's own: its cookie (and CSRF token on changes) first
    tag: str
    status: int
    params: tuple[Param, ...]  # every path parameter, then the declared query and headers
    raw_body: str | None  # a non-JSON body's media type; the handler reads the body itself
    response_media: str
    optional_body: bool  # a request without a body gets the body model's defaults
    scope: str  # what an API key needs to call it: `tag:read` (GET) or `tag:write`


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
                 session: bool = False, status: int = 200, params: tuple[Param, ...] = (),
                 raw_body: str | None = None, optional_body: bool = False,
                 scope: str | None = None,
                 response_media: str = "application/json") -> Callable[[Handler], Handler]:
        """`params` declares the query and header parameters, and any path parameter that
        is not an id (`IdStr`). `session`: only a signed-in page's session may call it, and
        its cookie, CSRF token and Origin are checked before anything else is read.
        `optional_body`: the body may be left out (every field of `body` has a default).
        `scope`: what an API key needs, when not `tag:read` (GET) or `tag:write` (the rest)."""
        declared = {p.name: p for p in params}
        in_path = [declared.pop(name, Param(name, "path"))
                   for name in re.findall(r"{(\w+)}", path)]
        if {p.where for p in in_path} - {"path"} or "path" in {p.where for p in declared.values()}:
            raise ValueError(f"{method} {path}: path parameters and the path disagree")
        spec = _Endpoint(method.upper(), path, summary, body, roles, optional_auth, session, tag,
                         status, (*in_path, *declared.values()), raw_body, response_media,
                         optional_body, scope or _scope_of(tag, method))
        if optional_body and (body is None or body.model_fields and any(
                f.is_required() for f in body.model_fields.values())):
            raise ValueError(f"{method} {path}: an optional body needs a model of defaults")

        def register(handler: Handler) -> Handler:
            self._endpoints.append((spec, handler))
            return handler

        return register

    def routes(self, settings: Settings) -> list[Route]:
        """One route per path, dispatching on the method, so a 405 lists every method."""
        by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
        for spec, handler in self._endpoints:
            by_path.setdefault(spec.path, {})[spec.method] = _wrap(spec, handler, settings)
        return [Route(self.prefix + path, _dispatch(methods), methods=list(methods))
                for path, methods in by_path.items()]

    def openapi(self, settings: Settings | None = None) -> dict[str, Any]:
        """The document for a node with these settings (the defaults if none)."""
        settings = settings or Settings()
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
            if spec.params:
                op["parameters"] = [_parameter(p, settings) for p in spec.params]
            if spec.roles is not None:
                # A bearer token, or a page session's cookie (with X-CSRF-Token on changes).
                op["security"] = [{"bearer": []}, {"session": []}]
                op["description"] = "roles: " + ", ".join(r.value for r in spec.roles)
            if spec.session:  # a page session's cookie, with X-CSRF-Token on changes
                op["security"] = [{"session": []}]
            if spec.body is not None:
                schema = spec.body.model_json_schema(ref_template="#/components/schemas/{model}",
                                                     schema_generator=_Schema)
                schemas.update(schema.pop("$defs", {}))
                for name, cap in _body_caps(spec.body, settings).items():
                    schema["properties"][name] = _capped(schema["properties"][name], cap)
                schemas[spec.body.__name__] = schema
                op["requestBody"] = {"required": not spec.optional_body, "content": {"application/json": {
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
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "session": {"type": "apiKey", "in": "cookie", "name": "lc_session"}}},
        }


_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {"type": {"type": "string", "format": "uri", "example": PROBLEM_BASE + "sold-out"},
                   "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}},
}


def _parameter(param: Param, settings: Settings) -> dict[str, Any]:
    return {"name": param.name, "in": param.where, "required": param.default is None,
            "schema": param.schema(settings)}


def _scope_of(tag: str, method: str) -> str:
    return f"{tag}:{'read' if method.upper() in ('GET', 'HEAD') else 'write'}"


def _wrap(spec: _Endpoint, handler: Handler,
          settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    caps = _body_caps(spec.body, settings) if spec.body is not None else {}
    # Each parameter with where its value is found and this node's cap, worked out once.
    readers = tuple((p, p.where, p.name.lower() if p.where == "header" else p.name,
                     p.cap(settings)) for p in spec.params)
    # The headers this endpoint reads itself, by their raw (lower-case) ASGI names.
    wanted = {name.encode("latin-1"): name for name in (
        "authorization", "content-type", "content-length", "transfer-encoding",
        *(key for _, where, key, _ in readers if where == "header"))}

    async def endpoint(request: Request) -> Response:
        if spec.session:
            await require_session(request)  # 401, or 403 (CSRF, Origin), before the body
        services = services_of(request)
        headers = _headers(request.scope, wanted)
        principal = await _authenticate(request, spec, services, headers)
        params: dict[str, Any] = {}
        for param, where, key, cap in readers:
            raw = (headers.get(key) if where == "header" else
                   (request.path_params if where == "path" else request.query_params).get(key))
            params[param.name] = param.parse(raw, cap)
        body: pydantic.BaseModel
        if spec.body is None:
            body = _NO_BODY
        elif spec.optional_body and _no_body(headers):
            body = spec.body()
        else:
            body = await _read_json(request, spec.body, settings.max_body_bytes,
                                    headers.get("content-type"), headers.get("content-length"))
        for name, cap in caps.items():
            if (getattr(body, name) or 0) > cap:
                raise Problem(422, f"{name.replace('_', '-')}-too-large",
                              f"{name} is at most {cap} on this node")
        return await handler(Call(request, principal, body, params, services,
                                  "authorization" in headers))

    endpoint.__name__ = handler.__name__
    return endpoint


_NO_BODY = _NoBody()


def _headers(scope: Mapping[str, Any], wanted: Mapping[bytes, str]) -> dict[str, str]:
    """The `wanted` headers' values, in one pass over the raw ASGI headers instead of a
    starlette `Headers` scan per look-up. As `Headers.get` does: the first of a repeated
    header, names matched as sent (the server lower-cases them, as ASGI asks)."""
    found: dict[str, str] = {}
    for key, value in scope["headers"]:
        name = wanted.get(key)
        if name is not None and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _no_body(headers: Mapping[str, str]) -> bool:
    """Nothing sent: no Content-Type and no (or a zero) Content-Length."""
    return ("content-type" not in headers
            and headers.get("content-length", "0") == "0"
            and "transfer-encoding" not in headers)


def _dispatch(methods: dict[str, Callable[[Request], Awaitable[Response]]]
              ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = request.method
        if method == "HEAD" and "HEAD" not in methods:
            method = "GET"  # starlette routes HEAD to GET routes; the server drops the body
        return await methods[method](request)

    return endpoint


async def _authenticate(request: Request, spec: _Endpoint, services: WebServices,
                        headers: Mapping[str, str]) -> Principal | None:
    """The Authorization header first; without one, the page session's cookie (with its
    CSRF and Origin checks on unsafe methods: live/web/session_auth.py). A brand's API key
    reaches only the endpoints its scopes name."""
    if spec.roles is None and not spec.optional_auth:
        return None
    authorization = headers.get("authorization")
    if authorization is not None:
        principal = await _verify_bearer(services, authorization)
    else:
        session = await session_principal(request)
        if session is None and spec.optional_auth:
            return None
        principal = session if session is not None else await _verify_bearer(services, None)
    if spec.roles is not None and principal.role not in spec.roles:
        raise Problem(403, "forbidden", f"this needs the role {' or '.join(r.value for r in spec.roles)}")
    if principal.scopes is not None and spec.scope not in principal.scopes:
        raise Problem(403, "scope-missing", f"this API key lacks the scope {spec.scope}",
                      scope=spec.scope)
    return principal


async def verify_bearer(request: Request) -> Principal:
    """The request's verified principal (a token, or a brand's API key), or a 401 problem
    that says what was wrong."""
    return await _verify_bearer(services_of(request), request.headers.get("authorization"))


async def _verify_bearer(services: WebServices, authorization: str | None) -> Principal:
    """`verify_bearer`, given the request's Authorization header (None: absent)."""
    try:
        token = bearer_token_of(authorization)
        if is_api_key(token):
            return await services.api_keys.verify(token)
        return services.tokens.verify(token)
    except AuthError as exc:
        # RFC 6750 section 3: a 401 names the scheme and what was wrong.
        error = "" if exc.reason == "missing_token" else ', error="invalid_token"'
        raise Problem(401, "unauthorized", f"token rejected: {exc.reason}",
                      headers={"WWW-Authenticate": f'Bearer realm="livecart"{error}'}) from None
