"""The shared-encoder plumbing without sockets: keyframe coalescing and per-viewer queues."""

from __future__ import annotations

import asyncio

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from live.video.keyframes import KeyframePolicy
from live.video.tracks import Fanout, PacketTrack


def test_keyframe_requests_coalesce_into_one_per_interval() -> None:
    policy = KeyframePolicy(min_interval_s=0.5)
    for _ in range(50):  # fifty viewers join at once
        policy.request()
    assert policy.should_force(10.0) is True
    assert policy.should_force(10.0) is False  # all fifty answered by that one
    policy.request()
    assert policy.should_force(10.2) is False  # too soon: waits
    assert policy.pending
    assert policy.should_force(10.6) is True
    assert (policy.requests, policy.forced) == (51, 2)


def test_a_natural_keyframe_answers_pending_requests() -> None:
    policy = KeyframePolicy(min_interval_s=0.5)
    policy.request()
    policy.saw_keyframe(3.0)
    assert not policy.pending
    assert policy.should_force(10.0) is False


def _packet(pts: int, key: bool) -> av.Packet:
    packet = av.Packet(b"\x00\x00\x00\x01" + bytes([0x65 if key else 0x41]) + b"x" * 10)
    packet.pts = pts
    packet.is_keyframe = key
    return packet


async def test_a_viewer_starts_on_a_keyframe_and_restarts_on_one_when_it_falls_behind() -> None:
    asks: list[int] = []
    fanout = Fanout(lambda: asks.append(1))
    track = PacketTrack("video", fanout, queue_max=3)
    fanout.subscribe(track)
    assert asks == [1]  # joining asks for a keyframe
    fanout.publish(_packet(1, key=False))  # mid-GOP: useless to a new decoder
    fanout.publish(_packet(2, key=True))
    fanout.publish(_packet(3, key=False))
    assert [(await track.recv()).pts for _ in range(2)] == [2, 3]
    assert track.first_pts == 2
    for pts in range(4, 8):  # the viewer stops reading: its queue (3) overflows
        fanout.publish(_packet(pts, key=False))
    assert track.dropped == 1 and asks == [1, 1]  # reset, and a keyframe asked for
    fanout.publish(_packet(8, key=False))
    fanout.publish(_packet(9, key=True))
    assert (await track.recv()).pts == 9
    track.stop()
    assert track not in fanout.subscribers
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_recv_wakes_when_a_packet_arrives_and_when_stopped() -> None:
    fanout = Fanout(lambda: None)
    track = PacketTrack("audio", fanout, queue_max=10)
    fanout.subscribe(track)
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    fanout.publish(_packet(5, key=False))  # audio has no keyframe gate
    assert (await waiting).pts == 5
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting


async def test_an_address_gets_a_bounded_rate_of_new_peers() -> None:
    from live.video.peers import ClientCapReached, PeerRegistry
    registry = PeerRegistry(max_peers=100, max_per_client=100, new_per_client_s=0.001,
                            new_burst=2)
    admitted = [registry.admit("s_1", "viewer", "10.0.0.1") for _ in range(2)]
    with pytest.raises(ClientCapReached, match="per second"):
        registry.admit("s_1", "viewer", "10.0.0.1")
    for peer in admitted:
        await registry.close(peer)
    with pytest.raises(ClientCapReached):  # closing sessions does not refill the bucket
        registry.admit("s_1", "viewer", "10.0.0.1")
    other = registry.admit("s_1", "viewer", "10.0.0.2")
    await registry.close_all()
    assert registry.count() == 0 and registry.get(other.session_id) is None
