"""WHIP publishers and WHEP viewers built on aiortc: the clients of the tests and load tests."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import orjson
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from loadtest.video_source import read_counter

__all__ = ["Publisher", "Viewer", "publish", "watch", "WhipError"]


class WhipError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


async def _exchange(http: httpx.AsyncClient, url: str, pc: RTCPeerConnection,
                    headers: dict[str, str]) -> str:
    """Offer (with every candidate gathered), POST it, apply the answer; returns the Location.
    Whatever fails (or is cancelled) on the way, the peer is closed."""
    try:
        await pc.setLocalDescription(await pc.createOffer())
        r = await http.post(url, content=pc.localDescription.sdp.encode(),
                            headers={"Content-Type": "application/sdp", **headers})
        if r.status_code != 201:
            raise WhipError(r.status_code, r.text)
        await pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
        return r.headers["location"]
    except BaseException:
        await pc.close()
        raise


@dataclass
class Publisher:
    pc: RTCPeerConnection
    http: httpx.AsyncClient
    location: str
    headers: dict[str, str]

    async def stop(self) -> int:
        """DELETE the session (the host stopping); returns the status. Closes the peer
        even when the DELETE fails."""
        try:
            r = await self.http.delete(self.location, headers=self.headers)
        finally:
            await self.pc.close()
        return r.status_code

    async def vanish(self) -> None:
        """Close the peer without telling the server: a dropped connection."""
        await self.pc.close()


async def publish(http: httpx.AsyncClient, stream_id: str, token: str, video: MediaStreamTrack,
                  audio: MediaStreamTrack | None = None) -> Publisher:
    pc = RTCPeerConnection()
    pc.addTransceiver(video, direction="sendonly")
    if audio is not None:
        pc.addTransceiver(audio, direction="sendonly")
    headers = {"Authorization": f"Bearer {token}"}
    location = await _exchange(http, f"/api/v1/streams/{stream_id}/whip", pc, headers)
    return Publisher(pc, http, location, headers)


@dataclass
class Viewer:
    """A WHEP viewer. It counts the video frames that arrive complete, and unless made with
    `watch(decode=False)` decodes them and reads each one's counter (see video_source)."""

    pc: RTCPeerConnection
    http: httpx.AsyncClient
    location: str = ""
    counters: list[int] = field(default_factory=list)
    counter_at: list[float] = field(default_factory=list)  # time.monotonic() each was read
    frames: int = 0  # decoded
    messages: list[dict[str, Any]] = field(default_factory=list)
    audio_frames: int = 0
    arrived: int = 0  # video frames received complete, decoded or not
    payload_bytes: int = 0  # video RTP payload received
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _last_timestamp: int | None = None

    def _count(self, packet: RtpPacket) -> None:
        """A frame ends on the packet with the marker bit (RFC 6184), so counting those needs
        no depacketizing, jitter buffer or decoder: one load generator can hold many viewers
        that only count, and frames count on arrival, however late a busy decoder is."""
        self.payload_bytes += len(packet.payload)
        if packet.marker and packet.timestamp != self._last_timestamp:
            self._last_timestamp = packet.timestamp
            self.arrived += 1

    async def _read_video(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames += 1
                # A decoded remote video track gives frames (recv() is typed for packets too).
                number = read_counter(frame) if isinstance(frame, av.VideoFrame) else None
                if number is not None:
                    self.counters.append(number)
                    self.counter_at.append(time.monotonic())
        except MediaStreamError:
            self.ended.set()

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.audio_frames += 1
        except MediaStreamError:
            pass

    async def stop(self) -> int:
        """DELETE the session; returns the status. Closes the peer even when it fails."""
        try:
            r = await self.http.delete(self.location)
        finally:
            await self.close()
        return r.status_code

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()


async def watch(http: httpx.AsyncClient, stream_id: str, *, audio: bool = True,
                decode: bool = True) -> Viewer:
    pc = RTCPeerConnection()
    viewer = Viewer(pc, http)
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    handle = receiver._handle_rtp_packet if decode else None

    async def on_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
        viewer._count(packet)
        if handle is not None:
            await handle(packet, arrival_time_ms)

    # Replacing aiortc's per-packet method is the point: counting ahead of its decoder.
    receiver._handle_rtp_packet = on_rtp  # type: ignore[method-assign]
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    channel = pc.createDataChannel("overlay")
    channel.on("message", lambda raw: viewer.messages.append(orjson.loads(raw)))

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        reader = viewer._read_video if track.kind == "video" else viewer._read_audio
        viewer._tasks.append(asyncio.ensure_future(reader(track)))

    viewer.location = await _exchange(http, f"/api/v1/streams/{stream_id}/whep", pc, {})
    return viewer
