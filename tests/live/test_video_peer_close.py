"""The peer registry's close against a real aiortc peer pair in-process, over loopback UDP."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection

from conftest import UNIT, peer_tasks
from live.video.peers import PeerRole, PeerRegistry
from loadtest.video_source import CounterTrack
from shop import eventually


@pytest.mark.parametrize("role", ["viewer", "publisher"])
async def test_a_peer_closed_while_its_dtls_completes_leaves_no_task_running(
        role: PeerRole) -> None:
    """The registry closes the node's peer the moment the client's DTLS handshake ends, so
    the node's own handshake ends while close() runs. aiortc's connect task then starts the
    senders (a viewer's) or receivers (a publisher's) that close() had already stopped; left
    running, their RTCP loops run for the rest of the process."""
    registry = PeerRegistry(max_peers=2, max_per_client=2)
    client = RTCPeerConnection()
    peer = registry.admit("s_test", role, "127.0.0.1")
    if role == "viewer":
        client.addTransceiver("video", direction="recvonly")
        await client.setLocalDescription(await client.createOffer())
        peer.pc.addTransceiver(CounterTrack(), direction="sendonly")
    else:
        client.addTransceiver(CounterTrack(), direction="sendonly")
        await client.setLocalDescription(await client.createOffer())
        peer.pc.addTransceiver("video", direction="recvonly")
    await peer.pc.setRemoteDescription(client.localDescription)
    await peer.pc.setLocalDescription(await peer.pc.createAnswer())
    before = asyncio.all_tasks()
    closed = asyncio.Event()

    async def close() -> None:
        await registry.close(peer)
        closed.set()

    dtls = client.getTransceivers()[0].receiver.transport

    @dtls.on("statechange")
    def on_state() -> None:
        if dtls.state == "connected":
            asyncio.ensure_future(close())

    await client.setRemoteDescription(peer.pc.localDescription)
    await eventually(closed.is_set, "the registry to close the peer")
    await client.close()
    assert registry.count() == 0
    started = peer_tasks(asyncio.all_tasks() - before)
    if started:
        await asyncio.wait(started, timeout=5 * UNIT)
    left = peer_tasks(set(started))
    assert not left, [t.get_coro().__qualname__ for t in left]
