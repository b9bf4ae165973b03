"""Server-side scripts, one loader for all: each lives in its own file (header = contract),
is loaded once per server and called by SHA, and loaded again after a NOSCRIPT (a Valkey
restart empties its script cache).

Two sets: the checkout's own (`checkout/store/lua/*.lua`; the order's two moves,
transition.lua and after_sale.lua, each after `order_lib.lua`, so giving units back is written
once; the folds of an order event, apply_brand.lua, apply_stream.lua and apply_creator.lua,
after `apply_lib.lua`, so an event is read and deduplicated one way; stream.lua and
chat_moderate.lua after `event_lib.lua`, so a stream's events are written one way) and the payment gateways'
(`checkout/payments/lua/*.lua`, each after the set's `prelude.lua`: the sandbox's, and the
Stripe gateway's record of an order, `compare_and_set.lua`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError
from redis.typing import EncodableT

__all__ = ["Script", "SCRIPTS", "GATEWAY_SCRIPTS", "load_all", "call_script", "call_script_each"]


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str


def _read_set(folder_name: str, names: tuple[str, ...], prelude: str = "") -> dict[str, Script]:
    folder = resources.files("checkout")
    for part in folder_name.split("/"):
        folder = folder.joinpath(part)
    head = folder.joinpath(f"{prelude}.lua").read_text("utf-8") if prelude else ""
    scripts = {}
    for name in names:
        source = head + folder.joinpath(f"{name}.lua").read_text("utf-8")
        scripts[name] = Script(name, source, hashlib.sha1(source.encode()).hexdigest())
    return scripts


SCRIPTS: dict[str, Script] = {
    **_read_set("store/lua", ("bind_key", "reserve", "stock", "auction_lot", "offer_sync",
                              "show_index", "wallet", "program", "funnel",
                              "hook_emit", "hook_done", "hook_pump", "hook_adopt", "chat_post",
                              "chat_claim", "chat_purge", "lease", "stock_history")),
    # A stream's sequenced events are numbered, logged and announced one way.
    **_read_set("store/lua", ("stream", "chat_moderate", "auction"), prelude="event_lib"),
    # An order event's folds, one per owner's slot, share how they read it and dedupe.
    **_read_set("store/lua", ("apply_brand", "apply_stream", "apply_creator"), prelude="apply_lib"),
    # The two moves of an order share how it reads and how it gives its units back.
    **_read_set("store/lua", ("transition", "after_sale"), prelude="order_lib"),
}
GATEWAY_SCRIPTS: dict[str, Script] = _read_set(
    "payments/lua", ("authorize", "capture", "void", "refund", "tokenize",
                    "compare_and_set"), prelude="prelude")


async def load_all(client: redis.Redis) -> None:
    """SCRIPT LOAD every script; called at start and again after a NOSCRIPT."""
    for script in (*SCRIPTS.values(), *GATEWAY_SCRIPTS.values()):
        sha = await client.script_load(script.source)
        if sha != script.sha:
            raise RuntimeError(f"script {script.name}: server sha {sha} != {script.sha}")


async def call_script(client: redis.Redis, script: Script, keys: list[str],
                      args: Sequence[EncodableT]) -> Any:
    """EVALSHA, loading the scripts once more if Valkey lost its cache (a restart); the
    reply is what the script's header documents."""
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await load_all(client)
        return await client.evalsha(script.sha, len(keys), *keys, *args)


async def call_script_each(client: redis.Redis, script: Script,
                           calls: Sequence[tuple[Sequence[EncodableT], Sequence[EncodableT]]]
                           ) -> list[Any]:
    """One EVALSHA per (keys, args) in one pipeline (each call in its own slot, so a cluster
    pipeline splits them by node), the replies in the calls' order. A call Valkey answered
    NOSCRIPT (a restart lost the cache) is sent once more after loading the scripts; a
    call still refused then is left as its NoScriptError. Any other error is raised."""
    results: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            for i in pending:
                keys, args = calls[i]
                # By name: redis-py's cluster pipeline refuses its evalsha method.
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
        for i, reply in zip(pending, replies):
            if isinstance(reply, Exception) and not isinstance(reply, NoScriptError):
                raise reply
            results[i] = reply
        pending = [i for i in pending if isinstance(results[i], NoScriptError)]
        if not pending or attempt:
            break
        await load_all(client)
    return results

