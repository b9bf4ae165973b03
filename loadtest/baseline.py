"""The peer baseline: a bare starlette JSON endpoint on livecart's uvicorn settings.

Same stack as `livecart serve` (uvicorn, uvloop, httptools, one worker, no server header,
the same log level, so the same access log) and the same path, so the load generator sends
it byte-identical requests. The endpoint parses the JSON body and answers a small JSON
object; everything livecart does beyond that (auth, validation, Valkey, payment) is what
the ratio measures.

Run: `python -m loadtest.baseline --port P [--log-level info] [--loop uvloop|asyncio]`.
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["create_baseline_app", "main"]

BUY_PATH = "/api/v1/buy"


async def buy(request: Request) -> Response:
    body = orjson.loads(await request.body())
    reply = {"product_id": body.get("product_id"), "quantity": body.get("quantity", 1),
             "key": request.headers.get("idempotency-key")}
    return Response(orjson.dumps(reply), status_code=201, media_type="application/json")


async def readyz(request: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


def create_baseline_app() -> Starlette:
    return Starlette(routes=[Route(BUY_PATH, buy, methods=["POST"]),
                             Route("/readyz", readyz, methods=["GET"])])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.baseline", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="the event loop (livecart asks uvicorn for uvloop)")
    args = parser.parse_args(argv)
    uvicorn.run(create_baseline_app(), host=args.host, port=args.port, loop=args.loop,
                http="httptools", log_level=args.log_level, proxy_headers=False,
                server_header=False, workers=None)


if __name__ == "__main__":
    main()
