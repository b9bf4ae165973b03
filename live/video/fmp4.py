"""Just enough of ISO BMFF (ISO/IEC 14496-12) to cut a fragmented MP4 byte stream into HLS
files, no I/O: top-level boxes out of a byte stream, and a fragment's start and length on one
track out of its `moof` (tfhd, tfdt and trun, sections 8.8.7, 8.8.12 and 8.8.8).

The recorder feeds it what libavformat's mp4 muxer writes: `ftyp`+`moov` (the init
segment), then `moof`+`mdat` pairs (fragments). Which fragments make a segment is decided
by their times, read here, not by when the muxer happened to write them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from checkout.errors import LivecartError

__all__ = ["BoxReader", "FragmentTime", "fragment_time", "Fmp4Error"]

_HEADER = struct.Struct(">I4s")


class Fmp4Error(LivecartError, ValueError):
    """The muxer's output is not the fragmented MP4 this module reads."""


class BoxReader:
    """Bytes in (in any chunks), complete top-level boxes out as (type, bytes)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self._buffer += data
        out: list[tuple[str, bytes]] = []
        offset = 0
        while len(self._buffer) - offset >= 8:
            size, kind = _HEADER.unpack_from(self._buffer, offset)
            if size == 1:  # 64-bit size follows the type
                if len(self._buffer) - offset < 16:
                    break
                size = struct.unpack_from(">Q", self._buffer, offset + 8)[0]
            if size < 8:
                raise Fmp4Error(f"box {kind!r} has size {size}")
            if len(self._buffer) - offset < size:
                break
            out.append((kind.decode("latin-1"), bytes(self._buffer[offset:offset + size])))
            offset += size
        del self._buffer[:offset]
        return out

    @property
    def pending(self) -> int:
        return len(self._buffer)


def _children(data: bytes, start: int, end: int) -> list[tuple[str, int, int]]:
    """(type, payload start, box end) of the boxes between `start` and `end`."""
    out = []
    while start + 8 <= end:
        size, kind = _HEADER.unpack_from(data, start)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, start + 8)[0]
            header = 16
        if size < header or start + size > end:
            raise Fmp4Error(f"box {kind!r} overruns its parent")
        out.append((kind.decode("latin-1"), start + header, start + size))
        start += size
    return out


@dataclass(frozen=True, slots=True)
class FragmentTime:
    """One track's part of a fragment, in that track's timescale."""

    start: int  # tfdt's baseMediaDecodeTime: the decode time of its first sample
    duration: int  # the sum of its samples' durations
    samples: int


def fragment_time(moof: bytes, track_id: int) -> FragmentTime | None:
    """The start and duration of `track_id`'s samples in this `moof`; None if it has none."""
    for kind, payload, end in _children(moof, 8, len(moof)):
        if kind != "traf":
            continue
        boxes = {k: (p, e) for k, p, e in _children(moof, payload, end)}
        if "tfhd" not in boxes or "tfdt" not in boxes:
            raise Fmp4Error("a traf without tfhd or tfdt")
        p, _ = boxes["tfhd"]
        flags = int.from_bytes(moof[p + 1:p + 4], "big")
        if struct.unpack_from(">I", moof, p + 4)[0] != track_id:
            continue
        q = p + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
        default_duration = struct.unpack_from(">I", moof, q)[0] if flags & 0x08 else 0
        p, _ = boxes["tfdt"]
        start = (struct.unpack_from(">Q", moof, p + 4)[0] if moof[p] == 1
                 else struct.unpack_from(">I", moof, p + 4)[0])
        duration = samples = 0
        for kind2, p, _ in _children(moof, payload, end):
            if kind2 != "trun":
                continue
            flags = int.from_bytes(moof[p + 1:p + 4], "big")
            count = struct.unpack_from(">I", moof, p + 4)[0]
            q = p + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
            per_sample = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
            for i in range(count):
                duration += (struct.unpack_from(">I", moof, q + i * per_sample)[0]
                             if flags & 0x100 else default_duration)
            samples += count
        return FragmentTime(start, duration, samples)
    return None
