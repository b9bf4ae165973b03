"""Keyframe requests from many viewers folded into few forced keyframes (no I/O).

Every new viewer and every PLI/FIR asks for a keyframe. On a shared encoder each forced
keyframe costs every viewer a large frame, so requests are coalesced: all requests before
the next frame become one keyframe, and at most one is forced per `min_interval_s`; later
requests wait for that window (or for the next natural GOP keyframe, which satisfies them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KeyframePolicy"]


@dataclass(slots=True)
class KeyframePolicy:
    min_interval_s: float = 0.5
    pending: bool = False
    last_keyframe_at: float = float("-inf")
    requests: int = 0  # every request, from viewers and from PLI/FIR
    forced: int = 0  # keyframes actually forced on the encoder

    def request(self) -> None:
        self.requests += 1
        self.pending = True

    def should_force(self, now: float) -> bool:
        """Ask before encoding each frame: force this one?"""
        if self.pending and now - self.last_keyframe_at >= self.min_interval_s:
            self.pending = False
            self.last_keyframe_at = now
            self.forced += 1
            return True
        return False

    def saw_keyframe(self, now: float) -> None:
        """A keyframe came out (forced or from the GOP): it answers every pending request."""
        self.pending = False
        self.last_keyframe_at = now
