"""The accounts' server-side scripts (live/accounts/lua/*.lua), loaded and called the way
checkout/store/scripts.py does for the checkout's: once per server, by SHA, loaded again
after a NOSCRIPT (a Valkey restart empties its script cache)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError
from redis.typing import EncodableT

from checkout.store.scripts import Script

__all__ = ["ACCOUNT_SCRIPTS", "load_account_scripts", "call_account_script"]


def _read(name: str) -> Script:
    source = resources.files("live.accounts").joinpath(f"lua/{name}.lua").read_text("utf-8")
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


ACCOUNT_SCRIPTS: dict[str, Script] = {name: _read(name) for name in (
    "verify", "touch", "passkey_add", "passkey_use", "bounded_add", "invite_claim",
    "invite_revoke")}


async def load_account_scripts(client: redis.Redis) -> None:
    for script in ACCOUNT_SCRIPTS.values():
        sha = await client.script_load(script.source)
        if sha != script.sha:
            raise RuntimeError(f"script {script.name}: server sha {sha} != {script.sha}")


async def call_account_script(client: redis.Redis, name: str, keys: list[str],
                              args: Sequence[EncodableT]) -> Any:
    """EVALSHA of one of ours; the reply is what the script's header documents."""
    script = ACCOUNT_SCRIPTS[name]
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await load_account_scripts(client)
        return await client.evalsha(script.sha, len(keys), *keys, *args)
