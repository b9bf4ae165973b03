"""Every private aiortc and aioice internal livecart touches, in one place, with the
versions it was checked against and a start-up self-check (`check`) that fails loudly if
they moved, instead of video silently encoding per viewer or ignoring keyframe requests.

- aiortc keeps a sender's encoder in the name-mangled `RTCRtpSender.__encoder`: a viewer's
  sender gets the stream's shared packetizer there (one packetization per stream).
- aiortc asks the encoder for a keyframe through `RTCRtpSender._send_keyframe` on a
  viewer's PLI/FIR: it is pointed at the shared encoder's coalescing request instead.
- aioice offers every interface address but loopback and has no setting for it: its
  address lookup, `aioice.ice.get_host_addresses`, is replaced once per process.
- aioice's `Connection.connect` starts the consent-freshness loop after it resumes from the
  check list, even when `close()` ran meanwhile (a peer closed as ICE completes): the loop then
  runs forever with no pair to check. `stop_consent_after_close` makes that loop end at once
  on a closing connection (read from `Connection._closing`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import aioice.ice
from aiortc.rtcrtpsender import RTCRtpSender

from checkout.errors import LivecartError

__all__ = ["AIORTC_VERSIONS", "AIOICE_VERSIONS", "CompatError", "check", "set_sender_encoder",
           "route_keyframe_requests", "restrict_ice_hosts", "stop_consent_after_close"]

# [lowest, highest) release checked; pyproject.toml bounds the install the same way.
AIORTC_VERSIONS = ((1, 14), (1, 17))
AIOICE_VERSIONS = ((0, 9), (0, 14))
_ENCODER_ATTRIBUTE = "_RTCRtpSender__encoder"

_original_host_addresses = aioice.ice.get_host_addresses


class CompatError(LivecartError, RuntimeError):
    """An aiortc/aioice internal livecart relies on is not where it was."""


def _release(package: str) -> tuple[int, int]:
    major, minor, *_ = version(package).split(".")
    return int(major), int(minor)


def check(sender_class: type[RTCRtpSender] = RTCRtpSender, ice_module: Any = aioice.ice) -> None:
    """Fail loudly (CompatError) if an internal below moved; run once at start."""
    for package, (low, high) in (("aiortc", AIORTC_VERSIONS), ("aioice", AIOICE_VERSIONS)):
        if not low <= _release(package) < high:
            raise CompatError(f"{package} {version(package)} is outside the checked range "
                              f"{low} to {high} (live/video/compat.py)")
    init_names = sender_class.__init__.__code__.co_names
    run_names = sender_class._run_rtp.__code__.co_names if hasattr(sender_class, "_run_rtp") else ()
    if _ENCODER_ATTRIBUTE not in init_names or _ENCODER_ATTRIBUTE not in run_names:
        raise CompatError("aiortc's RTCRtpSender no longer keeps its encoder in __encoder")
    if not callable(getattr(sender_class, "_send_keyframe", None)):
        raise CompatError("aiortc's RTCRtpSender has no _send_keyframe")
    if not callable(getattr(ice_module, "get_host_addresses", None)):
        raise CompatError("aioice.ice has no get_host_addresses")
    connection = getattr(ice_module, "Connection", None)
    if connection is None or not callable(getattr(connection, "query_consent", None)) \
            or "_closing" not in connection.close.__code__.co_names:
        raise CompatError("aioice's Connection no longer marks itself _closing in close()")


def set_sender_encoder(sender: RTCRtpSender, encoder: object) -> None:
    """Make `sender` packetize with `encoder` (the stream's shared packer)."""
    setattr(sender, _ENCODER_ATTRIBUTE, encoder)


def route_keyframe_requests(sender: RTCRtpSender, request: Callable[[], None]) -> None:
    """Send `sender`'s keyframe requests (a viewer's PLI/FIR) to `request`."""
    # Replacing the method is the point; check() verifies aiortc still has it.
    sender._send_keyframe = request  # type: ignore[method-assign]


def restrict_ice_hosts(addresses: tuple[str, ...]) -> None:
    """Offer only `addresses` as ICE host candidates, in every peer of the process; an
    empty tuple restores aioice's choice (every interface but loopback). Servers want their
    public address; tests and load tests want 127.0.0.1 so no media leaves loopback."""
    if not addresses:
        aioice.ice.get_host_addresses = _original_host_addresses
        return
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


_original_query_consent = aioice.ice.Connection.query_consent


async def _query_consent_unless_closing(self: aioice.ice.Connection) -> None:
    if getattr(self, "_closing", False):
        return  # close() ran while connect() was resuming: nothing left to keep alive
    await _original_query_consent(self)


def stop_consent_after_close() -> None:
    """End aioice's consent loop at once on a connection already closing (idempotent).

    close() sets `_closing` before anything else and cancels a loop it finds; a loop that
    connect() starts after that sees `_closing` on its first step. Without this, each peer
    closed just as ICE completed kept a task alive for the life of the process."""
    aioice.ice.Connection.query_consent = _query_consent_unless_closing  # type: ignore[method-assign]
