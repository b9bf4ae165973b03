"""Per-viewer tracks: each viewer's sender reads shared packets (or frames) from a fan-out.

`PacketTrack` hands aiortc pre-encoded `av.Packet`s, which RTCRtpSender packetizes without
encoding; that is what makes one encode serve every viewer. Each viewer has a bounded
queue: a viewer that falls behind loses its queue and waits for the next keyframe (H.264
cannot decode from the middle of a GOP), instead of growing memory or delaying the others.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Callable, Generic, Protocol, TypeVar

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

__all__ = ["Fanout", "PacketTrack", "FrameTrack", "Subscriber"]

Item = TypeVar("Item", av.Packet, av.VideoFrame)
_Taken = TypeVar("_Taken", contravariant=True)


class Subscriber(Protocol[_Taken]):
    """What a fan-out publishes to: a viewer's track, or the recorder (recorder.py)."""

    @property
    def kind(self) -> str: ...

    def offer(self, item: _Taken) -> None: ...

    def stop(self) -> None: ...


class _QueueTrack(MediaStreamTrack, Generic[Item]):
    """A track fed by push: `offer()` from the fan-out, `recv()` from aiortc's sender."""

    def __init__(self, kind: str, fanout: Fanout[Item], queue_max: int) -> None:
        super().__init__()
        self.kind = kind
        self._fanout: Fanout[Item] = fanout
        self._queue: collections.deque[Item] = collections.deque()
        self._queue_max = queue_max
        self._wakeup: asyncio.Future[None] | None = None
        self.delivered = 0
        self.dropped = 0

    def offer(self, item: Item) -> None:
        """Take what the fan-out publishes (each kind of track has its own rule)."""
        raise NotImplementedError

    def _push(self, item: Item) -> bool:
        if len(self._queue) >= self._queue_max:
            self._queue.clear()
            self.dropped += 1
            return False
        self._queue.append(item)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        return True

    async def recv(self) -> Item:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        self.delivered += 1
        return self._queue.popleft()

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            self._fanout.unsubscribe(self)
            if self._wakeup is not None and not self._wakeup.done():
                self._wakeup.set_result(None)


class PacketTrack(_QueueTrack[av.Packet]):
    """Encoded packets for one viewer; video starts (and restarts) on a keyframe."""

    def __init__(self, kind: str, fanout: Fanout[av.Packet], queue_max: int) -> None:
        super().__init__(kind, fanout, queue_max)
        self.waiting_for_keyframe = kind == "video"
        self.first_pts: int | None = None  # the media time of the first packet it sent
        self.on_first_packet: Callable[[int], None] | None = None

    def offer(self, packet: av.Packet) -> None:
        if self.waiting_for_keyframe:
            if not packet.is_keyframe:
                return
            self.waiting_for_keyframe = False
        if not self._push(packet):
            self.waiting_for_keyframe = self.kind == "video"
            if self.waiting_for_keyframe:
                self._fanout.request_keyframe()
            return
        if self.first_pts is None and packet.pts is not None:
            self.first_pts = int(packet.pts)
            if self.on_first_packet is not None:
                self.on_first_packet(self.first_pts)


class FrameTrack(_QueueTrack[av.VideoFrame]):
    """Decoded frames for one viewer, which its sender encodes itself.

    This is the per-viewer-encoding baseline the video load test measures against; it is
    never the default (`video_encode = "per_viewer"`).
    """

    def offer(self, frame: av.VideoFrame) -> None:
        self._push(frame)


class Fanout(Generic[Item]):
    """The subscribers of one shared source, and the way back to its keyframe policy."""

    def __init__(self, request_keyframe: Callable[[], None]) -> None:
        self.subscribers: set[Subscriber[Item]] = set()
        self._request_keyframe = request_keyframe

    def subscribe(self, track: Subscriber[Item]) -> None:
        self.subscribers.add(track)
        if track.kind == "video":
            self._request_keyframe()

    def unsubscribe(self, track: Subscriber[Item]) -> None:
        self.subscribers.discard(track)

    def request_keyframe(self) -> None:
        self._request_keyframe()

    def publish(self, item: Item) -> None:
        for track in list(self.subscribers):
            track.offer(item)

    def stop_all(self) -> None:
        for track in list(self.subscribers):
            track.stop()
