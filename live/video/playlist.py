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
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Segment", "render", "program_date_time", "init_name", "segment_name",
           "is_file_name", "CLOCK_RATE", "MEDIA_CLOCK_CLASS"]

CLOCK_RATE = 90_000
MEDIA_CLOCK_CLASS = "com.livecart.media-clock"
_NAME = re.compile(r"(init-[0-9]{1,6}\.mp4|seg-[0-9]{1,9}\.m4s)")


def init_name(run: int) -> str:
    return f"init-{run}.mp4"


def segment_name(seq: int) -> str:
    return f"seg-{seq}.m4s"


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


def program_date_time(origin_ms: int, pts: int) -> str:
    """The ISO 8601 date (UTC, milliseconds) of media time `pts` in a clock whose 0 was at
    `origin_ms`."""
    ms = origin_ms + pts * 1000 // CLOCK_RATE
    moment = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def render(segments: Sequence[Segment], *, target_s: float, ended: bool,
           window: int = 0) -> str:
    """The playlist: while live (`ended` false) the last `window` segments (0: all) as an
    EVENT-less live playlist; once ended, every segment as a VOD with EXT-X-ENDLIST."""
    shown = list(segments) if ended or window <= 0 else list(segments[-window:])
    skipped = len(segments) - len(shown)
    # Discontinuities before the window still count (RFC 8216 4.3.3.3).
    discontinuities = sum(1 for i in range(1, skipped + 1)
                          if segments[i].run != segments[i - 1].run)
    longest = max((round(s.duration / CLOCK_RATE) for s in segments), default=0)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7",
             f"#EXT-X-TARGETDURATION:{max(math.ceil(target_s), longest)}",
             f"#EXT-X-MEDIA-SEQUENCE:{shown[0].seq if shown else 0}",
             f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}",
             "#EXT-X-INDEPENDENT-SEGMENTS"]
    if ended:
        lines.insert(2, "#EXT-X-PLAYLIST-TYPE:VOD")
    previous: Segment | None = None
    for segment in shown:
        if previous is not None and previous.run != segment.run:
            lines.append("#EXT-X-DISCONTINUITY")
        if previous is None or previous.run != segment.run:
            lines.append(f'#EXT-X-MAP:URI="{init_name(segment.run)}"')
        date = program_date_time(segment.origin_ms, segment.start)
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{date}")
        if previous is None or previous.origin_ms != segment.origin_ms:
            lines.append(f'#EXT-X-DATERANGE:ID="media-clock-{segment.run}",'
                         f'CLASS="{MEDIA_CLOCK_CLASS}",'
                         f'START-DATE="{program_date_time(segment.origin_ms, 0)}",'
                         f'X-CLOCK-RATE={CLOCK_RATE}')
        lines.append(f"#EXTINF:{segment.duration / CLOCK_RATE:.5f},")
        lines.append(segment.name)
        previous = segment
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
