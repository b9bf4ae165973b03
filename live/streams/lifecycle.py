"""A live stream's lifecycle as a literal transition table (no I/O)."""

from __future__ import annotations

from enum import StrEnum

from checkout.errors import Refused

__all__ = ["StreamState", "StreamAction", "TRANSITIONS", "apply", "IllegalStreamMove"]


class StreamState(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


class StreamAction(StrEnum):
    GO_LIVE = "go_live"
    END = "end"
    CANCEL = "cancel"


TRANSITIONS: dict[tuple[StreamState, StreamAction], StreamState] = {
    (StreamState.SCHEDULED, StreamAction.GO_LIVE): StreamState.LIVE,
    (StreamState.SCHEDULED, StreamAction.CANCEL): StreamState.CANCELLED,
    (StreamState.LIVE, StreamAction.END): StreamState.ENDED,
}


class IllegalStreamMove(Refused):
    def __init__(self, state: StreamState, action: StreamAction) -> None:
        super().__init__(409, "illegal-stream-move",
                         f"a {state} stream cannot {action.replace('_', ' ')}")
        self.state = state
        self.action = action


def apply(state: StreamState, action: StreamAction) -> StreamState:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise IllegalStreamMove(state, action) from None
