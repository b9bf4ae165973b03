"""Live video end to end: real aiortc peers over loopback against a real node.

The publisher sends a synthetic camera whose frames carry their number; viewers decode the
frames and read it back, so "video works" means the picture advances, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import UNIT, Live, make_settings, start_node, stop_node
from loadtest.video_source import CounterTrack
from loadtest.webrtc_peers import Publisher, Viewer, WhipError, publish, watch
from shop import eventually, make_brand, make_product, make_stream, video_stats

LOOPBACK = {"video_ice_hosts": ("127.0.0.1",)}



@pytest.fixture
def node_settings() -> dict[str, Any]:
    return dict(LOOPBACK)


async def scheduled_stream(live: Live) -> dict[str, Any]:
    await make_brand(live)
    return await make_stream(live, [(await make_product(live))["id"]])


async def stream_state(live: Live, stream_id: str) -> dict[str, Any]:
    return (await live.http.get(f"/api/v1/streams/{stream_id}")).json()


async def start_publisher(live: Live, stream_id: str) -> Publisher:
    return await publish(live.http, stream_id, live.token("creator", "cleo"), CounterTrack())


def advancing(viewer: Viewer, at_least: int) -> bool:
    return len(viewer.counters) >= at_least


def publisher_says(viewer: Viewer, ingest: str) -> bool:
    return any(m.get("type") == "publisher" and m.get("ingest") == ingest for m in viewer.messages)


async def test_two_viewers_see_the_picture_advance_from_one_encoder(live: Live) -> None:
    stream = await scheduled_stream(live)
    publisher = await start_publisher(live, stream["id"])
    assert (await stream_state(live, stream["id"]))["state"] == "live"  # WHIP made it live
    viewers = [await watch(live.http, stream["id"]) for _ in range(2)]
    for viewer in viewers:
        await eventually(lambda v=viewer: advancing(v, 30), "30 decoded frames per viewer")
    for viewer in viewers:
        assert viewer.counters == sorted(viewer.counters), "frames arrive in order"
        assert viewer.counters[-1] - viewer.counters[0] >= 29
    stats = await video_stats(live, stream["id"])
    assert stats["encoders"] == 1 and stats["viewers"] == 2 and stats["publisher"] is True
    # Packetized once per stream: the second viewer's sender reuses the first's payloads.
    assert stats["packets_packetization_reused"] > 0
    # No viewer's sender has an encoder of its own: each holds the stream's packetizer,
    # which only packs the shared encoder's packets.
    session = live.services.video.sessions[stream["id"]]
    video_senders = [s for p in session.viewers.values() for s in p.pc.getSenders()
                     if s.track is not None and s.track.kind == "video"]
    assert len(video_senders) == 2
    assert all(s._RTCRtpSender__encoder is session.video.packer for s in video_senders)
    assert session.video.packer.codec is None  # it never encoded a frame
    # A viewer's PLI/FIR (what aiortc's sender does on one) asks the shared encoder.
    asked = session.video.keyframes.requests
    video_senders[0]._send_keyframe()
    assert session.video.keyframes.requests == asked + 1
    publisher_pc = live.services.video.sessions[stream["id"]].publisher.pc
    ingest = [t for t in publisher_pc.getTransceivers() if t.kind == "video"][0]
    assert ingest._codecs[0].mimeType == "video/H264"  # the cheaper decode is chosen
    assert (stats["width"], stats["height"]) == (640, 360)
    # Two viewers asked for a keyframe; the shared encoder forced at most as many.
    assert stats["keyframe_requests"] >= 2
    assert 1 <= stats["keyframes_forced"] <= stats["keyframe_requests"]
    for viewer in viewers:
        assert await viewer.stop() == 200
    await eventually(lambda: live.services.video.peers.count("viewer") == 0, "viewer peers closed")
    assert await publisher.stop() == 200


@pytest.mark.parametrize("node_settings", [{**LOOPBACK, "video_encode": "per_viewer"}])
async def test_the_per_viewer_baseline_runs_one_encoder_per_viewer(live: Live) -> None:
    """The load test's baseline: the same picture, but each viewer's sender encodes it."""
    stream = await scheduled_stream(live)
    await start_publisher(live, stream["id"])
    viewers = [await watch(live.http, stream["id"]) for _ in range(2)]
    for viewer in viewers:
        await eventually(lambda v=viewer: advancing(v, 10), "frames per viewer")
        assert viewer.counters == sorted(viewer.counters)
    stats = await video_stats(live, stream["id"])
    assert (stats["encode"], stats["encoders"], stats["viewers"]) == ("per_viewer", 2, 2)


async def test_a_publisher_whose_offer_has_no_candidates_still_connects(live: Live) -> None:
    """OBS sends its offer before ICE gathering ends, so it may carry no candidates and it
    never trickles: the node answers with its own and learns the publisher's address from
    its connectivity checks (peer-reflexive)."""
    import re

    from aiortc import RTCPeerConnection, RTCSessionDescription
    stream = await scheduled_stream(live)
    pc = RTCPeerConnection()
    pc.addTransceiver(CounterTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = re.sub(r"a=(candidate:[^\r]*|end-of-candidates)\r\n", "", pc.localDescription.sdp)
    assert "a=candidate" not in offer
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/whip", content=offer,
                             headers={"Content-Type": "application/sdp",
                                      **live.auth("creator", "cleo")})
    assert r.status_code == 201, r.text
    await pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
    viewer = await watch(live.http, stream["id"])
    await eventually(lambda: advancing(viewer, 10), "frames from the candidate-less publisher")
    await pc.close()


async def test_audio_is_encoded_once_and_reaches_viewers(live: Live) -> None:
    from aiortc.mediastreams import AudioStreamTrack  # 20 ms frames of silence, paced
    stream = await scheduled_stream(live)
    await publish(live.http, stream["id"], live.token("creator", "cleo"), CounterTrack(),
                  audio=AudioStreamTrack())
    viewers = [await watch(live.http, stream["id"]) for _ in range(2)]
    for viewer in viewers:
        await eventually(lambda v=viewer: v.audio_frames >= 25, "half a second of audio per viewer")
    stats = await video_stats(live, stream["id"])
    assert stats["audio_packets_encoded"] > 0
    assert stats["encoders"] == 1


async def test_overlay_deltas_ride_the_data_channel_stamped_with_media_time(live: Live) -> None:
    stream = await scheduled_stream(live)
    await start_publisher(live, stream["id"])
    viewer = await watch(live.http, stream["id"])
    await eventually(lambda: advancing(viewer, 5), "frames")
    await eventually(lambda: any(m["type"] == "clock" for m in viewer.messages), "the clock message")
    clock = next(m for m in viewer.messages if m["type"] == "clock")
    assert clock["clock_rate"] == 90_000 and clock["first_pts"] >= 0
    product_id = stream["lineup"][0]
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/pins", json={"product_id": product_id},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text

    def pin_message() -> dict[str, Any] | None:
        return next((m for m in viewer.messages if m["type"] == "overlay"
                     and m["message"]["type"] == "pin"), None)

    await eventually(lambda: pin_message() is not None, "the pin on the data channel")
    pin = pin_message()
    assert pin is not None and pin["message"]["product_id"] == product_id
    assert pin["seq"] == pin["message"]["seq"]
    session = live.services.video.sessions[stream["id"]]
    assert clock["first_pts"] < pin["pts"] <= session.clock.now()


async def test_a_lost_publisher_reconnects_and_viewers_keep_watching(live: Live) -> None:
    stream = await scheduled_stream(live)
    first = await start_publisher(live, stream["id"])
    viewer = await watch(live.http, stream["id"])
    await eventually(lambda: advancing(viewer, 10), "frames")
    await first.vanish()  # no DELETE: the connection just goes away
    await eventually(lambda: publisher_says(viewer, "reconnecting"), "reconnecting on the data channel")
    assert (await stream_state(live, stream["id"]))["ingest"] == "reconnecting"
    assert (await stream_state(live, stream["id"]))["state"] == "live"
    seen = len(viewer.counters)
    await start_publisher(live, stream["id"])  # a new CounterTrack counts from 0 again
    await eventually(lambda: len(viewer.counters) > seen + 10, "frames from the new publisher")
    assert (await stream_state(live, stream["id"]))["ingest"] == "live"
    after = viewer.counters[seen - 1:]
    assert any(b < a for a, b in zip(after, after[1:])), "the same session shows the new source"
    assert (await video_stats(live, stream["id"]))["encoders"] == 1


async def test_a_host_whose_connection_dropped_can_still_stop(live: Live) -> None:
    stream = await scheduled_stream(live)
    publisher = await start_publisher(live, stream["id"])
    viewer = await watch(live.http, stream["id"])
    await eventually(lambda: advancing(viewer, 5), "frames")
    await publisher.vanish()
    await eventually(lambda: publisher_says(viewer, "reconnecting"), "reconnecting")
    r = await live.http.delete(publisher.location, headers=live.auth("creator", "cleo"))
    assert r.status_code == 200
    await eventually(viewer.ended.is_set, "the viewer's track to end")
    assert (await stream_state(live, stream["id"]))["state"] == "ended"


@pytest.mark.parametrize("node_settings", [{**LOOPBACK, "video_reconnect_grace_s": 0.5}])
async def test_a_publisher_that_does_not_come_back_ends_the_stream(live: Live) -> None:
    stream = await scheduled_stream(live)
    publisher = await start_publisher(live, stream["id"])
    viewer = await watch(live.http, stream["id"])
    await eventually(lambda: advancing(viewer, 5), "frames")
    await publisher.vanish()
    await eventually(lambda: publisher_says(viewer, "reconnecting"), "reconnecting")
    await eventually(viewer.ended.is_set, "the viewer's track to end")
    state = await stream_state(live, stream["id"])
    assert (state["state"], state["ingest"]) == ("ended", "none")
    assert live.services.video.peers.count() == 0


async def test_whip_delete_ends_the_stream_and_tells_viewers(live: Live) -> None:
    stream = await scheduled_stream(live)
    publisher = await start_publisher(live, stream["id"])
    viewer = await watch(live.http, stream["id"])
    await eventually(lambda: advancing(viewer, 5), "frames")
    r = await live.http.delete(publisher.location, headers=live.auth("creator", "mallory"))
    assert r.status_code == 403  # another creator cannot stop it
    assert await publisher.stop() == 200
    await eventually(lambda: publisher_says(viewer, "none"), "the end on the data channel")
    await eventually(viewer.ended.is_set, "the viewer's track to end")
    assert (await stream_state(live, stream["id"]))["state"] == "ended"
    r = await live.http.delete(publisher.location, headers=live.auth("creator", "cleo"))
    assert r.status_code == 404
    with pytest.raises(WhipError) as refused:
        await start_publisher(live, stream["id"])
    assert refused.value.status == 409  # an ended stream does not come back


async def test_ending_the_stream_over_the_api_stops_its_video(live: Live) -> None:
    stream = await scheduled_stream(live)
    await start_publisher(live, stream["id"])
    viewer = await watch(live.http, stream["id"])
    await eventually(lambda: advancing(viewer, 5), "frames")
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/end", headers=live.auth("creator", "cleo"))
    assert r.status_code == 200
    await eventually(viewer.ended.is_set, "the viewer's track to end")
    await eventually(lambda: live.services.video.peers.count() == 0, "every peer closed")


async def test_who_may_publish(live: Live) -> None:
    stream = await scheduled_stream(live)
    track = CounterTrack()
    for token, status in ((None, 401), ("not-a-jwt", 401), (live.token("buyer", "bob"), 403),
                          (live.token("creator", "mallory"), 403)):
        with pytest.raises(WhipError) as refused:
            await publish(live.http, stream["id"], token or "", track) if token else \
                await _publish_without_token(live, stream["id"])
        assert refused.value.status == status
        assert '"type"' in refused.value.body  # a problem document
    assert live.services.video.peers.count() == 0
    # An operator may publish for any creator.
    await publish(live.http, stream["id"], live.token("operator", "ops"), CounterTrack())
    # A second publisher on the same stream is refused while the first is on.
    with pytest.raises(WhipError) as refused:
        await start_publisher(live, stream["id"])
    assert refused.value.status == 409


async def _publish_without_token(live: Live, stream_id: str) -> Publisher:
    from aiortc import RTCPeerConnection
    pc = RTCPeerConnection()
    pc.addTransceiver(CounterTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    r = await live.http.post(f"/api/v1/streams/{stream_id}/whip", content=pc.localDescription.sdp,
                             headers={"Content-Type": "application/sdp"})
    await pc.close()
    raise WhipError(r.status_code, r.text)


async def test_two_publishers_racing_for_one_stream_get_one_session(live: Live) -> None:
    stream = await scheduled_stream(live)
    results = await asyncio.gather(*(start_publisher(live, stream["id"]) for _ in range(3)),
                                   return_exceptions=True)
    winners = [r for r in results if isinstance(r, Publisher)]
    refused = [r for r in results if isinstance(r, WhipError)]
    assert len(winners) == 1 and [r.status for r in refused] == [409, 409], results
    assert live.services.video.peers.count("publisher") == 1
    viewer = await watch(live.http, stream["id"])
    await eventually(lambda: advancing(viewer, 5), "frames from the one publisher")


async def test_whep_without_video_and_unknown_streams(live: Live) -> None:
    stream = await scheduled_stream(live)
    with pytest.raises(WhipError) as refused:
        await watch(live.http, stream["id"])
    assert refused.value.status == 404 and "no-video" in refused.value.body
    with pytest.raises(WhipError) as refused:
        await watch(live.http, "s_000000000000")
    assert refused.value.status == 404
    assert live.services.video.peers.count() == 0


@pytest.mark.parametrize("node_settings", [{**LOOPBACK, "video_max_peers": 2}])
async def test_peers_beyond_the_cap_get_503(live: Live) -> None:
    stream = await scheduled_stream(live)
    await start_publisher(live, stream["id"])
    first = await watch(live.http, stream["id"])
    with pytest.raises(WhipError) as refused:
        await watch(live.http, stream["id"])
    assert refused.value.status == 503
    await first.stop()
    await eventually(lambda: live.services.video.peers.count() == 1, "the viewer's peer closed")
    await watch(live.http, stream["id"])  # room again


@pytest.mark.parametrize("node_settings", [{**LOOPBACK, "video_max_peers_per_ip": 2}])
async def test_one_address_gets_a_bounded_share_of_peers(live: Live) -> None:
    stream = await scheduled_stream(live)
    await start_publisher(live, stream["id"])
    await watch(live.http, stream["id"])
    with pytest.raises(WhipError) as refused:
        await watch(live.http, stream["id"])
    assert refused.value.status == 429
    metrics = (await live.http.get("/metrics")).text
    assert 'livecart_video_peers{role="publisher"} 1.0' in metrics
    assert 'livecart_video_peers{role="viewer"} 1.0' in metrics
    assert "livecart_video_encoders 1.0" in metrics or "livecart_video_encoders 0.0" in metrics


@pytest.mark.parametrize("node_settings", [{**LOOPBACK, "video_connect_timeout_s": 1.0}])
async def test_an_answer_nobody_connects_to_frees_its_peer(live: Live,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc import RTCPeerConnection
    stream = await scheduled_stream(live)
    await start_publisher(live, stream["id"])
    video = live.services.video
    # Past its own connect allowance (the same timeout) before the viewer comes: on a busy
    # machine a publisher still connecting would be dropped by the same rule.
    await eventually(lambda: video.sessions[stream["id"]].video.last_frame_at is not None,
                     "the publisher's first frame")
    admitted = []
    admit = video.peers.admit
    monkeypatch.setattr(video.peers, "admit",
                        lambda *args: admitted.append(admit(*args)) or admitted[-1])
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    await pc.close()  # gone before it ever sends a packet
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/whep", content=pc.localDescription.sdp,
                             headers={"Content-Type": "application/sdp"})
    assert r.status_code == 201
    assert [peer.role for peer in admitted] == ["viewer"]  # it held a slot once answered
    await eventually(lambda: video.peers.count("viewer") == 0, "the stale viewer dropped")
    assert video.peers.count("publisher") == 1


async def test_shutdown_closes_every_peer(live: Live, tmp_path: Any, valkey: Any) -> None:
    settings = make_settings(valkey, tmp_path / "second", **LOOPBACK)
    services, server, task, url = await start_node(settings)
    import httpx
    async with httpx.AsyncClient(base_url=url, timeout=10 * UNIT) as http:
        other = Live(url, services, http, "")
        stream = await scheduled_stream(other)
        await publish(http, stream["id"], other.token("creator", "cleo"), CounterTrack())
        viewer = await watch(http, stream["id"])
        await eventually(lambda: advancing(viewer, 3), "frames")
        registry = services.video.peers
        pcs = [p.pc for p in registry._peers.values()]
        await stop_node(services, server, task)
    assert registry.count() == 0
    assert all(pc.connectionState == "closed" for pc in pcs)
    await eventually(viewer.ended.is_set, "the viewer's track to end")
