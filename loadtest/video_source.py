"""A synthetic camera whose frames carry their own number, and the reader for it.

The counter is drawn as 16 black/white cells (and their complement below, as a check), big
enough to survive H.264 at 640x360; a viewer reads it back from decoded frames to prove the
picture it gets is advancing, and in order.
"""

from __future__ import annotations

import av
from aiortc import VideoStreamTrack

__all__ = ["CounterTrack", "read_counter", "WIDTH", "HEIGHT"]

WIDTH, HEIGHT = 640, 360
_BITS = 16
_CELL = 32
_TOP = 32  # the counter row; its complement row is right below
_LEFT = (WIDTH - _BITS * _CELL) // 2
_WHITE, _BLACK, _GREY = 235, 16, 128


class CounterTrack(VideoStreamTrack):
    """30 fps frames, 640x360, numbered from 0 (wrapping at 2**16)."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.count = 0
        self._grey = bytes([_GREY]) * (width * height)
        self._chroma = bytes([128]) * ((width // 2) * (height // 2))

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = self.draw(self.count)
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame

    def draw(self, number: int) -> av.VideoFrame:
        luma = bytearray(self._grey)
        w = self.width
        for bit in range(_BITS):
            on = (number >> (_BITS - 1 - bit)) & 1
            x = _LEFT + bit * _CELL
            for row, value in ((_TOP, on), (_TOP + _CELL, 1 - on)):
                cell = bytes([_WHITE if value else _BLACK]) * _CELL
                for y in range(row, row + _CELL):
                    luma[y * w + x: y * w + x + _CELL] = cell
        frame = av.VideoFrame(w, self.height, "yuv420p")
        _fill(frame.planes[0], bytes(luma), w, self.height)
        for plane in frame.planes[1:]:
            _fill(plane, self._chroma, w // 2, self.height // 2)
        return frame


def _fill(plane: av.video.plane.VideoPlane, data: bytes, width: int, height: int) -> None:
    if plane.line_size == width:
        plane.update(data)
        return
    padded = bytearray(plane.line_size * height)
    for y in range(height):
        padded[y * plane.line_size: y * plane.line_size + width] = data[y * width:(y + 1) * width]
    plane.update(bytes(padded))


def read_counter(frame: av.VideoFrame) -> int | None:
    """The frame's number, or None if the cells do not read back as a number and its complement."""
    if (frame.width, frame.height) != (WIDTH, HEIGHT) or frame.format.name != "yuv420p":
        frame = frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p")
    plane = frame.planes[0]
    stride = plane.line_size
    luma = bytes(plane)
    number = 0
    for bit in range(_BITS):
        x = _LEFT + bit * _CELL + _CELL // 2
        top = luma[(_TOP + _CELL // 2) * stride + x]
        bottom = luma[(_TOP + _CELL + _CELL // 2) * stride + x]
        if abs(top - bottom) < 80:
            return None
        number = (number << 1) | (1 if top > bottom else 0)
    return number
