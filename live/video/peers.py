"""Every RTCPeerConnection this process holds, under one cap, closed for sure at shutdown."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from aiortc import RTCPeerConnection

__all__ = ["PeerRegistry", "Peer", "PeerCapReached", "PeerRole"]

log = logging.getLogger(__name__)

PeerRole = Literal["publisher", "viewer"]


class PeerCapReached(Exception):
    """The process holds its maximum of peers; the client should try later (503)."""


@dataclass(eq=False, slots=True)
class Peer:
    session_id: str
    stream_id: str
    role: PeerRole
    pc: RTCPeerConnection
    created_at: float = field(default_factory=time.monotonic)


class PeerRegistry:
    def __init__(self, max_peers: int) -> None:
        self.max_peers = max_peers
        self._peers: dict[str, Peer] = {}

    def admit(self, stream_id: str, role: PeerRole) -> Peer:
        if len(self._peers) >= self.max_peers:
            raise PeerCapReached(f"this node holds its maximum of {self.max_peers} media peers")
        peer = Peer(secrets.token_urlsafe(18), stream_id, role, RTCPeerConnection())
        self._peers[peer.session_id] = peer
        return peer

    def get(self, session_id: str) -> Peer | None:
        return self._peers.get(session_id)

    def count(self, role: PeerRole | None = None) -> int:
        return sum(1 for p in self._peers.values() if role is None or p.role == role)

    async def close(self, peer: Peer) -> None:
        if self._peers.pop(peer.session_id, None) is not None:
            try:
                await peer.pc.close()
            except Exception:  # a half-negotiated peer can fail to close; it is gone anyway
                log.debug("closing peer %s failed", peer.session_id, exc_info=True)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(p) for p in list(self._peers.values())))
