"""One encode per stream: the publisher's decoded frames in, shared packets out.

aiortc decodes the publisher's track (once); `SharedVideoEncoder` scales each frame to the
stream's output size and encodes it with libx264 in its own thread (once), stamping it with
the stream's media clock; every viewer's `PacketTrack` gets the same `av.Packet`. Encoding
never queues: if a frame arrives while the previous one is still encoding, the older
waiting frame is dropped (counted), so a slow encoder costs frame rate, not latency.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from checkout.tasks import stop_task
from live.video.keyframes import KeyframePolicy
from live.video.packetize import SharedH264Packer
from live.video.tracks import Fanout

__all__ = ["MediaClock", "VideoFormat", "SharedVideoEncoder", "SharedAudioEncoder",
           "FrameRelay", "VIDEO_CLOCK_RATE"]

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000  # RTP's video clock; media timestamps are in these ticks
_VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

_Frame = TypeVar("_Frame", av.VideoFrame, av.AudioFrame)
_Out = TypeVar("_Out", av.Packet, av.VideoFrame)  # what a pipe hands its viewers


async def _recv_frame(track: MediaStreamTrack, kind: type[_Frame]) -> _Frame:
    """The next decoded frame of a publisher's track. aiortc types `recv()` for every track,
    packets included; a remote track it decodes gives frames of its kind only."""
    item = await track.recv()
    if not isinstance(item, kind):
        raise MediaStreamError(f"the {track.kind} track gave a {type(item).__name__}")
    return item


class MediaClock:
    """A stream's media time: ticks of 90 kHz since the stream's first frame.

    Frames and overlay events are stamped from the same clock, which is what lets a page
    show a pin when the picture reaches the moment the host pinned. `origin_ms` is the
    wall-clock millisecond at which the clock read 0 (the clock's origin is placed on that
    millisecond), what a recording's EXT-X-PROGRAM-DATE-TIME counts from (playlist.py).
    """

    def __init__(self) -> None:
        wall, mono = time.time(), time.monotonic()
        self.origin_ms = int(wall * 1000)
        self._origin = mono - (wall - self.origin_ms / 1000)

    def now(self) -> int:
        return int((time.monotonic() - self._origin) * VIDEO_CLOCK_RATE)


@dataclass(frozen=True, slots=True)
class VideoFormat:
    width: int = 640
    height: int = 360
    fps: int = 30
    bitrate: int = 1_000_000
    keyint_s: float = 2.0
    preset: str = "veryfast"


class _Source:
    """Reads a publisher track into a one-frame slot; a frame not taken in time is dropped."""

    def __init__(self) -> None:
        self.latest: av.VideoFrame | None = None
        self.ready = asyncio.Event()
        self.dropped = 0
        self.received = 0
        self.last_frame_at: float | None = None  # None until the first frame of this track
        self._task: asyncio.Task[None] | None = None

    def attach(self, track: MediaStreamTrack) -> None:
        self.last_frame_at = None
        self._task = asyncio.create_task(self._read(track), name=f"video-source-{track.kind}")

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await _recv_frame(track, av.VideoFrame)
                self.received += 1
                self.last_frame_at = time.monotonic()
                if self.latest is not None:
                    self.dropped += 1
                self.latest = frame
                self.ready.set()
        except MediaStreamError:
            pass

    async def take(self) -> av.VideoFrame:
        while self.latest is None:
            self.ready.clear()
            await self.ready.wait()
        frame, self.latest = self.latest, None
        return frame

    async def detach(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None


class _VideoPipe(Generic[_Out]):
    """A stream's video: the publisher's track in (replaceable, for reconnects), one task
    turning its frames into what `fanout` hands the viewers."""

    def __init__(self, fanout: Fanout[_Out], name: str) -> None:
        self.fanout: Fanout[_Out] = fanout
        self._source = _Source()
        self._task: asyncio.Task[None] | None = None
        self._name = name

    @property
    def frames_received(self) -> int:
        return self._source.received

    @property
    def frames_dropped(self) -> int:
        return self._source.dropped

    @property
    def last_frame_at(self) -> float | None:
        return self._source.last_frame_at

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def use_source(self, track: MediaStreamTrack) -> None:
        """Take frames from this publisher track from now on (a reconnect replaces the old)."""
        await self._source.detach()
        self._source.attach(track)

    async def drop_source(self) -> None:
        await self._source.detach()

    async def _run(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        await self._source.detach()
        await stop_task(self._task)
        self._task = None
        self.fanout.stop_all()


class SharedVideoEncoder(_VideoPipe[av.Packet]):
    """The stream's only video encoder. Runs while the stream has video; survives a publisher
    reconnecting, so viewers keep their sessions and resume on a keyframe."""

    def __init__(self, fmt: VideoFormat, clock: MediaClock) -> None:
        self.keyframes = KeyframePolicy()
        super().__init__(Fanout(self.keyframes.request), "video-encoder")
        self.fmt = fmt
        self.clock = clock
        self.frames_encoded = 0
        self.frames_skipped = 0  # over the frame-rate cap
        self.packer = SharedH264Packer()
        self._codec: av.VideoCodecContext | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="x264")
        self._last_kept: float | None = None  # source time (s) of the last frame let in

    async def use_source(self, track: MediaStreamTrack) -> None:
        await super().use_source(track)
        self._last_kept = None  # a new source has its own clock
        self.keyframes.request()  # viewers' decoders need a clean start on the new source

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await self._source.take()
            if self._over_rate(frame):
                self.frames_skipped += 1
                continue
            if not self.fanout.subscribers:
                continue  # nobody watching: spend no CPU (the next viewer asks for a keyframe)
            pts = self.clock.now()
            force = self.keyframes.should_force(time.monotonic())
            try:
                packets = await loop.run_in_executor(self._thread, self._encode, frame, pts, force)
            except (av.FFmpegError, ValueError):
                log.warning("video encode failed; frame skipped", exc_info=True)
                continue
            self.frames_encoded += 1
            for packet in packets:
                if packet.is_keyframe:
                    self.keyframes.saw_keyframe(time.monotonic())
                self.fanout.publish(packet)

    def _over_rate(self, frame: av.VideoFrame) -> bool:
        """The frame-rate cap, on the source's own capture times (jitter-free): a 60 fps
        source is halved, a 30 fps one passes whole however its frames bunch on the way."""
        if frame.pts is None or frame.time_base is None:
            return False
        at = float(frame.pts * frame.time_base)
        if self._last_kept is not None and 0 <= at - self._last_kept < 0.8 / self.fmt.fps:
            return True
        self._last_kept = at
        return False

    def _encode(self, frame: av.VideoFrame, pts: int, force: bool) -> list[av.Packet]:
        """In the encoder thread: scale, stamp and encode one frame."""
        if self._codec is None:
            self._codec = self._open_codec()
        out = frame.reformat(width=self.fmt.width, height=self.fmt.height, format="yuv420p")
        out.pts = pts
        out.time_base = _VIDEO_TIME_BASE
        out.pict_type = av.video.frame.PictureType.I if force else av.video.frame.PictureType.NONE
        packets = self._codec.encode(out)
        for packet in packets:
            packet.time_base = _VIDEO_TIME_BASE
        return packets

    def _open_codec(self) -> av.VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = self.fmt.width, self.fmt.height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = self.fmt.bitrate
        codec.framerate = fractions.Fraction(self.fmt.fps, 1)
        codec.time_base = _VIDEO_TIME_BASE
        codec.gop_size = max(1, int(self.fmt.fps * self.fmt.keyint_s))
        codec.profile = "Baseline"  # what every WebRTC H.264 decoder takes (42e01f)
        kbit = str(self.fmt.bitrate // 1000)
        codec.options = {"preset": self.fmt.preset, "tune": "zerolatency", "level": "31",
                         # SPS/PPS on every keyframe: late joiners can start there.
                         "repeat-headers": "1",
                         # A 1 s VBV: a busy picture may not overshoot the bitrate, which
                         # every viewer's link and the server's per-packet CPU pay for.
                         "x264-params": f"vbv-maxrate={kbit}:vbv-bufsize={kbit}"}
        codec.open()
        return codec

    async def close(self) -> None:
        await super().close()
        self._thread.shutdown(wait=True)


class SharedAudioEncoder:
    """The stream's only Opus encoder: 20 ms packets at 48 kHz, shared like the video.

    Its timestamps are the stream's media clock in 48 kHz ticks: anchored to the clock at
    the first sample, then counted in samples (continuous, as Opus needs), and anchored
    again after a gap (no audio encoded for `_REANCHOR` ticks: the publisher came back, or
    nobody was listening), so audio and video share one time line."""

    _REANCHOR = 48_000 // 5  # 200 ms

    def __init__(self, clock: MediaClock | None = None) -> None:
        self.fanout: Fanout[av.Packet] = Fanout(lambda: None)
        self.clock = clock if clock is not None else MediaClock()
        self.packets_encoded = 0
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=48_000,
                                            frame_size=960)
        self._codec: av.AudioCodecContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._pts = -self._REANCHOR - 1  # anchors on the first sample

    def use_source(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.create_task(self._run(track), name="audio-encoder")

    async def drop_source(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    async def _run(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await _recv_frame(track, av.AudioFrame)
                if not self.fanout.subscribers:
                    continue
                for chunk in self._resampler.resample(frame):
                    now = self.clock.now() * 48_000 // VIDEO_CLOCK_RATE
                    if now - self._pts > self._REANCHOR:
                        self._pts = now  # only forwards: timestamps never go back
                    chunk.pts = self._pts
                    chunk.time_base = fractions.Fraction(1, 48_000)
                    self._pts += chunk.samples
                    for packet in self._encoder().encode(chunk):
                        packet.time_base = fractions.Fraction(1, 48_000)
                        self.packets_encoded += 1
                        self.fanout.publish(packet)
        except MediaStreamError:
            pass

    def _encoder(self) -> av.AudioCodecContext:
        if self._codec is None:
            codec = av.CodecContext.create("libopus", "w")
            codec.sample_rate = 48_000
            codec.layout = "stereo"
            codec.format = "s16"
            codec.bit_rate = 64_000
            codec.time_base = fractions.Fraction(1, 48_000)
            codec.open()
            self._codec = codec
        return self._codec

    async def close(self) -> None:
        await self.drop_source()
        self.fanout.stop_all()


class FrameRelay(_VideoPipe[av.VideoFrame]):
    """The per-viewer-encoding baseline: decoded frames to every viewer, each encoding its own.

    Kept only so the load test can measure what the shared encoder saves, in the same run.
    """

    def __init__(self) -> None:
        super().__init__(Fanout(lambda: None), "video-relay")

    async def _run(self) -> None:
        while True:
            self.fanout.publish(await self._source.take())
