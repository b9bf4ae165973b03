"""Shared fixtures: one real embedded Valkey per session, a real uvicorn per test.

Every wait is a multiple of UNIT (env LIVECART_TEST_TIME_UNIT) so a slow CI can scale it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as redis
import uvicorn

from live.node.app import create_app
from live.accounts.auth import Role
from live.node.http_server import server_config
from live.node.services import Services
from live.settings import Settings
from live.node.valkey_server import EmbeddedValkey

UNIT = float(os.environ.get("LIVECART_TEST_TIME_UNIT", "1.0"))
TEST_SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
async def valkey(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def rclient(valkey: EmbeddedValkey) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(valkey.url)
    await client.flushall()
    yield client
    await client.aclose()


@dataclass
class Live:
    """A running node: its base URL, its services, and a token maker."""

    url: str
    services: Services
    http: httpx.AsyncClient
    ws_url: str

    def token(self, role: str, subject: str, ttl_s: int = 3600) -> str:
        return self.services.tokens.mint(Role(role), subject, ttl_s=ttl_s)

    def auth(self, role: str, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject)}"}


async def start_node(settings: Settings, *, background: bool = True
                     ) -> tuple[Services, uvicorn.Server, asyncio.Task[Any], str]:
    """A real node on port 0; `background=False` leaves the sweeper, aggregator and hub
    loops off, for tests that must know exactly which Valkey commands run."""
    services = await Services.start(settings, background=background)
    app = create_app(settings, services=services)
    config = server_config(app, settings, host="127.0.0.1", port=0, log_level="warning",
                           lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return services, server, task, f"http://127.0.0.1:{port}"


async def start_hub(services: Services, http_url: str) -> str:
    # Pages may be opened at localhost too (WebAuthn refuses an IP address as its RP ID).
    localhost = http_url.replace("://127.0.0.1:", "://localhost:")
    port = await services.start_hub_server("127.0.0.1", 0, origins=(http_url, localhost))
    return f"ws://127.0.0.1:{port}"


async def stop_node(services: Services, server: uvicorn.Server, task: asyncio.Task[Any]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 10 * UNIT)
    await services.close()


def make_settings(valkey: EmbeddedValkey | str, data_dir: Path, **overrides: Any) -> Settings:
    url = valkey if isinstance(valkey, str) else valkey.url
    # The tests' httpx clients drop a connection idle for 5 s (their pool's keepalive_expiry);
    # a node that closed it after the same 5 s would race them, and a request sent just as
    # the node closes its connection fails with ReadError: the node keeps it longer.
    base: dict[str, Any] = dict(redis_url=url, data_dir=data_dir, jwt_secret=TEST_SECRET,
                                sweep_interval_s=0.1, http_keep_alive_s=30.0)
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at DEBUG, uvicorn's own (which do not propagate) included."""
    caplog.set_level(logging.DEBUG)
    own = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    for logger in own:
        logger.addHandler(caplog.handler)
    yield caplog
    for logger in own:
        logger.removeHandler(caplog.handler)


@pytest.fixture
def node_settings() -> dict[str, Any]:
    """Override per test with `@pytest.mark.parametrize` or by mutating before `live` runs."""
    return {}


@pytest.fixture
async def live(valkey: EmbeddedValkey, rclient: redis.Redis, tmp_path: Path,
               node_settings: dict[str, Any]) -> AsyncIterator[Live]:
    settings = make_settings(valkey, tmp_path, **node_settings)
    services, server, task, url = await start_node(settings)
    ws_url = await start_hub(services, url)
    async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
        yield Live(url, services, http, ws_url)
    await stop_node(services, server, task)


CHROMIUM = os.environ.get("LIVECART_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


class PageErrors(list[str]):
    """Console errors and uncaught exceptions of the pages a test opened."""


@pytest.fixture
async def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
async def new_page(browser: Any, page_errors: PageErrors) -> AsyncIterator[Any]:
    """Opens pages in one fresh context; any JS console error or exception fails the test."""
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    pages = []

    async def make(**_: Any) -> Any:
        page = await context.new_page()
        page.on("console", lambda m: page_errors.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: page_errors.append(f"pageerror: {e}"))
        pages.append(page)
        return page

    yield make
    await context.close()
    assert not page_errors, page_errors


def peer_tasks(tasks: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """The running tasks among `tasks` that aiortc or aioice started (a peer's loops)."""
    def of_a_peer(task: asyncio.Task[Any]) -> bool:
        code = getattr(task.get_coro(), "cr_code", None)
        return code is not None and any(f"/{lib}/" in code.co_filename
                                        for lib in ("aiortc", "aioice"))
    return [t for t in tasks if of_a_peer(t) and not t.done()]


@pytest.fixture(autouse=True)
async def no_peer_task_outlives_its_test() -> AsyncIterator[None]:
    """Fails the test whose WebRTC peers still run once it and its node are done.

    Every test shares one event loop, so a leaked peer's RTCP and ICE consent loops would run
    for the rest of the session. They draw on the global `random`, which hypothesis reports
    as a FlakyFailure of whichever test is drawing examples in a worker thread meanwhile
    (test_bad_input's fuzz): the leak would show minutes later, in an unrelated test."""
    before = asyncio.all_tasks()
    yield
    started = peer_tasks(asyncio.all_tasks() - before)
    if started:  # a client's peer closes once its node's close reaches it
        await asyncio.wait(started, timeout=10 * UNIT)
    left = peer_tasks(set(started))
    assert not left, f"peer tasks still running: {[t.get_coro().__qualname__ for t in left]}"


@pytest.fixture(autouse=True)
async def client_peers_closed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The tests' own WebRTC clients (loadtest.webrtc_peers) are closed when the test ends,
    before the leak check above: a client whose node went away notices only once ICE
    consent fails (about 30 s), so its consent loop would outlive the test."""
    import loadtest.webrtc_peers as peers

    opened: list[Any] = []
    original = peers.RTCPeerConnection

    class Tracked(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(peers, "RTCPeerConnection", Tracked)
    yield
    for pc in opened:
        await pc.close()
