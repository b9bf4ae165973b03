"""The fan-out baseline: a bare `websockets` server that broadcasts with `websockets.broadcast`.

The same library and connection settings as the hub's own server (compression off, 64 KiB
frames, queue of 16, server pings every 20 s), none of the hub: no rooms, no snapshot, no
Valkey, no backpressure policy beyond what `broadcast` does (skip a socket whose buffer is
over its high-water mark). Viewers connect to any path; `/control` takes commands, one JSON
text frame each, answered with one JSON text frame:

    {"op": "burst", "frames": [str, ...]}  broadcast each frame to every viewer, in order,
                                           yielding to the loop between frames; answers
                                           {"sent": frames, "viewers": n}
    {"op": "burst_raw", "frames": [...]}   the same, but each frame is framed once
                                           (server frames are not masked, so the wire
                                           bytes are the same for every socket) and those
                                           bytes are written to each transport: what
                                           "encode once, send bytes" could cost at best
    {"op": "burst_batched", "frames": [...]}  all the frames framed once, joined, and written
                                           to each transport in one write: one send per
                                           viewer however many frames (what a hub writing
                                           a tick's frames together could cost)
    {"op": "count"}                        answers {"viewers": n}

`GET /readyz` answers 200 (what `loadtest.server_process` polls). SIGTERM stops it.

Run: `python -m loadtest.fanout_bare --port P [--loop uvloop|asyncio]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import resource
import signal

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

__all__ = ["BareServer", "main"]

CONTROL_PATH = "/control"
_MAX_FRAME_BYTES = 64 * 1024  # as live.hub.protocol.MAX_FRAME_BYTES
_PING_S = 20.0  # as the hub's default ws_ping_interval_s


class BareServer:
    def __init__(self) -> None:
        self.viewers: set[ServerConnection] = set()

    @staticmethod
    def _check(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/readyz":
            return connection.respond(http.HTTPStatus.OK, '{"status":"ready"}\n')
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == CONTROL_PATH:
            await self._control(ws)
            return
        self.viewers.add(ws)
        try:
            await ws.wait_closed()
        finally:
            self.viewers.discard(ws)

    async def _control(self, ws: ServerConnection) -> None:
        async for raw in ws:
            command = orjson.loads(raw)
            op = command.get("op")
            if op == "burst_batched":
                frames = command["frames"]
                wire = b"".join(Frame(Opcode.TEXT, f.encode()).serialize(mask=False)
                                for f in frames)
                for viewer in self.viewers:
                    if viewer.protocol.state is State.OPEN:
                        viewer.transport.write(wire)
                await ws.send(orjson.dumps({"sent": len(frames),
                                            "viewers": len(self.viewers)}).decode())
            elif op in ("burst", "burst_raw"):
                frames = command["frames"]
                for frame in frames:
                    if op == "burst":
                        broadcast(self.viewers, frame)
                    else:
                        wire = Frame(Opcode.TEXT, frame.encode()).serialize(mask=False)
                        for viewer in self.viewers:
                            if viewer.protocol.state is State.OPEN:
                                viewer.transport.write(wire)
                    await asyncio.sleep(0)  # as the hub: one event per loop turn
                await ws.send(orjson.dumps({"sent": len(frames),
                                            "viewers": len(self.viewers)}).decode())
            else:
                await ws.send(orjson.dumps({"viewers": len(self.viewers)}).decode())

    async def run(self, host: str, port: int) -> None:
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
        async with serve(self._handle, host, port, process_request=self._check, compression=None,
                         max_size=_MAX_FRAME_BYTES, max_queue=16, ping_interval=_PING_S,
                         ping_timeout=_PING_S, server_header=None):
            print(f"bare websockets server on ws://{host}:{port}", flush=True)
            await stop
            for ws in list(self.viewers):  # not a close handshake with each of thousands
                with contextlib.suppress(Exception):
                    ws.transport.abort()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.fanout_bare", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # one file per viewer
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    factory = None
    if args.loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(BareServer().run(args.host, args.port))


if __name__ == "__main__":
    main()
