"""A stream's recording: the shared encoder's packets (no second encode) muxed into CMAF
(fragmented MP4) HLS files in the stream's recording folder, in a thread of its own.

On the event loop the recorder is one more subscriber of the stream's video and audio
fan-outs: per packet it asks the cutter (segmenter.py) what the packet does and puts it on
a bounded queue; a full queue drops the packet (counted) and the video restarts on a
keyframe, so a slow disk costs a hole in the recording, never the viewers' latency.

The muxing thread feeds libavformat's mp4 muxer (fragment at every keyframe, init segment
from the first keyframe's SPS/PPS, decode times kept as media time) and cuts its output
with fmp4.py: `init-<run>.mp4`, then `seg-<n>.m4s` files, each written whole and renamed
into place, then the index (`segments.jsonl`, one line per segment) and the playlist
(`index.m3u8`, playlist.py). At the end the playlist is rewritten as a VOD.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import os
import queue
import threading
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import av
import orjson

from live.video.encoder import VIDEO_CLOCK_RATE, MediaClock, SharedAudioEncoder, SharedVideoEncoder
from live.video.fmp4 import BoxReader, Fmp4Error, fragment_time
from live.video.playlist import Segment, init_name, render
from live.video.segmenter import Cut, SegmentCutter

__all__ = ["Recorder", "RecordingConfig", "PLAYLIST", "INDEX"]

log = logging.getLogger(__name__)

PLAYLIST = "index.m3u8"
INDEX = "segments.jsonl"
_VIDEO_TB = fractions.Fraction(1, VIDEO_CLOCK_RATE)
_AUDIO_RATE = 48_000
_AUDIO_TB = fractions.Fraction(1, _AUDIO_RATE)
_VIDEO_TRACK = 1  # the mp4 muxer numbers tracks from 1 in the order streams are added
# Fragment at every keyframe; the init segment waits for the first keyframe's SPS/PPS
# (the shared encoder sends them in-band, for WebRTC); frag_discont keeps each fragment's
# tfdt equal to the packet's own decode time (media time), not shifted to start at 0.
_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+frag_discont+delay_moov"


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    root: Path  # <root>/<stream>/ holds a stream's recording
    segment_s: float = 2.0
    live_window: int = 15  # segments in the live playlist (0: all)
    queue_packets: int = 600  # video + audio packets waiting for the muxing thread (~7 s)
    gap_s: float = 1.0  # no video this long: the next keyframe starts a new run


@dataclass(frozen=True, slots=True)
class _Item:
    kind: str  # "video" | "audio"
    cut: Cut
    pts: int
    packet: av.Packet
    audio: bool = False  # a run this packet starts has an audio track


_END = object()


class _Tap:
    """A fan-out subscriber (tracks.Subscriber) that hands packets to the recorder."""

    def __init__(self, kind: str, take: Callable[[av.Packet], None]) -> None:
        self.kind = kind
        self._take = take

    def offer(self, packet: av.Packet) -> None:
        self._take(packet)

    def stop(self) -> None:
        pass  # the recorder's close() ends it


class Recorder:
    """Records one stream's shared encode while the stream has video on this node."""

    def __init__(self, directory: Path, clock: MediaClock, video: SharedVideoEncoder,
                 audio: SharedAudioEncoder, config: RecordingConfig) -> None:
        self.directory = directory
        self.config = config
        self.dropped = 0  # packets the muxing queue had no room for
        self.expect_audio = False  # the current publisher sends audio (its offer says)
        self._audio_seen = False
        self._audio_wait = VIDEO_CLOCK_RATE  # ticks of video recorded without audio at most
        self._waiting_since: int | None = None
        self._video = video
        self._audio = audio
        ticks = int(config.segment_s * VIDEO_CLOCK_RATE)
        self._cutter = SegmentCutter(target=ticks, tolerance=VIDEO_CLOCK_RATE // 4,
                                     gap=int(config.gap_s * VIDEO_CLOCK_RATE))
        self._queue: queue.Queue[_Item | object] = queue.Queue(config.queue_packets)
        self.writer = _Writer(directory, clock.origin_ms, config, video.fmt.width,
                              video.fmt.height)
        self._thread = threading.Thread(target=self.writer.run, args=(self._queue,),
                                        name=f"hls-{directory.name}", daemon=True)
        self._taps = (_Tap("video", self._on_video), _Tap("audio", self._on_audio))
        self._closed = False

    def start(self) -> None:
        self._thread.start()
        self._video.fanout.subscribe(self._taps[0])
        self._audio.fanout.subscribe(self._taps[1])

    def _put(self, item: _Item) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _on_video(self, packet: av.Packet) -> None:
        if packet.pts is None:
            return
        pts = int(packet.pts)
        if self.expect_audio and not self._audio_seen:
            # The muxer writes nothing until every track has a sample, and audio arrives
            # on its own track: wait for it (a little) so the recording starts with sound.
            if self._waiting_since is None:
                self._waiting_since = pts
            if pts - self._waiting_since < self._audio_wait:
                return
        audio = self.expect_audio and self._audio_seen
        cut = self._cutter.video(pts, packet.is_keyframe)
        if cut is not Cut.SKIP and not self._put(_Item("video", cut, pts, packet, audio)):
            self._cutter.lost()
        if self._cutter.wants_keyframe():
            self._video.keyframes.request()

    def _on_audio(self, packet: av.Packet) -> None:
        if packet.pts is not None and self.expect_audio:
            self._audio_seen = True
            self._put(_Item("audio", Cut.KEEP, int(packet.pts), packet))

    async def close(self) -> None:
        """Stop taking packets, let the thread finish the files and the VOD playlist."""
        if self._closed:
            return
        self._closed = True
        self._video.fanout.unsubscribe(self._taps[0])
        self._audio.fanout.unsubscribe(self._taps[1])
        if self._thread.is_alive():
            await asyncio.to_thread(self._queue.put, _END)
            await asyncio.to_thread(self._thread.join)


