"""HLS media playlists (RFC 8216) for a recording, no I/O: the segments in, the text out.

A recording is a list of runs, each with its own init segment (`init-<run>.mp4`); a run
ends where the picture had a gap (the publisher was lost and came back) or a new session
started with a new media clock, and the playlist marks it with EXT-X-DISCONTINUITY.

The media clock mapping, exact by construction: each run knows the wall-clock millisecond
at which its media clock read 0 (`origin_ms`, `MediaClock.origin_ms`). A segment that
starts at media time `start` (90 kHz ticks, the tfdt of its first video sample) gets
EXT-X-PROGRAM-DATE-TIME = origin_ms + start / 90, written to the millisecond (truncated:
less than 1 ms early, far under a frame). Every segment carries its own date, so the
mapping never accumulates EXTINF rounding. An overlay event stamped with media time `pts`
is on screen at the date origin_ms + pts / 90; each run also names its origin in an
EXT-X-DATERANGE of class `com.livecart.media-clock` (X-CLOCK-RATE=90000), so a player
reading the playlist alone can map dates back to media time.

Low-latency HLS (RFC 8216bis section 4.4.4.9, 4.4.5.2, 4.4.5.3, 6.2.5.2): while live, each
segment is also published as parts (`part-<run>-<n>.m4s`, one moof+mdat fragment each, the
segment file is their concatenation) as soon as each is muxed. The live playlist lists the
parts of the last `part_segments` segments and of the segment being written (EXT-X-PART,
INDEPENDENT=YES where a part starts on a keyframe), hints the next one
(EXT-X-PRELOAD-HINT), and says the server holds playlist requests (CAN-BLOCK-RELOAD) and
how far behind the live edge a player holds (PART-HOLD-BACK, three part targets). A VOD
playlist has no part lines: nothing is gained from them once every segment is whole.
None of these tags needs a version past 7 (version 9 is for EXT-X-SKIP, not used here).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Segment", "Part", "render", "part_name", "program_date_time", "init_name", "segment_name",
           "is_file_name", "PART_NAME", "CLOCK_RATE", "MEDIA_CLOCK_CLASS"]

CLOCK_RATE = 90_000
MEDIA_CLOCK_CLASS = "com.livecart.media-clock"
_NAME = re.compile(r"(init-[0-9]{1,6}\.mp4|seg-[0-9]{1,9}\.m4s|part-[0-9]{1,6}-[0-9]{1,9}\.m4s)")
PART_NAME = re.compile(r"part-([0-9]{1,6})-([0-9]{1,9})\.m4s")  # run, number


def init_name(run: int) -> str:
    return f"init-{run}.mp4"


def segment_name(seq: int) -> str:
    return f"seg-{seq}.m4s"


def part_name(run: int, number: int) -> str:
    """Part `number` (from 0, over the whole run: recorder.py says why) of run `run`."""
    return f"part-{run}-{number}.m4s"


def is_file_name(name: str) -> bool:
    """A name the recorder writes (and nothing else: no dots, slashes or other files)."""
    return _NAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class Segment:
    seq: int  # 0, 1, 2... over the whole recording
    run: int
    origin_ms: int  # wall-clock ms of media time 0 in this run's clock
    start: int  # media time of its first video sample, 90 kHz
    duration: int  # 90 kHz ticks

    @property
    def name(self) -> str:
        return segment_name(self.seq)


@dataclass(frozen=True, slots=True)
class Part:
    seq: int  # the segment it is part of
    index: int  # 0, 1, 2... in that segment
    run: int
    origin_ms: int
    start: int  # media time of its first video sample, 90 kHz
    duration: int  # 90 kHz ticks
    independent: bool  # starts on a keyframe
    number: int  # 0, 1, 2... over the run: its name

    @property
    def name(self) -> str:
        return part_name(self.run, self.number)


def program_date_time(origin_ms: int, pts: int) -> str:
    """The ISO 8601 date (UTC, milliseconds) of media time `pts` in a clock whose 0 was at
    `origin_ms`."""
    ms = origin_ms + pts * 1000 // CLOCK_RATE
    moment = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _part_line(part: Part) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={part.duration / CLOCK_RATE:.5f},URI="{part.name}"{independent}'


def render(segments: Sequence[Segment], *, target_s: float, ended: bool,
           window: int = 0, parts: Sequence[Part] = (), part_target_s: float = 0.0,
           part_segments: int = 2, hint: str | None = None) -> str:
    """The playlist: while live (`ended` false) the last `window` segments (0: all) as an
    EVENT-less live playlist; once ended, every segment as a VOD with EXT-X-ENDLIST.

    Live with `part_target_s` > 0: low-latency. `parts` are the recent parts in order, those
    numbered past the last segment being the open segment's; the parts of the last
    `part_segments` segments are listed, then the open one's (after its own date, and map
    if it opens a run), then the hint for the next part (`hint`, by default the one
    numbered after the last part), whichever segment it will belong to. PART-TARGET is the configured target
    or, if a part came out longer (a stalled camera), that part's length: every listed part
    must fit in it, as every segment in TARGETDURATION."""
    shown = list(segments) if ended or window <= 0 else list(segments[-window:])
    skipped = len(segments) - len(shown)
    # Discontinuities before the window still count (RFC 8216 4.3.3.3).
    discontinuities = sum(1 for i in range(1, skipped + 1)
                          if segments[i].run != segments[i - 1].run)
    longest = max((round(s.duration / CLOCK_RATE) for s in segments), default=0)
    low_latency = not ended and part_target_s > 0
    open_seq = segments[-1].seq + 1 if segments else 0
    listed: dict[int, list[Part]] = {}
    lines = ["#EXTM3U", "#EXT-X-VERSION:7",
             f"#EXT-X-TARGETDURATION:{max(math.ceil(target_s), longest)}"]
    if low_latency:
        # Parts of the last segments only (RFC 8216bis 4.4.4.9: none older than three
        # target durations from the end) and of the open segment.
        for part in parts:
            if open_seq - part_segments <= part.seq <= open_seq:
                listed.setdefault(part.seq, []).append(part)
        longest_part = max((p.duration for ps in listed.values() for p in ps), default=0)
        # In milliseconds, rounded up: a part of exactly the target still fits.
        part_target = max(part_target_s, math.ceil(longest_part / 90) / 1000)
        lines += [f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
                  f"PART-HOLD-BACK={3 * part_target:.3f}",
                  f"#EXT-X-PART-INF:PART-TARGET={part_target:.3f}"]
    lines += [f"#EXT-X-MEDIA-SEQUENCE:{shown[0].seq if shown else 0}",
              f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}",
              "#EXT-X-INDEPENDENT-SEGMENTS"]
    if ended:
        lines.insert(2, "#EXT-X-PLAYLIST-TYPE:VOD")
    previous: Segment | Part | None = None
    for segment in shown:
        lines += _opening(segment, previous)
        lines += [_part_line(p) for p in listed.get(segment.seq, ())]
        lines.append(f"#EXTINF:{segment.duration / CLOCK_RATE:.5f},")
        lines.append(segment.name)
        previous = segment
    if low_latency:
        opened = listed.get(open_seq, [])
        if opened:
            lines += _opening(opened[0], previous)
            lines += [_part_line(p) for p in opened]
        if hint is None and parts:
            hint = part_name(parts[-1].run, parts[-1].number + 1)
        if hint is not None:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{hint}"')
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _opening(segment: Segment | Part, previous: Segment | Part | None) -> list[str]:
    """The tags before a segment (or the open segment's first part): a discontinuity and
    the map where a run starts, its date, the media clock where a clock starts."""
    lines = []
    if previous is not None and previous.run != segment.run:
        lines.append("#EXT-X-DISCONTINUITY")
    if previous is None or previous.run != segment.run:
        lines.append(f'#EXT-X-MAP:URI="{init_name(segment.run)}"')
    lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(segment.origin_ms, segment.start)}")
    if previous is None or previous.origin_ms != segment.origin_ms:
        lines.append(f'#EXT-X-DATERANGE:ID="media-clock-{segment.run}",'
                     f'CLASS="{MEDIA_CLOCK_CLASS}",'
                     f'START-DATE="{program_date_time(segment.origin_ms, 0)}",'
                     f'X-CLOCK-RATE={CLOCK_RATE}')
    return lines
