"""The OpenAPI document: valid OpenAPI 3.1, complete, and honest about errors.

The document is built from the same declarations as the routes (live/api.py), so these
tests guard the builder: every /api/v1 route appears, every 4xx is a problem, the schemas
resolve, and what the document says a call returns is what the server sends.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_SECRET, Live
from shop import give_wallet, idem, make_brand, make_live_stream, make_product
from starlette.routing import Route

from live.app import build_api, create_app
from live.settings import Settings

OPENAPI_URL = "/api/v1/openapi.json"


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in doc["paths"].items()
            for method, op in ops.items()]


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every /api/v1 route the app serves; building it does no I/O."""
    app = create_app(Settings(jwt_secret=TEST_SECRET, data_dir=tmp_path))
    found = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/v1/"):
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
    assert doc == build_api().openapi()


def test_every_api_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    doc = build_api().openapi()
    documented = {(m, p) for m, p, _ in operations(doc)}
    served = app_routes(tmp_path)
    # The document does not describe itself.
    assert served - documented == {("GET", OPENAPI_URL)}
    assert documented - served == set()


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
