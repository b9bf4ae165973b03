"""Video figures for /metrics, read from the live objects at scrape time (nothing to keep in step)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from live.video.encoder import SharedVideoEncoder

if TYPE_CHECKING:
    from live.video.service import VideoService

__all__ = ["VideoCollector"]


class VideoCollector(Collector):
    def __init__(self, video: "VideoService") -> None:
        self._video = video

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        peers = GaugeMetricFamily("livecart_video_peers", "WebRTC peers held", labels=["role"])
        for role in ("publisher", "viewer"):
            peers.add_metric([role], self._video.peers.count(role))
        yield peers
        sessions = list(self._video.sessions.values())
        yield GaugeMetricFamily("livecart_video_streams", "streams with video on this node",
                                value=len(sessions))
        yield GaugeMetricFamily("livecart_video_encoders", "video encoders running",
                                value=sum(s.encoders for s in sessions))
        shared = [s.video for s in sessions if isinstance(s.video, SharedVideoEncoder)]
        for name, doc, attr in (
                ("frames_encoded", "frames encoded by shared encoders", "frames_encoded"),
                ("frames_dropped", "publisher frames dropped while the encoder was busy",
                 "frames_dropped")):
            yield CounterMetricFamily(f"livecart_video_{name}", doc,
                                      value=sum(getattr(v, attr) for v in shared))
        yield CounterMetricFamily("livecart_video_keyframes_forced", "keyframes forced",
                                  value=sum(v.keyframes.forced for v in shared))
        recorders = [s.recorder for s in sessions if s.recorder is not None]
        yield GaugeMetricFamily("livecart_recordings_active", "shows being recorded",
                                value=len(recorders))
        yield CounterMetricFamily("livecart_recording_dropped",
                                  "packets the recording queue had no room for",
                                  value=sum(r.dropped for r in recorders))
        yield CounterMetricFamily("livecart_recording_failures", "recording runs given up",
                                  value=sum(r.writer.failures for r in recorders))
