"""The third-party internals livecart relies on are where its compatibility modules say
(live/video/compat.py, live/hub/ws_compat.py), and
the start-up check refuses loudly when one moves."""

from __future__ import annotations

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


def test_the_installed_websockets_passes_the_hub_check_and_a_moved_drain_fails_it() -> None:
    from websockets.asyncio.connection import Connection

    from live.hub import ws_compat

    ws_compat.check()

    class NoDrain(Connection):
        drain = None  # type: ignore[assignment]

    with pytest.raises(ws_compat.WebsocketsCompatError, match="drain"):
        ws_compat.check(connection_class=NoDrain)
