"""Every RTCPeerConnection this process holds, under one cap, closed for sure at shutdown."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from aiortc import RTCPeerConnection

from checkout.errors import LivecartError
from live.hub.protocol import RateLimiter

__all__ = ["PeerRegistry", "Peer", "PeerCapReached", "ClientCapReached", "PeerRole"]

log = logging.getLogger(__name__)

_MAX_BUCKETS = 10_000  # addresses remembered for the new-session rate

PeerRole = Literal["publisher", "viewer"]


class PeerCapReached(LivecartError):
    """The process holds its maximum of peers; the client should try later (503)."""


class ClientCapReached(LivecartError):
    """One client address holds its maximum of peers, or asks for new ones too fast (429)."""


@dataclass(eq=False, slots=True)
class Peer:
    session_id: str
    stream_id: str
    role: PeerRole
    pc: RTCPeerConnection
    client: str
    created_at: float = field(default_factory=time.monotonic)


class PeerRegistry:
    def __init__(self, max_peers: int, max_per_client: int, new_per_client_s: float = 2.0,
                 new_burst: int = 10) -> None:
        self.max_peers = max_peers
        self.max_per_client = max_per_client
        self._peers: dict[str, Peer] = {}
        self._per_client: dict[str, int] = {}
        # Each new peer costs a DTLS key and ICE gathering, so an address that opens and
        # closes sessions in a loop is held to a rate, not only to a count.
        self._rate, self._burst = new_per_client_s, new_burst
        self._buckets: dict[str, RateLimiter] = {}

    def admit(self, stream_id: str, role: PeerRole, client: str) -> Peer:
        if len(self._peers) >= self.max_peers:
            raise PeerCapReached(f"this node holds its maximum of {self.max_peers} media peers")
        if self._per_client.get(client, 0) >= self.max_per_client:
            raise ClientCapReached(f"at most {self.max_per_client} media sessions per address")
        if not self._bucket(client).allow(time.monotonic()):
            raise ClientCapReached(f"at most {self._rate:g} new media sessions per second "
                                   f"per address (bursts of {self._burst})")
        peer = Peer(secrets.token_urlsafe(18), stream_id, role, RTCPeerConnection(), client)
        self._peers[peer.session_id] = peer
        self._per_client[client] = self._per_client.get(client, 0) + 1
        return peer

    def _bucket(self, client: str) -> RateLimiter:
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:  # forget idle addresses, not busy ones
                self._buckets = {c: b for c, b in self._buckets.items() if c in self._per_client}
            bucket = self._buckets[client] = RateLimiter(self._rate, self._burst, time.monotonic())
        return bucket

    def get(self, session_id: str) -> Peer | None:
        return self._peers.get(session_id)

    def count(self, role: PeerRole | None = None) -> int:
        return sum(1 for p in self._peers.values() if role is None or p.role == role)

    async def close(self, peer: Peer) -> None:
        if self._peers.pop(peer.session_id, None) is not None:
            left = self._per_client.pop(peer.client, 1) - 1
            if left:
                self._per_client[peer.client] = left
            try:
                await _close(peer.pc)
            except Exception:  # a half-negotiated peer can fail to close; it is gone anyway
                log.debug("closing a %s peer of stream %s failed", peer.role, peer.stream_id,
                          exc_info=True)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(p) for p in list(self._peers.values())))


async def _close(pc: RTCPeerConnection) -> None:
    """Close `pc`, then stop its senders and receivers again.

    aiortc's connect task checks nothing after its awaits: when the DTLS handshake ends while
    close() runs, it starts the senders and receivers close() had already stopped, and their
    RTCP loops would run for the life of the process (stopping twice is a no-op)."""
    try:
        await pc.close()
    finally:
        for sender in pc.getSenders():
            await sender.stop()
        for receiver in pc.getReceivers():
            await receiver.stop()
