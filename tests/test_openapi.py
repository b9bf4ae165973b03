"""The OpenAPI document: valid OpenAPI 3.1, complete, and honest about errors.

The document is built from the same declarations as the routes (live/web/api.py), so these
tests guard the builder: every /api/v1 route appears, every 4xx is a problem, the schemas
resolve, and what the document says a call returns is what the server sends.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import pytest
from conftest import TEST_SECRET, Live
from shop import give_wallet, idem, make_brand, make_live_stream, make_product
from starlette.routing import Route
from test_bad_input import body_schema_name, fill, headers_for, make_shop, valid_body

from checkout.money import CURRENCIES
from live.node.app import build_api, build_auth_api, create_app, openapi_document
from live.web.problems import PROBLEM_BASE
from live.settings import Settings

OPENAPI_URL = "/api/v1/openapi.json"
# The endpoints whose body is an image's raw bytes (live/web/image_api.py reads them).
IMAGE_UPLOADS = {("POST", "/api/v1/products/{product}/images"),
                 ("POST", "/api/v1/streams/{stream}/cover")}


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in doc["paths"].items()
            for method, op in ops.items()]


def app_routes(tmp_path: Path, prefix: str = "/api/v1/") -> set[tuple[str, str]]:
    """(method, path) of every route under `prefix` the app serves; building it does no I/O."""
    app = create_app(Settings(jwt_secret=TEST_SECRET, data_dir=tmp_path))
    found = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith(prefix):
            for method in route.methods or ():
                if method != "HEAD":  # starlette adds HEAD to every GET
                    found.add((method, route.path))
    return found


async def test_served_document_is_valid_openapi_3_1(live: Live) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    r = await live.http.get(OPENAPI_URL)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["openapi"].startswith("3.1.")
    validator.validate(doc, cls=validator.OpenAPIV31SpecValidator)
    assert doc == openapi_document(live.services.settings)  # /api/v1 and /auth


def test_every_api_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    doc = build_api().openapi()
    documented = {(m, p) for m, p, _ in operations(doc)}
    served = app_routes(tmp_path)
    # The document does not describe itself.
    assert served - documented == {("GET", OPENAPI_URL)}
    assert documented - served == set()
    # The pages' /auth endpoints are in the served document too (the sign-in page is not).
    auth = {(m, p) for m, p, _ in operations(build_auth_api().openapi())}
    served_auth = app_routes(tmp_path, "/auth/") - {("GET", "/auth/email/verify")}
    assert auth == served_auth and len(auth) == 16


def test_operations_are_uniquely_named_and_fully_parameterised() -> None:
    doc = build_api().openapi()
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    for method, path, op in operations(doc):
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
        assert op.get("summary") and op.get("tags"), (method, path)
        if "security" in op:
            assert re.fullmatch(r"roles: [a-z]+(, [a-z]+)*", op["description"]), (method, path)
            assert all(next(iter(s)) in doc["components"]["securitySchemes"]
                       for s in op["security"])
        if method in ("GET", "DELETE"):
            assert "requestBody" not in op, (method, path)


def test_every_4xx_is_a_problem() -> None:
    doc = build_api().openapi()
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for method, path, op in operations(doc):
        errors = {code: resp for code, resp in op["responses"].items() if code.startswith("4")}
        assert errors, f"{method} {path} documents no 4xx"
        for code, resp in errors.items():
            assert resp["content"] == {"application/problem+json": {"schema": problem_ref}}, \
                (method, path, code)
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) >= {"type", "title", "status"}
    assert problem["properties"]["type"]["format"] == "uri"


def test_every_request_body_schema_resolves() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    doc = build_api().openapi()
    schemas = doc["components"]["schemas"]
    for method, path, op in operations(doc):
        if "requestBody" not in op:
            continue
        content = op["requestBody"]["content"]
        if "/whip" in path or "/whep" in path:  # WebRTC offers: SDP text, not JSON
            assert content == {"application/sdp": {"schema": {"type": "string"}}}
            continue
        if (method, path) in IMAGE_UPLOADS:  # an image's bytes
            assert content == {"image/*": {"schema": {"type": "string"}}}
            continue
        assert list(content) == ["application/json"], (method, path)
        ref = content["application/json"]["schema"]["$ref"]
        schema = schemas[ref.rsplit("/", 1)[1]]
        # Strict bodies: the document says what the server enforces about unknown fields.
        assert schema.get("additionalProperties") is False, (method, path)
        jsonschema.Draft202012Validator.check_schema({**schema, "$defs": schemas})


async def test_real_problems_match_the_problem_schema(live: Live) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    doc = (await live.http.get(OPENAPI_URL)).json()
    problem = doc["components"]["schemas"]["Problem"]
    checker = jsonschema.Draft202012Validator(problem,
                                              format_checker=jsonschema.FormatChecker())
    replies = [
        await live.http.get("/api/v1/products/nope"),  # 404 from a handler
        await live.http.get("/api/v1/no-such-route"),  # 404 from the router
        await live.http.delete("/api/v1/buy"),  # 405 from the router
        await live.http.get("/api/v1/me/wallet"),  # 401
        await live.http.post("/api/v1/brands", headers=live.auth("buyer", "b")),  # 403
        await live.http.post("/api/v1/brands", headers={**live.auth("operator", "o"),
                                                        "content-type": "application/json"},
                             content=b"{"),  # 400
        await live.http.post("/api/v1/brands", headers=live.auth("operator", "o"),
                             json={"id": 1}),  # 422 with field errors
    ]
    for r in replies:
        assert 400 <= r.status_code < 500
        assert r.headers["content-type"] == "application/problem+json"
        checker.validate(r.json())


async def test_documented_success_codes_are_what_the_server_sends(live: Live) -> None:
    doc = build_api().openapi()
    await make_brand(live)
    product = await make_product(live)
    await give_wallet(live, "bob")
    r = await live.http.post("/api/v1/buy", json={"product_id": product["id"]},
                             headers={**live.auth("buyer", "bob"), "Idempotency-Key": idem()})
    assert "201" in doc["paths"]["/api/v1/buy"]["post"]["responses"]
    assert r.status_code == 201, r.text
    r = await live.http.post("/api/v1/brands", json={"id": "b2", "name": "B", "currency": "USD"},
                             headers=live.auth("operator", "ops"))
    assert "201" in doc["paths"]["/api/v1/brands"]["post"]["responses"]
    assert r.status_code == 201, r.text


async def test_documented_204s(live: Live) -> None:
    doc = build_api().openapi()
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    cleo, bob = live.auth("creator", "cleo"), live.auth("buyer", "bob")
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/deals", headers=cleo, json={
        "product_id": product["id"], "price_minor": 100, "quantity": 1, "countdown_s": 10,
        "duration_s": 60})
    assert r.status_code == 201, r.text
    r = await live.http.post("/api/v1/cart/items", json={"product_id": product["id"]},
                             headers={**bob, "Idempotency-Key": idem()})
    assert r.status_code == 201, r.text
    sent = {
        "/api/v1/streams/{stream}/deals/{product}": (await live.http.delete(
            f"/api/v1/streams/{stream['id']}/deals/{product['id']}", headers=cleo)).status_code,
        "/api/v1/cart/items/{item}": (await live.http.delete(
            f"/api/v1/cart/items/{r.json()['id']}", headers=bob)).status_code,
    }
    assert sent == dict.fromkeys(sent, 204)
    documented = {path: [c for c in doc["paths"][path]["delete"]["responses"]
                         if c.startswith("2")] for path in sent}
    assert documented == {path: ["204"] for path in sent}


# ---------------------------------------------------------------- the document is the contract


def resolved(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with `$ref` and the non-null branch of `X | None` taken."""
    if "$ref" in schema:
        return resolved(doc, doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in schema:
        (branch,) = [b for b in schema["anyOf"] if b.get("type") != "null"]
        return resolved(doc, branch)
    return schema


def string_of(schema: dict[str, Any], length: int) -> str:
    """A string of `length` characters, a URL if the schema wants one."""
    if schema.get("format") == "uri":
        return "https://a.test/"[:length] + "a" * (length - 15)
    return "a" * length


# Besides each schema's own bounds, values that many schemas here allow and many refuse.
SOME_STRINGS = ("a", "a b:c/d", "{p:x}", "é", "XXX", "javascript:alert(1)", "   ")
SOME_INTEGERS = (-1, 0, 802.0)


def candidates(schema: dict[str, Any]) -> list[Any]:
    """Values on both sides of every bound `schema` states, and some others of its type."""
    if schema.get("type") == "integer":
        values: list[Any] = list(SOME_INTEGERS)
        for bound in ("minimum", "maximum"):
            if bound in schema:
                values += [schema[bound] - 1, schema[bound], schema[bound] + 1,
                           float(schema[bound])]
        return values
    if schema.get("type") != "string":
        return []
    strings = [*SOME_STRINGS, *schema.get("enum", ())[:1], *schema.get("enum", ())[-1:]]
    for bound in ("minLength", "maxLength"):
        if bound in schema:
            strings += [string_of(schema, n) for n in range(max(schema[bound] - 1, 0),
                                                             schema[bound] + 2)]
    return strings


def documented(schema: dict[str, Any], value: Any) -> bool:
    """Whether the document allows `value`: its JSON Schema, plus what that cannot say and
    the document states in words (802.0 is not an integer here)."""
    if isinstance(value, float) and "802.0" in schema.get("description", ""):
        return False
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def problem_kind(r: httpx.Response) -> str:
    if r.headers.get("content-type") != "application/problem+json":
        return ""
    return str(r.json().get("type", "")).removeprefix(PROBLEM_BASE)


def refused_for(r: httpx.Response, where: str, name: str) -> bool:
    """Whether `r` refuses the request because of that parameter or body field."""
    kind = problem_kind(r)
    match where:
        case "body":
            fields = [e["field"] for e in r.json().get("errors", [])] if kind else []
            return r.status_code == 422 and (
                kind == "validation-error" and any(f == name or f.startswith(name + ".")
                                                   for f in fields)
                or kind == name.rsplit(".", 1)[-1].replace("_", "-") + "-too-large")
        case "query":
            return r.status_code == 400 and kind == "bad-query" and name in r.json()["detail"]
        case "header":
            return r.status_code == 400 and kind == f"{name.lower()}-invalid"
        case _:
            return r.status_code == 404 and kind == "not-found"


@dataclass(frozen=True)
class Probe:
    where: str  # path, query, header or body
    name: str  # a parameter, or a body field as the server names it in errors (a.0.b)
    value: Any
    allowed: bool  # by the document


def body_probes(doc: dict[str, Any], schema: dict[str, Any], valid: dict[str, Any],
                prefix: str = "") -> Iterator[tuple[Probe, dict[str, Any]]]:
    """One body per candidate value of each field (nested objects too), the rest valid."""
    s = resolved(doc, schema)
    for name, prop in s["properties"].items():
        p = resolved(doc, prop)
        current = valid.get(name)
        if p.get("type") == "object" and isinstance(current, dict):
            for probe, body in body_probes(doc, p, current, f"{prefix}{name}."):
                yield probe, {**valid, name: body}
        elif p.get("type") == "array" and current and isinstance(current[0], dict):
            for probe, body in body_probes(doc, p["items"], current[0], f"{prefix}{name}.0."):
                yield probe, {**valid, name: [body, *current[1:]]}
        for value in candidates(p):
            yield Probe("body", prefix + name, value, documented(p, value)), {**valid, name: value}


def param_probes(path: str, shop: Any,
                 param: dict[str, Any]) -> Iterator[tuple[Probe, str, dict[str, str]]]:
    """(probe, URL, extra headers) per candidate value of a parameter."""
    name, where, schema = param["name"], param["in"], param["schema"]
    for value in candidates(schema):
        probe = Probe(where, name, value, documented(schema, value))
        text = str(value)
        if where == "path":
            # A well-formed unknown id is a 404 too, so only refusals are checked; "" and
            # "/" make another URL (the router's business, not this parameter's).
            if not probe.allowed and text and "/" not in text:
                yield probe, fill(path, shop, **{name: quote(text, safe="")}), {}
        elif where == "query":
            yield probe, f"{fill(path, shop)}?{name}={quote(text, safe='')}", {}
        elif isinstance(value, str) and text.isascii() and text.isprintable() \
                and text == text.strip():  # what a header can carry at all
            yield probe, fill(path, shop), {name: text}


async def send(live: Live, in_flight: asyncio.Semaphore, method: str, url: str,
               headers: dict[str, str], body: Any) -> httpx.Response:
    async with in_flight:
        if body is not None:
            headers = {**headers, "content-type": "application/json"}
        return await live.http.request(method, url, headers=headers,
                                       content=None if body is None else json.dumps(body))


async def page_session(live: Live) -> dict[str, str]:
    """The cookie and CSRF header of a signed-in page (for the session's own endpoints)."""
    account, _ = await live.services.accounts.sign_in("walker@example.com")
    token, session = await live.services.sessions.create(account.id, account.buyer_grant)
    return {"Cookie": f"lc_session={token}", "X-CSRF-Token": session.csrf}


def documented_alike(a: dict[str, Any], b: dict[str, Any], method: str, path: str) -> bool:
    """Whether two documents say the same about one operation, its body schema included."""
    op_a, op_b = a["paths"][path][method.lower()], b["paths"][path][method.lower()]
    if "application/json" in op_a.get("requestBody", {}).get("content", {}):
        schema = body_schema_name(op_a)
        return op_a == op_b and all(d["components"]["schemas"][schema] ==
                                    a["components"]["schemas"][schema] for d in (a, b))
    return bool(op_a == op_b)


@pytest.mark.parametrize("node_settings", [{}, {"max_quantity_per_buy": 3, "page_size_max": 7}],
                         ids=["defaults", "lower-caps"])
async def test_every_documented_bound_is_the_servers(live: Live,
                                                     node_settings: dict[str, Any]) -> None:
    """Walk the served document: for every parameter and body field, values on both sides
    of what it documents. What it refuses, the server refuses for that very reason (a 4xx
    problem naming it); what it allows, the server does not refuse for that reason (other
    refusals, such as sold out, are fine)."""
    doc = (await live.http.get(OPENAPI_URL)).json()
    defaults = openapi_document(Settings())
    shop = await make_shop(live, order=True)
    page = await page_session(live)
    failures: list[str] = []
    sent = 0
    in_flight = asyncio.Semaphore(8)  # a thousand requests, a few at a time
    for method, path, op in operations(doc):
        if doc != defaults and documented_alike(doc, defaults, method, path):
            continue  # walked with the default settings
        valid = None
        if "application/json" in op.get("requestBody", {}).get("content", {}):
            valid = valid_body(body_schema_name(op), shop)
        probes = [(probe, url, extra, valid) for param in op.get("parameters", [])
                  for probe, url, extra in param_probes(path, shop, param)]
        if valid is not None:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            probes += [(probe, fill(path, shop), {}, body)
                       for probe, body in body_probes(doc, schema, valid)]
        own = page if op.get("security") == [{"session": []}] else {}  # the page's own
        replies = await asyncio.gather(*[send(live, in_flight, method, url,
                                              {**headers_for(live, op), **own, **extra}, body)
                                         for _, url, extra, body in probes])
        sent += len(replies)
        for (probe, *_), r in zip(probes, replies):
            where = f"{method} {path} {probe.where} {probe.name}={str(probe.value)[:20]!r}"
            if refused_for(r, probe.where, probe.name) != (not probe.allowed):
                said = "allows" if probe.allowed else "refuses"
                failures.append(f"{where}: the document {said} it, the server answered "
                                f"{r.status_code} {r.text[:160]}")
    assert failures == [], "\n".join(failures)
    assert sent > (800 if doc == defaults else 50)
    # What the document says a node of these settings allows.
    buy = doc["components"]["schemas"]["BuyIn"]["properties"]["quantity"]
    assert buy["maximum"] == live.services.settings.max_quantity_per_buy
    currency = doc["components"]["schemas"]["BrandIn"]["properties"]["currency"]
    assert set(currency["enum"]) == CURRENCIES and currency["pattern"] == "^[A-Z]{3}$"


async def test_well_formed_ids_at_the_documented_length_are_served(live: Live) -> None:
    """The other side of the path patterns: 64-character ids (the longest documented) work."""
    brand, creator = "b" * 64, "c" * 64
    await make_brand(live, brand)
    await make_product(live, brand)
    for path in ("/brands/{brand}", "/brands/{brand}/showcase", "/brands/{brand}/report",
                 "/brands/{brand}/orders", "/creators/{creator}/storefront",
                 "/creators/{creator}/earnings", "/creators/{creator}",
                 "/creators/{creator}/shows"):
        url = "/api/v1" + path.format(brand=brand, creator=creator)
        role, subject = ("creator", creator) if "{creator}" in path else ("brand", brand)
        r = await live.http.get(url, headers=live.auth(role, subject))
        assert r.status_code == 200, (path, r.text)
