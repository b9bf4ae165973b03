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
  Its replies are taken from the connection's hiredis reader in one loop (a socket read
  only when the reader runs dry), not through three coroutines a reply (`parse_response`,
  `read_response`, the parser's): the same replies, errors, callbacks and disconnects.

All touch redis-py internals (`Pipeline._execute_pipeline`, the `math.inf` "no timeout"
of `Connection.read_response`, the hiredis parser's reader): `check()` refuses a redis-py
without them at start.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Coroutine
from typing import Any

import hiredis
import redis.asyncio as redis
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.asyncio import _himport_exec
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["DeadlineRedis", "DeadlinePipeline", "PackingConnection", "check"]

_PLAIN_ARGS = frozenset({str, bytes, int, float})  # packed alike by hiredis and redis-py
_REDIS_VERSIONS = ("8.1",)  # major.minor whose internals these classes were checked against


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
                    if type(connection._parser) is _AsyncHiredisParser:
                        return await self._execute_read_together(connection, commands,
                                                                 raise_on_error)
                    return await super()._execute_pipeline(connection, commands,
                                                           raise_on_error)
                finally:
                    connection.in_deadline = False
        except TimeoutError:
            # What a reply's own timeout did: the connection (its read cut) is dropped.
            await connection.disconnect(nowait=True)
            raise RedisTimeoutError(f"Timeout reading from {connection.host}:"
                                    f"{connection.port} (pipeline of {len(commands)})") from None

    async def _execute_read_together(self, connection: Any, commands: Any,
                                     raise_on_error: bool) -> Any:
        """redis-py 8.1's `Pipeline._execute_pipeline` (HIMPORT PREPAREs folded in as
        there), its replies read by `_read_replies`."""
        arg_lists = [args for args, _ in commands]
        fieldsets = await _himport_exec.pipeline_prepares(self, connection, arg_lists)
        preflight = _himport_exec.prepare_wire_commands(fieldsets)
        await connection.send_packed_command(connection.pack_commands(preflight + arg_lists))
        prep_error = await _himport_exec.drain_pipeline_prepares(self, connection, fieldsets)
        response = await self._read_replies(connection, commands)
        if prep_error is not None:
            raise prep_error
        if raise_on_error:
            self.raise_first_error(commands, response)
        return response

    async def _read_replies(self, connection: Any, commands: Any) -> list[Any]:
        """Each command's reply as `parse_response` gives it (an error reply as its
        `ResponseError`, the command's response callback applied), read straight from the
        hiredis reader; a command with options other than `keys`, or WATCH/UNWATCH, goes
        through `parse_response` itself. A read that fails drops the connection and raises
        as `Connection.read_response` does (OSError as redis `ConnectionError`)."""
        parser = connection._parser
        if not parser._connected:
            raise RedisConnectionError("Connection closed by server.")
        gets = parser._reader.gets
        push = parser._hiredis_PushNotificationType
        callbacks = self.response_callbacks
        special = self.UNWATCH_COMMANDS
        response: list[Any] = []
        append = response.append
        for args, options in commands:
            name = args[0]
            if (options and options.keys() != {"keys"}) or name in special or name == "WATCH":
                try:
                    append(await self.parse_response(connection, name, **options))
                except ResponseError as e:
                    append(e)
                continue
            try:
                reply = gets()
                while True:
                    while reply is NOT_ENOUGH_DATA:
                        await parser.read_from_socket()
                        reply = gets()
                    if push is None or not isinstance(reply, push):
                        break
                    await parser.handle_push_response(reply)  # RESP3: not this reply
                    reply = gets()
                if isinstance(reply, RedisConnectionError):
                    raise reply
                if (type(reply) is list and reply
                        and isinstance(reply[0], RedisConnectionError)):
                    raise reply[0]
            except OSError as e:
                await connection.disconnect(nowait=True)
                raise RedisConnectionError(f"Error while reading from "
                                           f"{connection._host_error()} : {e.args}") from None
            except BaseException:
                await connection.disconnect(nowait=True)
                raise
            if isinstance(reply, ResponseError):
                append(reply)
                continue
            callback = callbacks.get(name)
            if callback is not None:
                reply = callback(reply) if not options else callback(reply, **{
                    k: v for k, v in options.items() if k != "keys"})
                if inspect.isawaitable(reply):
                    reply = await reply
            append(reply)
        if connection.health_check_interval:
            connection.next_health_check = (asyncio.get_running_loop().time()
                                             + connection.health_check_interval)
        return response


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

    minor = ".".join(redis_pkg.__version__.split(".")[:2])
    try:
        read = inspect.getsource(AbstractConnection.read_response)
    except (OSError, TypeError):  # installed without sources: the version pin is the check
        read = "math.inf"
    missing = [what for what, ok in (
        (f"version {redis_pkg.__version__} (checked: {_REDIS_VERSIONS})",
         minor in _REDIS_VERSIONS),
        ("Pipeline._execute_pipeline", callable(getattr(Pipeline, "_execute_pipeline", None))),
        ("read_response(timeout=math.inf)", "math.inf" in read),
    ) if not ok]
    if missing:
        raise RuntimeError("redis-py internals moved (live/node/redis_compat.py): "
                           + ", ".join(missing))
