"""The third-party internals livecart relies on are where its compatibility modules say
(live/video/compat.py, live/hub/ws_compat.py), and
the start-up check refuses loudly when one moves."""

from __future__ import annotations

import asyncio
import types

import pytest
from aiortc.rtcrtpsender import RTCRtpSender

from live.video import compat


def test_the_installed_aiortc_and_aioice_pass_the_check() -> None:
    compat.check()


def test_a_moved_encoder_attribute_fails_the_check() -> None:
    class Moved(RTCRtpSender):
        def __init__(self) -> None:  # keeps its encoder under another name
            self._encoder = None

    with pytest.raises(compat.CompatError, match="__encoder"):
        compat.check(sender_class=Moved)


def test_a_missing_keyframe_hook_or_address_lookup_fails_the_check() -> None:
    class NoHook(RTCRtpSender):
        _send_keyframe = None  # type: ignore[assignment]

    with pytest.raises(compat.CompatError, match="_send_keyframe"):
        compat.check(sender_class=NoHook)
    with pytest.raises(compat.CompatError, match="get_host_addresses"):
        compat.check(ice_module=types.SimpleNamespace())


def test_an_ice_connection_that_no_longer_marks_closing_fails_the_check() -> None:
    class Connection:
        async def query_consent(self) -> None: ...
        async def close(self) -> None: ...

    module = types.SimpleNamespace(get_host_addresses=lambda *_: [], Connection=Connection)
    with pytest.raises(compat.CompatError, match="_closing"):
        compat.check(ice_module=module)


async def test_a_connection_closed_as_ice_completes_keeps_no_consent_loop() -> None:
    """The race as a peer meets it: close() runs after the check list completed but before
    connect() resumed to start the consent loop (aioice 0.13 leaked that loop every time)."""
    from aioice import Connection

    compat.restrict_ice_hosts(("127.0.0.1",))
    compat.stop_consent_after_close()
    a, b = Connection(ice_controlling=True), Connection(ice_controlling=False)
    connecting: list[asyncio.Task[None]] = []
    try:
        for one, other in ((a, b), (b, a)):
            await one.gather_candidates()
        for one, other in ((a, b), (b, a)):
            for candidate in other.local_candidates:
                await one.add_remote_candidate(candidate)
            await one.add_remote_candidate(None)
            one.remote_username, one.remote_password = other.local_username, other.local_password
        connecting += [asyncio.create_task(c.connect()) for c in (a, b)]
        for _ in range(100_000):  # loop turns, not time: the checks finish in a few hundred
            if a._check_list_done:
                break
            await asyncio.sleep(0)
        assert a._check_list_done, "ICE on loopback never completed"
        await a.close()
        await asyncio.gather(*connecting[:1], return_exceptions=True)
        for _ in range(3):
            await asyncio.sleep(0)
        consent = a._query_consent_task
        assert consent is None or consent.done()
    finally:
        compat.restrict_ice_hosts(())
        await a.close()
        await b.close()
        await asyncio.gather(*connecting, return_exceptions=True)


def test_the_installed_websockets_passes_the_hub_check_and_a_moved_drain_fails_it() -> None:
    from websockets.asyncio.connection import Connection

    from live.hub import ws_compat

    ws_compat.check()

    class NoDrain(Connection):
        drain = None  # type: ignore[assignment]

    with pytest.raises(ws_compat.WebsocketsCompatError, match="drain"):
        ws_compat.check(connection_class=NoDrain)
