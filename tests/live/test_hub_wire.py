"""The hub's wire-level pieces: frames built once (the same bytes websockets would send)
and the tick pause that keeps state frames from starving the loop."""

from __future__ import annotations

import pytest
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


def test_ticks_take_at_most_their_share_of_the_loop() -> None:
    from live.hub import HubLimits, tick_pause
    limits = HubLimits(tick_s=0.1, tick_share=0.5)
    assert tick_pause(limits, 0.01) == pytest.approx(0.09)  # a small room: the usual period
    assert tick_pause(limits, 0.09) == pytest.approx(0.09)  # 10,000 sockets: 180 ms apart
    assert tick_pause(limits, 0.3) == pytest.approx(0.3)
    assert tick_pause(HubLimits(tick_s=0.1, tick_share=1.0), 0.3) == 0.0
