"""`ws_frame` builds the same bytes websockets would send, for every size class."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from websockets.frames import Frame, Opcode

from live.protocol import Wire, ws_frame


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]) | st.integers(0, 70000),
       st.sampled_from(list(Wire)))
def test_ws_frame_matches_websockets(size: int, wire: Wire) -> None:
    payload = bytes(i % 251 for i in range(size))
    opcode = Opcode.TEXT if wire is Wire.JSON else Opcode.BINARY
    assert ws_frame(payload, wire) == Frame(opcode, payload).serialize(mask=False, extensions=[])
