"""A stream's recording: the shared encoder's packets (no second encode) muxed into CMAF
(fragmented MP4) HLS files in the stream's recording folder, in a thread of its own.

On the event loop the recorder is one more subscriber of the stream's video and audio
fan-outs: per packet it asks the cutter (segmenter.py) what the packet does and puts it on
a bounded queue; a full queue drops the packet (counted) and the video restarts on a
keyframe, so a slow disk costs a hole in the recording, never the viewers' latency.

The muxing thread feeds libavformat's mp4 muxer (a fragment at every keyframe and every
~`part_s` - 0.1 s, init segment from the first keyframe's SPS/PPS, decode times kept as
media time) and cuts its output with fmp4.py: `init-<run>.mp4`; each fragment (moof+mdat)
as a low-latency HLS part `part-<run>-<n>.m4s` as soon as it is muxed, with the live
playlist rewritten; at each segment's end `seg-<n>.m4s` (its parts' bytes, concatenated),
the index (`segments.jsonl`, one line per segment) and the playlist (`index.m3u8`,
playlist.py). Every file is written whole and renamed into place. At the end the playlist
is rewritten as a VOD, without parts.

Parts are files of their own rather than byte ranges of a growing segment file: each URL is
complete and immutable from the moment it exists (a cache keeps it a year, like a segment,
and never sees a range of a file that is still growing), the segment file stays written
once, and the server holds a request for the hinted next part until its file appears
(hls_http.py). The cost is a few small files per segment, deleted as they leave the live
window (the last ones stay after the show for players still fetching them, not archived).
Parts are numbered over the run, not within their segment, so the preload hint always
names the next fragment, whether or not a keyframe makes it the start of the next segment
(a hint for "part 5 of this segment" is wrong whenever the segment ends at part 4). The run
in a part's name keeps a part URL from ever naming two different fragments: a run given up
half-way (a muxer failure, a node restart) leaves its open segment's number to the next
run, whose parts are named apart.

The thread reports its progress (`_Writer.progress`, after each playlist write) to the
event loop, where a blocking playlist request waits for it (`Recorder.wait_for`).
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
from live.video.playlist import PART_NAME, Part, Segment, init_name, part_name, render
from live.video.segmenter import Cut, SegmentCutter

__all__ = ["Recorder", "RecordingConfig", "Progress", "PLAYLIST", "INDEX"]

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
# A fragment (a part) is cut once a track has this much less than the part target: the
# sample that crosses the line ends it, and at 30 fps (or with audio's 20 ms frames deciding)
# parts come out at 0.37-0.43 s for a 0.5 s target (measured on x264 with jittered times).
_PART_MARGIN_S = 0.1


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    root: Path  # <root>/<stream>/ holds a stream's recording
    segment_s: float = 2.0
    live_window: int = 15  # segments in the live playlist (0: all)
    queue_packets: int = 600  # video + audio packets waiting for the muxing thread (~7 s)
    gap_s: float = 1.0  # no video this long: the next keyframe starts a new run
    part_s: float = 0.5  # low-latency HLS part target (0: no parts)
    part_segments: int = 2  # complete segments whose parts the live playlist still lists


@dataclass(frozen=True, slots=True)
class Progress:
    """What the live playlist holds, as the muxing thread last wrote it."""

    last_seq: int = -1  # the last complete segment (-1: none yet)
    parts: int = 0  # parts of the segment after it
    ended: bool = False  # the VOD playlist is written
    run: int = -1
    next_part: int = 0  # the number of the run's next part (the hinted one)

    def has(self, msn: int, part: int | None) -> bool:
        """Does the playlist hold segment `msn` (or its part `part`) or anything later?"""
        if self.ended or self.last_seq >= msn:
            return True
        return part is not None and msn == self.last_seq + 1 and self.parts > part


@dataclass(frozen=True, slots=True)
class _Item:
    kind: str  # "video" | "audio"
    cut: Cut
    pts: int
    packet: av.Packet
    audio: bool = False  # a run this packet starts has an audio track

    @property
    def duration(self) -> int:
        """Its length in its own clock (a sound packet: 48 kHz, 20 ms unless it says)."""
        return int(self.packet.duration or 960)


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
        self._moved = asyncio.Event()  # set (and replaced) at each progress of the writer
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.writer.on_progress = self._progressed
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

    def _progressed(self) -> None:
        """From the muxing thread: wake the requests waiting on the playlist."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed in between: nobody is waiting any more
                pass

    def _wake(self) -> None:
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def wait_for(self, msn: int, part: int | None, timeout: float) -> bool:
        """Wait (on the loop, no thread held) until the live playlist holds segment `msn`
        (part `part` of it) or has ended; False if `timeout` seconds passed first."""
        return await self.wait_until(lambda progress: progress.has(msn, part), timeout)

    async def wait_until(self, done: Callable[[Progress], bool], timeout: float) -> bool:
        """Wait until `done(progress)` or the recording ended; False after `timeout` s."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (done(self.writer.progress) or self.writer.progress.ended):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or not self._thread.is_alive():
                return done(self.writer.progress) or self.writer.progress.ended
            try:
                await asyncio.wait_for(self._moved.wait(), left)
            except TimeoutError:
                pass
        return True

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
        self.parts: list[Part] = []  # of the last segments and the open one (live playlist)
        self.progress = Progress()
        self.on_progress: Callable[[], None] | None = None  # called from this thread
        self.current_run = -1
        self._next_run = 0
        self.audio = False
        self._muxer: av.container.OutputContainer | None = None
        self._streams: list[av.stream.Stream] = []
        self._sink = _Sink()
        self._run_start = 0
        self._last_video = -1
        self._last_audio = -1
        self._init: list[bytes] = []
        self._current: list[bytes] | None = None  # the open segment's parts
        self._current_start = 0
        self._fragment_end: int | None = None
        self._cuts: deque[int] = deque()
        self._keyframes: deque[int] = deque(maxlen=16)  # recent keyframes' pts
        self._moof: bytes | None = None
        self._carry = b""  # a fragment with no picture, kept for the next part
        # Sound waiting for a picture that starts at or after its end (bounded: a picture
        # that far behind the sound comes after a gap, and starts a new run).
        self._sound: deque[_Item] = deque(maxlen=config.queue_packets)
        self._part_number = 0  # the run's next part
        self._on_disk: deque[Part] = deque()  # part files written, oldest first

    def run(self, items: queue.Queue[_Item | object]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segments = _load(self.directory / INDEX)
        if self.segments:  # written again whole: a line cut short by a crash is gone
            _write_file(self.directory / INDEX,
                        b"".join(orjson.dumps(asdict(x)) + b"\n" for x in self.segments))
        self._next_run = self.segments[-1].run + 1 if self.segments else 0
        for path in self.directory.glob("part-*.m4s"):
            # An earlier session's parts: its run may have ended before any segment was
            # indexed; numbering runs past it keeps every part URL naming one fragment.
            match = PART_NAME.fullmatch(path.name)
            if match is not None:
                self._next_run = max(self._next_run, int(match.group(1)) + 1)
            path.unlink(missing_ok=True)
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
                self._sound.append(item)
            return
        if item.cut is Cut.RUN or (item.cut is Cut.SEGMENT and self._muxer is None):
            self._end_run()
            self._start_run(item.pts, item.audio)
        elif self._muxer is None:
            return  # the failed run's packets, until the next cut
        elif item.cut is Cut.SEGMENT:
            self._cuts.append(item.pts)
        if item.packet.is_keyframe:
            self._keyframes.append(item.pts)
        packet = av.Packet(bytes(item.packet))
        packet.pts = packet.dts = item.pts
        packet.time_base = _VIDEO_TB
        packet.is_keyframe = item.packet.is_keyframe
        # The muxer times each picture by the next one; the run's last has only this: the
        # interval before it (without it a last fragment of one picture has no duration,
        # and a fragment without one is taken for sound only and its picture lost).
        last, self._last_video = self._last_video, item.pts
        packet.duration = item.pts - last if last >= 0 else VIDEO_CLOCK_RATE // 30
        packet.stream = self._streams[0]
        # The sound comes ahead of the pictures (they wait for the encoder): it goes in once
        # a picture follows it, so the run's sound ends by its last picture, as its
        # segments' EXTINF say (sound after it, left waiting when the run ends, is not
        # recorded, as sound before the first picture is not).
        while self._sound and (self._sound[0].pts + self._sound[0].duration) \
                * VIDEO_CLOCK_RATE <= item.pts * _AUDIO_RATE:
            sound = self._sound.popleft()
            if self.audio:
                self._mux_audio(sound)
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
        packet.duration = item.duration
        packet.time_base = _AUDIO_TB
        packet.stream = self._streams[1]
        assert self._muxer is not None
        self._muxer.mux(packet)
        self._drain()

    def _start_run(self, pts: int, audio: bool) -> None:
        self.current_run, self._next_run = self._next_run, self._next_run + 1
        self._sink = _Sink()
        options = {"movflags": _MOVFLAGS, "flush_packets": "1", "video_track_timescale": "90000"}
        if self.config.part_s > 0:
            options["frag_duration"] = str(int(max(0.05, self.config.part_s - _PART_MARGIN_S) * 1e6))
        muxer = av.open(self._sink, "w", format="mp4", options={
            **options,
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
        self._last_video = -1
        self._last_audio = -1
        self._init = []
        self._current = None
        self._cuts.clear()
        self._keyframes.clear()
        self._moof = None
        self._carry = b""
        self._part_number = 0

    def _drain(self) -> None:
        boxes, self._sink.boxes = self._sink.boxes, []
        for kind, data in boxes:
            if kind in ("ftyp", "moov"):
                self._init.append(data)
                if kind == "moov":
                    _write_file(self.directory / init_name(self.current_run), b"".join(self._init))
            elif kind == "moof":
                self._moof = data
            elif kind == "mdat" and self._moof is not None:
                moof, self._moof = self._moof, None
                self._add_part(moof, moof + data)
            # mfra (the trailer's index) and anything else: not part of HLS

    def _add_part(self, moof: bytes, fragment: bytes) -> None:
        """One fragment out of the muxer: a part of the open segment, the segment's end
        if the next keyframe cuts there."""
        timing = fragment_time(moof, _VIDEO_TRACK)
        if timing is None or timing.duration <= 0:
            self._carry += fragment  # sound only: it goes with the next picture
            return
        data, self._carry = self._carry + fragment, b""
        if self._current is None:
            self._current = []
            self._current_start = timing.start
        seq = self.segments[-1].seq + 1 if self.segments else 0
        part = Part(seq, len(self._current), self.current_run, self.origin_ms, timing.start,
                    timing.duration, timing.start in self._keyframes, self._part_number)
        self._part_number += 1
        self._current.append(data)
        self._fragment_end = timing.start + timing.duration
        if self.config.part_s > 0:
            _write_file(self.directory / part.name, data)
            self.parts.append(part)
            self._on_disk.append(part)
        if self._cuts and self._fragment_end >= self._cuts[0]:
            self._cuts.popleft()
            self._finish_segment(self._fragment_end)
        elif self.config.part_s > 0:
            self._write_playlist(ended=False)

    def _abandon(self) -> None:
        """Drop the failed run's muxer and its unfinished segment."""
        muxer, self._muxer, self._current = self._muxer, None, None
        # The open segment's parts leave the playlist (their files, named by this run,
        # stay until the part sweep): the next run numbers its segment the same.
        seq = self.segments[-1].seq + 1 if self.segments else 0
        self.parts = [p for p in self.parts if p.seq != seq]
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
        # Parts a player may still ask for: those of the live window's segments.
        keep = seq - max(self.config.live_window, self.config.part_segments + 1)
        if self.config.part_s > 0 and keep >= 0:
            self._delete_parts(keep)

    def _write_playlist(self, ended: bool) -> None:
        open_seq = self.segments[-1].seq + 1 if self.segments else 0
        self.parts = [p for p in self.parts if p.seq >= open_seq - self.config.part_segments]
        text = render(self.segments, target_s=self.config.segment_s, ended=ended,
                      window=self.config.live_window, parts=self.parts,
                      part_target_s=self.config.part_s, part_segments=self.config.part_segments,
                      hint=part_name(self.current_run, self._part_number))
        _write_file(self.directory / PLAYLIST, text.encode())
        self.progress = Progress(open_seq - 1, sum(1 for p in self.parts if p.seq == open_seq),
                                 ended, self.current_run, self._part_number)
        if self.on_progress is not None:
            self.on_progress()

    def _delete_parts(self, up_to: int) -> None:
        """Delete the part files of segments up to `up_to`."""
        while self._on_disk and self._on_disk[0].seq <= up_to:
            (self.directory / self._on_disk.popleft().name).unlink(missing_ok=True)


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
