"""What livecart changes in redis-py's asyncio client (single server, TCP), in one place.

- `PackingConnection`: redis-py's asyncio connection packs every command in Python (its
  sync one uses hiredis): under a flash sale the batcher's pipelines spent ~8 % of the
  server there. Commands of plain arguments are packed by hiredis (byte for byte the same,
  tested); anything else (a command name with a space, bool, None, memoryview) as before.
- `DeadlinePipeline`: redis-py arms one `asyncio.timeout` (socket_timeout) around each
  reply it reads, so a pipeline of 300 commands armed, rescheduled and cancelled 300 timers,
  ~5 % of the server under a flash sale (BENCHMARKS.md, session 10). A pipeline of ours has
  one deadline, socket_timeout, for all of it (send and every reply); its replies are read
  without one each. Expiry is what a reply's timeout was: the connection is dropped and a
  redis `TimeoutError` raised, which the client's retry policy retries as before.

Both touch redis-py internals (`Pipeline._execute_pipeline`, the `math.inf` "no timeout"
of `Connection.read_response`): `check()` refuses a redis-py without them at start.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Coroutine
from typing import Any

import hiredis
import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["DeadlineRedis", "DeadlinePipeline", "PackingConnection", "check"]

_PLAIN_ARGS = frozenset({str, bytes, int, float})  # packed alike by hiredis and redis-py
_REDIS_MAJORS = (8,)  # checked: 8.1


class PackingConnection(redis.Connection):
    """hiredis packs plain commands; replies inside a `DeadlinePipeline` have no timeout
    of their own (the pipeline's deadline bounds them)."""

    in_deadline = False  # set by DeadlinePipeline while it owns this connection

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        if type(head) is str and " " not in head and _PLAIN_ARGS.issuperset(map(type, args)):
            return [hiredis.pack_command(args)]
        return super().pack_command(*args)

    def read_response(self, disable_decoding: bool = False, timeout: float | None = None,
                      **kwargs: Any) -> Coroutine[Any, Any, Any]:
        if timeout is None and self.in_deadline:
            timeout = math.inf  # redis-py 8: no timer for this read (the pipeline has one)
        return super().read_response(disable_decoding, timeout, **kwargs)


class DeadlinePipeline(Pipeline):
    """A non-transactional pipeline with one deadline for all of its replies."""

    async def _execute_pipeline(self, connection: Any, commands: Any,
                                raise_on_error: bool) -> Any:
        limit = connection.socket_timeout
        if not isinstance(connection, PackingConnection) or limit is None:
            return await super()._execute_pipeline(connection, commands, raise_on_error)
        try:
            async with asyncio.timeout(limit):
                connection.in_deadline = True
                try:
                    return await super()._execute_pipeline(connection, commands,
                                                           raise_on_error)
                finally:
                    connection.in_deadline = False
        except TimeoutError:
            # What a reply's own timeout did: the connection (its read cut) is dropped.
            await connection.disconnect(nowait=True)
            raise RedisTimeoutError(f"Timeout reading from {connection.host}:"
                                    f"{connection.port} (pipeline of {len(commands)})") from None


class DeadlineRedis(redis.Redis):
    """redis-py's client whose non-transactional pipelines are `DeadlinePipeline`s."""

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if transaction:
            return super().pipeline(transaction, shard_hint)
        return DeadlinePipeline(self.connection_pool, self.response_callbacks, transaction,
                                shard_hint)


def check() -> None:
    """Refuse to start on a redis-py whose internals these classes use have moved."""
    import redis as redis_pkg

    major = int(redis_pkg.__version__.split(".")[0])
    try:
        read = inspect.getsource(AbstractConnection.read_response)
    except (OSError, TypeError):  # installed without sources: the version pin is the check
        read = "math.inf"
    missing = [what for what, ok in (
        (f"version {redis_pkg.__version__} (checked: {_REDIS_MAJORS})", major in _REDIS_MAJORS),
        ("Pipeline._execute_pipeline", callable(getattr(Pipeline, "_execute_pipeline", None))),
        ("read_response(timeout=math.inf)", "math.inf" in read),
    ) if not ok]
    if missing:
        raise RuntimeError("redis-py internals moved (live/node/redis_compat.py): "
                           + ", ".join(missing))
