"""Where the recording cuts the shared encode into HLS segments, no I/O: one decision per
video packet, on the event loop, before the packet goes to the muxing thread.

A segment starts on a keyframe (H.264 decodes from there). The shared encoder's keyframes
come from its GOP (`video_keyint_s`), from x264's scene cuts and from viewers joining
(keyframes.py); a keyframe cuts once the segment has lasted `target - tolerance`, and when a
segment reaches `target` with no keyframe the cutter asks the encoder for one (through
the same coalescing policy as the viewers). With `video_keyint_s` equal to the segment
length the GOP lands on the cuts and nothing is forced; otherwise segments still come out
at about `target` (at most `target + 0.5 s`, the policy's spacing between forced keyframes).

A gap in media time (no frames for `gap` ticks: the publisher was lost and came back)
ends the run: nothing is kept until the next keyframe, which opens a new run (a new init
segment and an EXT-X-DISCONTINUITY), so no sample is stretched over the gap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Cut", "SegmentCutter"]


class Cut(enum.Enum):
    SKIP = "skip"  # not recorded: waiting for a keyframe
    KEEP = "keep"  # into the current segment
    SEGMENT = "segment"  # starts a new segment
    RUN = "run"  # starts a new run (and a segment)


@dataclass(slots=True)
class SegmentCutter:
    target: int  # ticks
    tolerance: int  # ticks: a keyframe this early still cuts
    gap: int  # ticks without a frame that end a run
    start: int | None = None  # the current segment's first pts
    last: int | None = None
    resync: Cut | None = Cut.RUN  # what the next keyframe does when waiting for one
    asked: bool = False

    def video(self, pts: int, keyframe: bool) -> Cut:
        if self.last is not None and pts - self.last > self.gap:
            self.resync, self.asked = Cut.RUN, False
        if self.last is not None and pts <= self.last:
            return Cut.SKIP  # never backwards: the muxer needs increasing times
        self.last = pts
        if self.resync is not None:
            if not keyframe:
                return Cut.SKIP
            cut, self.resync = self.resync, None
            self.start, self.asked = pts, False
            return cut
        assert self.start is not None
        if keyframe and pts - self.start >= self.target - self.tolerance:
            self.start, self.asked = pts, False
            return Cut.SEGMENT
        return Cut.KEEP

    def lost(self) -> None:
        """A packet could not be kept (the muxing queue was full): restart on a keyframe."""
        if self.resync is None:
            self.resync, self.asked = Cut.SEGMENT, False

    def wants_keyframe(self) -> bool:
        """Ask the encoder for a keyframe now? True once per overdue segment (or resync)."""
        due = self.resync is not None or (
            self.start is not None and self.last is not None
            and self.last - self.start >= self.target)
        if due and not self.asked:
            self.asked = True
            return True
        return False
