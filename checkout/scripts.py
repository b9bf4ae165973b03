"""Server-side scripts: each lives in its own file (scripts/*.lua, header = contract),
is loaded once per server and called by SHA."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import redis.asyncio as redis
from redis.exceptions import NoScriptError

__all__ = ["Script", "SCRIPTS", "load_all", "call_script"]


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str


def _read(name: str) -> Script:
    source = resources.files("checkout").joinpath(f"scripts/{name}.lua").read_text("utf-8")
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


SCRIPTS: dict[str, Script] = {name: _read(name) for name in ("bind_key", "reserve", "transition", "stock", "apply", "stream",
                         "offer_sync")}


async def load_all(client: redis.Redis) -> None:
    """SCRIPT LOAD every script; called at start and again after a NOSCRIPT (Valkey restarted)."""
    for script in SCRIPTS.values():
        sha = await client.script_load(script.source)
        if sha != script.sha:
            raise RuntimeError(f"script {script.name}: server sha {sha} != {script.sha}")


async def call_script(client: redis.Redis, script: Script, keys: list[str], args: list[object]) -> object:
    """EVALSHA, loading the scripts once more if Valkey lost its cache (a restart)."""
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await load_all(client)
        return await client.evalsha(script.sha, len(keys), *keys, *args)
