"""This node's live video: one `StreamVideo` per stream with a publisher, and the rules that
tie it to the stream's lifecycle.

- WHIP publish: the stream goes live (if it was scheduled), its ingest is `live`.
- Publisher lost (its peer fails, or no frame for `publisher_timeout_s`): ingest becomes
  `reconnecting`; a new WHIP publish within `reconnect_grace_s` resumes the same encoder,
  so viewers keep their sessions; otherwise the stream ends.
- WHIP DELETE (the host stopped) or the stream ended over the API: viewers are told on the
  data channel, their peers are closed, the encoder stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiortc import RTCDataChannel, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription

from live.hub.rooms import Hub
from live.streams.lifecycle import IllegalStreamMove, StreamAction, StreamState
from live.streams.store import StreamStore
from checkout.errors import Refused
from checkout.tasks import stop_task
from live.video.encoder import VIDEO_CLOCK_RATE, SharedVideoEncoder, VideoFormat
from live.video.compat import route_keyframe_requests, set_sender_encoder
from live.video.peers import Peer, PeerRegistry
from live.video.recorder import Recorder, RecordingConfig
from live.video.recordings import Recordings
from live.video.sdp import OfferSummary
from live.video.stream_video import EncodeMode, StreamVideo
from live.video.tracks import FrameTrack, PacketTrack

__all__ = ["VideoService", "VideoLimits", "VideoError"]

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class VideoLimits:
    max_peers: int = 200
    max_peers_per_ip: int = 20
    new_sessions_per_ip_s: float = 2.0
    viewer_queue_packets: int = 90  # ~3 s of 30 fps video per viewer before it is reset
    publisher_timeout_s: float = 3.0
    connect_timeout_s: float = 10.0  # ICE + DTLS, for publishers and viewers
    reconnect_grace_s: float = 30.0
    encode: EncodeMode = "shared"
    max_data_channel_buffer: int = 256 * 1024  # overlay messages to a stuck viewer are dropped


class VideoError(Refused):
    """A WHIP/WHEP request the video rules refuse (no video, a publisher already there...)."""


class VideoService:
    def __init__(self, streams: StreamStore, hub: Hub, fmt: VideoFormat, limits: VideoLimits,
                 recording: RecordingConfig | None = None,
                 recordings: Recordings | None = None) -> None:
        self.streams = streams
        self.recording = recording  # None: shows are not recorded on this node
        self.recordings = recordings
        self.hub = hub
        self.fmt = fmt
        self.limits = limits
        self.peers = PeerRegistry(limits.max_peers, limits.max_peers_per_ip,
                                  limits.new_sessions_per_ip_s)
        self.sessions: dict[str, StreamVideo] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False
        self._publish_locks: dict[str, asyncio.Lock] = {}

    def start(self) -> None:
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name="video-watchdog")
        if self.recordings is not None:
            self.recordings.start()

    # -- WHIP ----------------------------------------------------------------------------
    async def publish(self, stream: dict[str, Any], offer: str, summary: OfferSummary,
                      client: str) -> tuple[Peer, str]:
        # One publish at a time per stream: two hosts' (or one host's retried) offers must
        # not both find the stream free.
        async with self._publish_locks.setdefault(stream["id"], asyncio.Lock()):
            return await self._publish(stream, offer, summary, client)

    async def _publish(self, stream: dict[str, Any], offer: str, summary: OfferSummary,
                       client: str) -> tuple[Peer, str]:
        stream_id = stream["id"]
        if stream["state"] in (StreamState.ENDED, StreamState.CANCELLED):
            raise VideoError(409, "stream-over", f"the stream is {stream['state']}")
        session = self.sessions.get(stream_id)
        if session is not None and session.publisher is not None:
            raise VideoError(409, "already-publishing",
                             "this stream has a publisher; DELETE its session first")
        peer = self.peers.admit(stream_id, "publisher", client)
        if session is None:
            session = StreamVideo(stream_id, self.fmt, self.limits.encode,
                                  self.limits.max_data_channel_buffer, self._on_room_message)
            self.sessions[stream_id] = session
            if self.recording is not None and isinstance(session.video, SharedVideoEncoder):
                session.recorder = Recorder(self.recording.root / stream_id, session.clock,
                                            session.video, session.audio, self.recording)
                session.recorder.start()
                await self.streams.set_recorded(stream_id, True)
        session.publisher = peer
        try:
            if session.room is None:
                session.room = await self.hub.tap(stream_id, stream["lineup"], session.tap)
            answer = await self._negotiate_publisher(session, peer, offer, summary)
            await self._ingest_started(session, stream)
        except BaseException:
            # Refused offer, Valkey down, cancelled: no peer or empty session is left behind.
            session.publisher = None
            await self.peers.close(peer)
            if not session.viewers and session.ingest == "none":
                await self._discard(session)
            raise
        return peer, answer

    async def _negotiate_publisher(self, session: StreamVideo, peer: Peer, offer: str,
                                   summary: OfferSummary) -> str:
        pc = peer.pc
        if session.recorder is not None:
            session.recorder.expect_audio = summary.audio

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "video":
                asyncio.ensure_future(session.video.use_source(track))
            elif track.kind == "audio":
                session.audio.use_source(track)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and session.publisher is peer:
                await self._publisher_lost(session, "peer " + pc.connectionState)

        # H.264 in when the publisher offers it (OBS does, browsers can): ffmpeg decodes it
        # for a fraction of what VP8 costs (BENCHMARKS.md).
        pc.addTransceiver("video", direction="recvonly").setCodecPreferences(_ingest_video())
        if summary.audio:
            pc.addTransceiver("audio", direction="recvonly")
        return await self._negotiate(peer, offer)

    async def stop_publishing(self, stream_id: str, session_id: str) -> bool:
        session = self.sessions.get(stream_id)
        # A host whose connection dropped can still stop with the session it was given.
        if session is None or session_id not in (
                session.publisher.session_id if session.publisher else None,
                session.lost_publisher_id):
            return False
        await self._end(session, "the host stopped publishing")
        return True

    # -- WHEP ----------------------------------------------------------------------------
    async def play(self, stream_id: str, offer: str, summary: OfferSummary,
                   client: str) -> tuple[Peer, str]:
        session = self.sessions.get(stream_id)
        if session is None:
            raise VideoError(404, "no-video", "this stream has no live video on this node")
        peer = self.peers.admit(stream_id, "viewer", client)
        pc = peer.pc
        session.viewers[peer.session_id] = peer
        tracks: list[Any] = []
        try:
            # Transceivers made before the offer is applied take its m-lines, with our codec
            # preference (H.264 only: what the shared encoder makes) and our tracks.
            if summary.video:
                track = self._viewer_video_track(session, peer)
                tracks.append(track)
                transceiver = pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(_h264_only())
                if isinstance(session.video, SharedVideoEncoder):
                    # A viewer's PLI/FIR reaches the shared encoder, coalesced there.
                    route_keyframe_requests(transceiver.sender,
                                            session.video.fanout.request_keyframe)
                    set_sender_encoder(transceiver.sender, session.video.packer)
            if summary.audio:
                audio = PacketTrack("audio", session.audio.fanout, self.limits.viewer_queue_packets)
                session.audio.fanout.subscribe(audio)
                tracks.append(audio)
                pc.addTransceiver(audio, direction="sendonly")

            @pc.on("datachannel")
            def on_channel(channel: RTCDataChannel) -> None:
                if channel.label == "overlay":
                    session.channels[peer.session_id] = channel
                    first = next((t.first_pts for t in tracks if isinstance(t, PacketTrack)
                                  and t.kind == "video" and t.first_pts is not None), None)
                    if first is not None:
                        _send_clock(channel, first)
                    _send(channel, {"type": "publisher", "ingest": session.ingest})

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    await self._drop_viewer(session, peer)

            answer = await self._negotiate(peer, offer)
        except BaseException:
            for track in tracks:
                track.stop()
            await self._drop_viewer(session, peer)
            raise
        return peer, answer

    async def stop_playing(self, stream_id: str, session_id: str) -> bool:
        session = self.sessions.get(stream_id)
        peer = session.viewers.get(session_id) if session is not None else None
        if session is None or peer is None:
            return False
        await self._drop_viewer(session, peer)
        return True

    def _viewer_video_track(self, session: StreamVideo, peer: Peer) -> PacketTrack | FrameTrack:
        queue = self.limits.viewer_queue_packets
        if isinstance(session.video, SharedVideoEncoder):
            track = PacketTrack("video", session.video.fanout, queue)

            def on_first_packet(pts: int) -> None:
                channel = session.channels.get(peer.session_id)
                if channel is not None:
                    _send_clock(channel, pts)

            track.on_first_packet = on_first_packet
            session.video.fanout.subscribe(track)
            return track
        frames = FrameTrack("video", session.video.fanout, queue)
        session.video.fanout.subscribe(frames)
        return frames

    # -- lifecycle -----------------------------------------------------------------------
    async def _negotiate(self, peer: Peer, offer: str) -> str:
        await peer.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        answer = await peer.pc.createAnswer()
        await peer.pc.setLocalDescription(answer)
        return peer.pc.localDescription.sdp

    async def _ingest_started(self, session: StreamVideo, stream: dict[str, Any]) -> None:
        await stop_task(session.grace_task)
        session.grace_task = None
        if stream["state"] == StreamState.SCHEDULED:
            try:
                await self.streams.act(session.stream_id, StreamAction.GO_LIVE)
            except IllegalStreamMove:
                pass  # went live concurrently
        session.ingest = "live"
        await self.streams.set_ingest(session.stream_id, "live")
        session.send_overlay({"type": "publisher", "ingest": "live"})

    async def _publisher_lost(self, session: StreamVideo, why: str) -> None:
        peer, session.publisher = session.publisher, None
        if peer is None:
            return
        session.lost_publisher_id = peer.session_id
        log.info("stream %s lost its publisher (%s); reconnect window %.0f s",
                 session.stream_id, why, self.limits.reconnect_grace_s)
        await session.video.drop_source()
        await session.audio.drop_source()
        await self.peers.close(peer)
        if self._closing or self.sessions.get(session.stream_id) is not session:
            return
        session.ingest = "reconnecting"
        session.send_overlay({"type": "publisher", "ingest": "reconnecting"})
        await self.streams.set_ingest(session.stream_id, "reconnecting")
        session.grace_task = asyncio.create_task(self._grace(session), name="video-grace")

    async def _grace(self, session: StreamVideo) -> None:
        await asyncio.sleep(self.limits.reconnect_grace_s)
        session.grace_task = None  # this task is ending the stream; do not cancel it
        await self._end(session, "the publisher did not come back")

    async def _end(self, session: StreamVideo, why: str) -> None:
        """Stop the stream's video here, and end the stream if it is still live.

        The stream's record changes first, so whoever sees their track end already finds
        the stream ended; the video is discarded even if Valkey cannot be reached."""
        if session.ending or self.sessions.get(session.stream_id) is not session:
            return
        session.ending = True
        log.info("stream %s video ends: %s", session.stream_id, why)
        session.send_overlay({"type": "publisher", "ingest": "none", "reason": why})
        try:
            stream = await self.streams.get(session.stream_id)
            if stream is not None and stream.get("ingest", "none") != "none":
                await self.streams.set_ingest(session.stream_id, "none")
            if stream is not None and stream["state"] == StreamState.LIVE:
                try:
                    await self.streams.act(session.stream_id, StreamAction.END)
                except IllegalStreamMove:
                    pass
        finally:
            await self._discard(session)

    async def _discard(self, session: StreamVideo) -> None:
        if self.sessions.get(session.stream_id) is session:
            del self.sessions[session.stream_id]
            lock = self._publish_locks.get(session.stream_id)
            if lock is not None and not lock.locked():
                del self._publish_locks[session.stream_id]
        await stop_task(session.grace_task)
        session.grace_task = None
        if session.room is not None:
            await self.hub.untap(session.room, session.tap)
            session.room = None
        peers = [*session.viewers.values(), *([session.publisher] if session.publisher else [])]
        session.publisher = None
        session.viewers.clear()
        session.channels.clear()
        if session.recorder is not None:
            await session.recorder.close()  # the VOD playlist is written before this returns
            if self.recordings is not None and not self._closing:
                self.recordings.archive_later(session.stream_id)
        await session.video.close()
        await session.audio.close()
        await asyncio.gather(*(self.peers.close(p) for p in peers))

    async def _drop_viewer(self, session: StreamVideo, peer: Peer) -> None:
        session.viewers.pop(peer.session_id, None)
        session.channels.pop(peer.session_id, None)
        for sender in peer.pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
        await self.peers.close(peer)

    def _on_room_message(self, session: StreamVideo, message: dict[str, Any]) -> None:
        """The stream ended over the API (or another node): its video ends here too."""
        if message.get("type") == "stream.state" and message.get("state") in (
                StreamState.ENDED, StreamState.CANCELLED):
            asyncio.ensure_future(self._end(session, f"the stream {message['state']}"))

    async def _watch(self) -> None:
        """A publisher whose frames stop (a frozen encoder, a dead network) counts as lost:
        ICE consent takes ~30 s to notice, viewers should not stare at a frozen frame that long.
        A viewer not connected within the connect timeout is dropped."""
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                peer = session.publisher
                if peer is None:
                    continue
                last = session.video.last_frame_at
                if last is None:  # still connecting: ICE and DTLS get a longer allowance
                    if now - peer.created_at > self.limits.connect_timeout_s:
                        await self._publisher_lost(session, "no video within the connect timeout")
                elif now - max(last, peer.created_at) > self.limits.publisher_timeout_s:
                    await self._publisher_lost(session, "no frames")
            for session in list(self.sessions.values()):
                for viewer in list(session.viewers.values()):
                    # An answer nobody connects to would hold a peer slot until ICE gives up.
                    if (viewer.pc.connectionState != "connected"
                            and now - viewer.created_at > self.limits.connect_timeout_s):
                        await self._drop_viewer(session, viewer)

    async def close(self) -> None:
        self._closing = True
        await stop_task(self._watchdog)
        self._watchdog = None
        if self.recordings is not None:
            await self.recordings.close()
        for session in list(self.sessions.values()):
            await self._discard(session)
        await self.peers.close_all()


def _h264_only() -> list[Any]:
    return [c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in ("video/h264", "video/rtx")]


def _ingest_video() -> list[Any]:
    """What a publisher may send, H.264 first: it decodes cheaper than VP8."""
    capabilities = RTCRtpReceiver.getCapabilities("video")
    assert capabilities is not None  # typed Optional; aiortc raises for a kind it lacks
    codecs = capabilities.codecs
    order = {"video/h264": 0, "video/vp8": 1, "video/rtx": 2}
    return sorted((c for c in codecs if c.mimeType.lower() in order),
                  key=lambda c: order[c.mimeType.lower()])


def _send(channel: RTCDataChannel, message: dict[str, Any]) -> None:
    if channel.readyState == "open":
        channel.send(orjson.dumps(message).decode())


def _send_clock(channel: RTCDataChannel, first_pts: int) -> None:
    """The media time of the first frame this viewer got: the page maps RTP time to media time."""
    _send(channel, {"type": "clock", "first_pts": first_pts, "clock_rate": VIDEO_CLOCK_RATE})
