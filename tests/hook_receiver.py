"""A real HTTP receiver for webhook tests: a starlette app on uvicorn, port 0.

Every POST is recorded (path, headers, body); what it answers is planned per path: a list of
answers taken one per request (an HTTP status; "hang": held open until `release()` or the
test's end, then 200; "hold": the same, then 500), then 200. Tests wait on what it recorded, never on the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shop import eventually

__all__ = ["Hit", "Receiver", "receiver"]


@dataclass(frozen=True)
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def type(self) -> str:
        return str(self.json["type"])


@dataclass
class Receiver:
    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    plan: dict[str, list[int | str]] = field(default_factory=dict)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def wait(self, path: str, count: int, what: str = "", timeout_s: float = 15.0) -> list[Hit]:
        await eventually(lambda: len(self.on(path)) >= count,
                         what or f"{count} webhooks at {path}", timeout_s)
        return self.on(path)

    def release(self) -> None:
        self._release.set()

    async def handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        body = await request.body()
        self.hits.append(Hit(path, dict(request.headers), body))
        answers = self.plan.get(path, [])
        answer = answers.pop(0) if answers else 200
        if answer in ("hang", "hold"):
            await self._release.wait()
            return Response(status_code=200 if answer == "hang" else 500)
        return Response(b"ok", status_code=int(answer))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = Starlette(routes=[Route("/{path:path}", hook.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    hook.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    yield hook
    hook.release()
    server.should_exit = True
    await asyncio.wait_for(task, 10)
