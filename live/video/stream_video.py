"""One stream's video on this node: its publisher, shared encoders, viewers and overlay
data channels. `VideoService` (service.py) decides when these come and go."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Literal

import orjson
from aiortc import RTCDataChannel

from checkout.ids import StreamId
from live.hub.rooms import Room
from live.video.encoder import (VIDEO_CLOCK_RATE, FrameRelay, MediaClock, SharedAudioEncoder,
                                SharedVideoEncoder, VideoFormat)
from live.video.peers import Peer
from live.video.recorder import Recorder

__all__ = ["StreamVideo", "EncodeMode"]

EncodeMode = Literal["shared", "per_viewer"]


class StreamVideo:
    """One stream's video on this node: publisher, shared encoders, viewers, overlay channel."""

    def __init__(self, stream_id: StreamId, fmt: VideoFormat, mode: EncodeMode, channel_limit: int,
                 on_room_message: Callable[["StreamVideo", dict[str, Any]], None]) -> None:
        self.stream_id = stream_id
        self._channel_limit = channel_limit
        self._on_room_message = on_room_message
        self.clock = MediaClock()
        self.mode = mode
        self.video: SharedVideoEncoder | FrameRelay = (
            SharedVideoEncoder(fmt, self.clock) if mode == "shared" else FrameRelay())
        self.audio = SharedAudioEncoder(self.clock)
        self.recorder: Recorder | None = None  # the VideoService starts it
        self.publisher: Peer | None = None
        self.lost_publisher_id: str | None = None  # its session URL may still DELETE
        self.viewers: dict[str, Peer] = {}
        self.channels: dict[str, RTCDataChannel] = {}
        self.ingest: Literal["live", "reconnecting", "none"] = "none"
        self.room: Room | None = None
        self.grace_task: asyncio.Task[None] | None = None
        self.ending = False
        self.video.start()

    @property
    def encoders(self) -> int:
        """Video encoders running for this stream: 1 when shared, one per viewer otherwise."""
        if isinstance(self.video, SharedVideoEncoder):
            return 1 if self.video.frames_encoded else 0
        return len(self.video.fanout.subscribers)

    def stats(self) -> dict[str, Any]:
        video = self.video
        out: dict[str, Any] = {
            "stream_id": self.stream_id, "ingest": self.ingest, "encode": self.mode,
            "publisher": self.publisher is not None, "viewers": len(self.viewers),
            "encoders": self.encoders, "media_time": self.clock.now() / VIDEO_CLOCK_RATE,
            "audio_packets_encoded": self.audio.packets_encoded,
        }
        if self.recorder is not None:
            out.update(recording_segments=len(self.recorder.writer.segments),
                       recording_dropped=self.recorder.dropped,
                       recording_failures=self.recorder.writer.failures)
        if isinstance(video, SharedVideoEncoder):
            out.update(frames_received=video.frames_received, frames_encoded=video.frames_encoded,
                       frames_skipped=video.frames_skipped, frames_dropped=video.frames_dropped,
                       packets_packetized=video.packer.packed,
                       packets_packetization_reused=video.packer.reused,
                       keyframe_requests=video.keyframes.requests,
                       keyframes_forced=video.keyframes.forced,
                       width=video.fmt.width, height=video.fmt.height, fps=video.fmt.fps)
        return out

    def tap(self, seq: int | None, message: dict[str, Any]) -> None:
        """The room's events and state changes (a hub tap): to the data channels, stamped
        with the media time they happened at."""
        self.send_overlay({"type": "overlay", "seq": seq, "pts": self.clock.now(),
                           "message": message})
        self._on_room_message(self, message)

    def send_overlay(self, message: dict[str, Any]) -> None:
        """To every viewer's data channel; a channel that does not drain loses messages, and
        the hub (which has seqs and resume) stays the source of truth."""
        if not self.channels:
            return
        data = orjson.dumps(message).decode()
        for channel in list(self.channels.values()):
            if channel.readyState == "open" and channel.bufferedAmount <= self._channel_limit:
                channel.send(data)
