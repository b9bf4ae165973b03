"""A node's operational surface: health, readiness, metrics, OpenAPI, refusing bad Valkey."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis.asyncio as redis

from checkout.store.keys import stream_key, wallet_key
from conftest import Live, make_settings
from live.web.problems import PROBLEM_BASE
from live.node.services import Services
from live.node.valkey_check import ValkeyRequirementError
from live.node.valkey_server import EmbeddedValkey
from shop import buy, give_wallet, make_brand, make_live_stream, make_product, make_stream


async def test_health_ready_metrics(live: Live) -> None:
    assert (await live.http.get("/healthz")).json() == {"status": "ok"}
    assert (await live.http.get("/readyz")).json() == {"status": "ready"}
    await make_brand(live)
    product = await make_product(live, stock=1)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    await buy(live, "bob", product["id"], stream=stream["id"])
    await buy(live, "bob", product["id"], stream=stream["id"])
    text = (await live.http.get("/metrics")).text
    assert 'livecart_buys_total{outcome="settled"} 1.0' in text
    assert 'livecart_buys_total{outcome="sold_out"} 1.0' in text
    assert 'route="/api/v1/buy"' in text


async def test_unknown_route_is_a_problem(live: Live) -> None:
    r = await live.http.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_node_refuses_a_valkey_without_aof(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "v", extra_config={"appendonly": "no"}) as server:
        settings = make_settings(server, tmp_path)
        with pytest.raises(ValkeyRequirementError, match="appendonly"):
            await Services.start(settings, background=False)


async def test_node_refuses_evicting_valkey(tmp_path: Path) -> None:
    async with EmbeddedValkey(tmp_path / "v") as server:
        client = redis.Redis.from_url(server.url)
        await client.config_set("maxmemory-policy", "allkeys-lru")
        await client.aclose()
        with pytest.raises(ValkeyRequirementError, match="noeviction"):
            await Services.start(make_settings(server, tmp_path), background=False)


async def test_product_page_shows_the_price_in_its_currency(live: Live) -> None:
    await make_brand(live, "nippon", currency="JPY")
    product = await make_product(live, brand="nippon", currency="JPY", price_minor=12900,
                                 title="Kettle <b>")
    r = await live.http.get(f"/p/{product['id']}")
    assert r.status_code == 200
    assert "12900 JPY" in r.text and "Kettle &lt;b&gt;" in r.text
    assert (await live.http.get("/p/p_nope")).status_code == 404


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: dict[int, logging.LogRecord] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.records[id(record)] = record  # a record reaching two of our handlers counts once


@contextmanager
def errors_logged() -> Iterator[_Records]:
    """The ERROR records logged meanwhile, uvicorn's too (its logger does not propagate)."""
    handler = _Records()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def test_an_unhandled_error_is_answered_500_and_logged_once(
        live: Live, rclient: redis.Redis) -> None:
    await make_brand(live)
    product = await make_product(live)
    stream = await make_stream(live, [product["id"]])
    await rclient.set(stream_key(stream["id"]), "not a hash")  # WRONGTYPE on the next read
    with errors_logged() as handler:
        r = await live.http.get(f"/api/v1/streams/{stream['id']}")
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM_BASE + "internal-error"
    logged = list(handler.records.values())
    assert len(logged) == 1, [(x.name, x.getMessage()) for x in logged]
    assert f"GET /api/v1/streams/{stream['id']}" in logged[0].getMessage()
    assert logged[0].exc_info is not None and "WRONGTYPE" in str(logged[0].exc_info[1])


async def test_the_buys_fast_path_answers_errors_as_the_app_does(
        live: Live, rclient: redis.Redis) -> None:
    """POST /api/v1/buy skips starlette's middleware (live/node/fast_path.py): an unhandled
    error is still one 500 problem logged once, a refusal a problem, and both are counted
    under the route's template; another method on its path still goes through starlette."""
    await make_brand(live)
    product = await make_product(live, stock=1)
    stream = await make_live_stream(live, [product["id"]])
    await rclient.set(wallet_key("eve"), "not a hash")  # WRONGTYPE on the buy's wallet read
    with errors_logged() as handler:
        r = await buy(live, "eve", product["id"], stream=stream["id"])
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == PROBLEM_BASE + "internal-error"
    logged = list(handler.records.values())
    assert len(logged) == 1, [(x.name, x.getMessage()) for x in logged]
    assert "POST /api/v1/buy" in logged[0].getMessage()
    assert logged[0].exc_info is not None and "WRONGTYPE" in str(logged[0].exc_info[1])
    r = await buy(live, "nobody-with-a-wallet", product["id"], stream=stream["id"])
    assert r.status_code == 409 and r.json()["type"] == PROBLEM_BASE + "wallet-missing"
    r = await live.http.get("/api/v1/buy", headers=live.auth("buyer", "eve"))
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    text = (await live.http.get("/metrics")).text
    assert 'livecart_http_requests_total{method="POST",route="/api/v1/buy",status="500"} 1.0' in text
    assert 'livecart_http_requests_total{method="POST",route="/api/v1/buy",status="409"} 1.0' in text