class _Sink:
    """The muxer's output file: bytes kept until the writer reads them as boxes."""

    def __init__(self) -> None:
        self.reader = BoxReader()
        self.boxes: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> int:
        self.boxes.extend(self.reader.feed(bytes(data)))
        return len(data)


class _Writer:
    """The muxing thread's side: one mp4 muxer per run, files out."""

    def __init__(self, directory: Path, origin_ms: int, config: RecordingConfig,
                 width: int, height: int) -> None:
        self.directory = directory
        self.origin_ms = origin_ms
        self.config = config
        self.size = (width, height)
        self.failures = 0
        self.video_packets = 0  # muxed (each is one frame of the recording)
        self.segments: list[Segment] = []
        self.current_run = -1
        self._next_run = 0
        self.audio = False
        self._muxer: av.container.OutputContainer | None = None
        self._streams: list[av.stream.Stream] = []
        self._sink = _Sink()
        self._run_start = 0
        self._last_audio = -1
        self._init: list[bytes] = []
        self._current: list[bytes] | None = None
        self._current_start = 0
        self._fragment_end: int | None = None
        self._cuts: deque[int] = deque()

    def run(self, items: queue.Queue[_Item | object]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segments = _load(self.directory / INDEX)
        if self.segments:  # written again whole: a line cut short by a crash is gone
            _write_file(self.directory / INDEX,
                        b"".join(orjson.dumps(asdict(x)) + b"\n" for x in self.segments))
        self._next_run = self.segments[-1].run + 1 if self.segments else 0
        while True:
            item = items.get()
            if not isinstance(item, _Item):
                break
            try:
                self._take(item)
            except (av.FFmpegError, Fmp4Error, OSError, ValueError):
                # A run that cannot be written is given up; the next cut starts another.
                log.exception("recording %s: run %d failed", self.directory.name, self.current_run)
                self.failures += 1
                self._abandon()
        try:
            self._end_run()
        except (av.FFmpegError, Fmp4Error, OSError, ValueError):
            log.exception("recording %s: the last run could not be closed", self.directory.name)
            self.failures += 1
        self._write_playlist(ended=True)

    def _take(self, item: _Item) -> None:
        if item.kind == "audio":
            if self._muxer is not None and self.audio:
                self._mux_audio(item)
            return
        if item.cut is Cut.RUN or (item.cut is Cut.SEGMENT and self._muxer is None):
            self._end_run()
            self._start_run(item.pts, item.audio)
        elif self._muxer is None:
            return  # the failed run's packets, until the next cut
        elif item.cut is Cut.SEGMENT:
            self._cuts.append(item.pts)
        packet = av.Packet(bytes(item.packet))
        packet.pts = packet.dts = item.pts
        packet.time_base = _VIDEO_TB
        packet.is_keyframe = item.packet.is_keyframe
        packet.stream = self._streams[0]
        assert self._muxer is not None
        self._muxer.mux(packet)
        self.video_packets += 1
        self._drain()

    def _mux_audio(self, item: _Item) -> None:
        if item.pts * VIDEO_CLOCK_RATE < self._run_start * _AUDIO_RATE or item.pts <= self._last_audio:
            return  # before the run's first picture, or not after the last one
        self._last_audio = item.pts
        packet = av.Packet(bytes(item.packet))
        packet.pts = packet.dts = item.pts
        packet.duration = item.packet.duration or 960
        packet.time_base = _AUDIO_TB
        packet.stream = self._streams[1]
        assert self._muxer is not None
        self._muxer.mux(packet)
        self._drain()

    def _start_run(self, pts: int, audio: bool) -> None:
        self.current_run, self._next_run = self._next_run, self._next_run + 1
        self._sink = _Sink()
        muxer = av.open(self._sink, "w", format="mp4", options={
            "movflags": _MOVFLAGS, "flush_packets": "1", "video_track_timescale": "90000",
            # A stream that stops (audio muted) holds the other back at most this long.
            "max_interleave_delta": "500000"})
        video = muxer.add_mux_stream("h264", width=self.size[0], height=self.size[1])
        video.time_base = _VIDEO_TB
        self._streams = [video]
        self.audio = False
        if audio:
            # An Opus stream's header (OpusHead) comes from an encoder context; this one is
            # opened for its header and never encodes (the shared encoder's packets go in).
            sound = muxer.add_stream("libopus", rate=_AUDIO_RATE, layout="stereo")
            sound.time_base = _AUDIO_TB
            self._streams.append(sound)
            self.audio = True
        self._muxer = muxer
        self._run_start = pts
        self._last_audio = -1
        self._init = []
        self._current = None
        self._cuts.clear()

    def _drain(self) -> None:
        boxes, self._sink.boxes = self._sink.boxes, []
        for kind, data in boxes:
            if kind in ("ftyp", "moov"):
                self._init.append(data)
                if kind == "moov":
                    _write_file(self.directory / init_name(self.current_run), b"".join(self._init))
            elif kind == "moof":
                timing = fragment_time(data, _VIDEO_TRACK)
                if self._current is None:
                    self._current = []
                    self._current_start = timing.start if timing else self._run_start
                self._current.append(data)
                self._fragment_end = timing.start + timing.duration if timing else None
            elif kind == "mdat" and self._current is not None:
                self._current.append(data)
                if self._cuts and self._fragment_end is not None \
                        and self._fragment_end >= self._cuts[0]:
                    self._cuts.popleft()
                    self._finish_segment(self._fragment_end)
            # mfra (the trailer's index) and anything else: not part of HLS

    def _abandon(self) -> None:
        """Drop the failed run's muxer and its unfinished segment."""
        muxer, self._muxer, self._current = self._muxer, None, None
        if muxer is not None:
            try:
                muxer.close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # it already failed once; its output is not kept
        self._sink.boxes.clear()

    def _end_run(self) -> None:
        if self._muxer is None:
            return
        muxer, self._muxer = self._muxer, None
        muxer.close()
        self._drain()
        if self._current is not None and self._fragment_end is not None:
            self._finish_segment(self._fragment_end)
        self._current = None

    def _finish_segment(self, end: int) -> None:
        assert self._current is not None
        seq = self.segments[-1].seq + 1 if self.segments else 0
        segment = Segment(seq, self.current_run, self.origin_ms, self._current_start,
                          end - self._current_start)
        _write_file(self.directory / segment.name, b"".join(self._current))
        self._current = None
        self.segments.append(segment)
        with open(self.directory / INDEX, "ab") as index:
            index.write(orjson.dumps(asdict(segment)) + b"\n")
        self._write_playlist(ended=False)

    def _write_playlist(self, ended: bool) -> None:
        text = render(self.segments, target_s=self.config.segment_s, ended=ended,
                      window=self.config.live_window)
        _write_file(self.directory / PLAYLIST, text.encode())


def _write_file(path: Path, data: bytes) -> None:
    """Whole or not at all: a reader never sees a half-written file."""
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _load(path: Path) -> list[Segment]:
    """An earlier session's segments of the same stream (a new session starts a new run)."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(Segment(**orjson.loads(line)))
        except (ValueError, TypeError):
            log.warning("recording %s: unreadable index line skipped", path.parent.name)
    return out
