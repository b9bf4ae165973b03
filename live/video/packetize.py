"""Packetize each shared packet once, not once per viewer.

aiortc's RTCRtpSender turns an `av.Packet` into RTP payloads with its codec's `pack()`, and
it does so in every viewer's sender: the same split and FU-A fragmentation, N times. The
payloads depend only on the packet, so one `SharedH264Packer` per stream computes them once
and every sender reuses them. It is installed as the sender's encoder before its first
frame (aiortc creates one only when none is set); senders only ever call `pack()` on it,
since they are fed packets, never frames.
"""

from __future__ import annotations

import collections

import av
from aiortc.codecs.h264 import H264Encoder

__all__ = ["SharedH264Packer"]

_KEEP = 8  # recent packets remembered: viewers a few frames behind still hit


class SharedH264Packer(H264Encoder):
    def __init__(self) -> None:
        super().__init__()
        # id -> (packet, result); holding the packet keeps its id from being reused.
        self._recent: collections.OrderedDict[int, tuple[av.Packet, tuple[list[bytes], int]]] = \
            collections.OrderedDict()
        self.packed = 0
        self.reused = 0

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        hit = self._recent.get(id(packet))
        if hit is not None and hit[0] is packet:
            self.reused += 1
            return hit[1]
        result = super().pack(packet)
        self.packed += 1
        self._recent[id(packet)] = (packet, result)
        while len(self._recent) > _KEEP:
            self._recent.popitem(last=False)
        return result

