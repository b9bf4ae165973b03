"""The HLS test: one node recording a show, N HLS viewers straight at it and behind a cache,
and glass-to-glass latency of WebRTC and HLS with the frame counter.

1. Start a `livecart serve` child (with its access log: the origin's requests are counted
   there), set up a live stream (`loadtest.flash_sale`'s shop) and publish the synthetic
   camera over WHIP from this process (`TimedCounterTrack`: it notes when each numbered
   frame was captured, on CLOCK_MONOTONIC, one clock for every process on the machine).
   Wait for the recording's live playlist.
2. Glass to glass, with nobody else watching: one WHEP viewer (aiortc) decodes every frame
   and reads its counter (when it got it minus when it was captured), and one HLS viewer
   plays the playlist as the configured player does (`--player`: "ll", the viewer page's
   hls.js in low-latency mode, part by part with blocking reloads; "segments", hls.js
   without parts) and decodes each file with PyAV once fetched: (a) a frame is available
   to a player when its part's (segment's) fetch completes (the files fetched at the join,
   old already, left out); (b) a player that holds PART-HOLD-BACK (ll) or
   `LIVE_SYNC_COUNT` (3) target durations (segments) behind the live edge shows, at that
   moment, the frame whose media time is the file's end minus that hold: that frame's age
   is the player's latency.
3. For each N: N viewers in client processes (`loadtest.hls_viewers`) for a window, first
   straight at the node, then through nginx (`loadtest.hls_cache`). Per run: viewers served
   (every part, or segment, from the one they joined at to the live edge, in order, no
   error), media and playlist fetch latency, the origin's requests per part (segment) (its
   access log), the node's CPU (/proc), nginx's and the load generator's. With the "ll"
   player the report's "segment" figures are parts' (`unit` says which).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

import av
import httpx

from live.video.compat import restrict_ice_hosts
from loadtest.fanout_node import log_errors
from loadtest.fanout_probe import cpu_seconds, tree_cpu_seconds
from loadtest.histogram import LatencyHistogram
from loadtest.hls_cache import NginxCache
from loadtest.hls_viewers import (LIVE_SYNC_COUNT, EtagConnection, HlsFleet, PartRef,
                                  Player, Playlist, ViewerLog, parse_playlist, watch_live,
                                  watch_live_parts)
from loadtest.http_client import encode_request
from loadtest.machine import machine_info, now_iso
from loadtest.server_process import ServerProcess
from loadtest.video import BusyCounterTrack, host_a_show
from loadtest.video_source import CounterTrack, read_counter
from loadtest.webrtc_peers import publish, watch

__all__ = ["HlsConfig", "run_hls", "TimedCounterTrack"]

log = logging.getLogger(__name__)

_PLAYLIST_TIMEOUT_S = 40.0
_COUNTER_WRAP = 1 << 16
_ORIGIN_LINE = re.compile(rb"GET (/hls/[^ ?\"]+)(\?[^ \"]*)?")
_SPAWN_SETTLE_S = 5.0  # the viewer processes' imports done before the show is measured
_IDLE_WINDOW_S = 5.0  # the node's CPU with the publisher and the recorder, nobody watching
_MAX_LAG_SEGMENTS = 2  # a served viewer's last segment is at most this far from the edge
_MAX_LAG_PARTS = 6  # the same for a low-latency viewer's last part (~2.4 s)


@dataclass(frozen=True, slots=True)
class HlsConfig:
    viewers: tuple[int, ...] = (100,)
    cache: bool = True  # also run each N through nginx
    direct: bool = True  # run each N straight at the node
    window_s: float = 20.0  # each run's length (the viewers join over its first target)
    glass_window_s: float = 20.0  # the glass-to-glass phase (0: skipped)
    viewers_per_process: int = 250
    picture: Literal["busy", "static"] = "busy"
    segment_s: float = 2.0  # the node's recording_segment_s
    player: Player = "ll"  # "ll": parts and blocking reloads; "segments": polling
    nginx_workers: int = 1
    server_log_level: str | None = None

    def validate(self) -> None:
        if not self.viewers or min(self.viewers) < 1 or max(self.viewers) > 5000:
            raise ValueError("viewers: each between 1 and 5000")
        if not (self.cache or self.direct):
            raise ValueError("nothing to run: --no-cache and --no-direct")
        if self.window_s < 2 * self.segment_s or self.window_s > 600:
            raise ValueError("window: at least two segments, at most 600 s")
        if not 0 <= self.glass_window_s <= 600 or self.viewers_per_process < 1:
            raise ValueError("glass window 0..600 s, viewers per process >= 1")
        if self.segment_s < 0.5:
            raise ValueError("segment length >= 0.5 s")
        if self.player not in ("ll", "segments"):
            raise ValueError("player: ll or segments")


class TimedCounterTrack(BusyCounterTrack):
    """The busy counter camera, noting when each numbered frame was captured (handed to the
    publisher's encoder), on time.monotonic()."""

    def __init__(self, busy: bool = True) -> None:
        super().__init__()
        self.busy = busy
        self.captured: dict[int, float] = {}

    def draw(self, number: int) -> av.VideoFrame:
        frame = super().draw(number) if self.busy else CounterTrack.draw(self, number)
        self.captured[number % _COUNTER_WRAP] = time.monotonic()
        return frame


def _summary(values: list[float]) -> dict[str, Any]:
    hist = LatencyHistogram()
    for v in values:
        hist.record(v)
    out: dict[str, Any] = hist.summary().as_dict()
    out["min"] = round(min(values) * 1000, 1) if values else 0.0
    return out


async def _glass_webrtc(http: httpx.AsyncClient, stream: str, camera: TimedCounterTrack,
                        window_s: float) -> dict[str, Any]:
    viewer = await watch(http, stream, audio=False)
    try:
        await asyncio.sleep(window_s)
    finally:
        await viewer.stop()
    ages = [at - camera.captured[n] for n, at in zip(viewer.counters, viewer.counter_at)
            if n in camera.captured]
    ages = ages[len(ages) // 10:]  # the first tenth: the jitter buffer and decoder warming up
    in_order = all(0 < (b - a) % _COUNTER_WRAP < _COUNTER_WRAP // 2
                   for a, b in zip(viewer.counters, viewer.counters[1:]))
    return {"frames_read": len(viewer.counters), "frames_decoded": viewer.frames,
            "in_order": in_order, "latency_ms": _summary(ages)}


@dataclass(frozen=True, slots=True)
class _Decoded:
    seq: int
    fetched_at: float
    frames: list[tuple[float, int | None]]  # (media time in s, counter) in order
    end_s: float  # media time the segment ends at


def _decode(init: bytes, segment: bytes) -> list[tuple[float, int | None]]:
    out: list[tuple[float, int | None]] = []
    with av.open(io.BytesIO(init + segment), "r", format="mp4") as container:
        for frame in container.decode(video=0):
            at = float(frame.time) if frame.time is not None else 0.0
            out.append((at, read_counter(frame)))
    return out


async def _glass_hls(server: ServerProcess, stream: str, camera: TimedCounterTrack,
                     window_s: float, player: Player) -> dict[str, Any]:
    """One player-like viewer that decodes every segment (part) it fetches."""
    decoded: list[_Decoded] = []
    holds: list[float] = []  # how far behind the file's end the player shows, s
    joins = 0  # files fetched at the join

    async def on_segment(seq: int, init: bytes, data: bytes, fetched_at: float,
                         playlist: Playlist) -> None:
        nonlocal joins
        frames = await asyncio.to_thread(_decode, init, data)
        if frames:
            step = frames[1][0] - frames[0][0] if len(frames) > 1 else 1 / 30
            decoded.append(_Decoded(seq, fetched_at, frames, frames[-1][0] + step))
            holds.append(LIVE_SYNC_COUNT * playlist.target_s)
            joins = LIVE_SYNC_COUNT

    segment: list[bytes] = []  # the current segment's parts so far (from an independent one)
    shown_before = 0

    async def on_part(part: PartRef, init: bytes, data: bytes, fetched_at: float,
                      joined: bool) -> None:
        # A part decodes after the ones before it in its segment: decode them all, keep
        # the new frames.
        nonlocal shown_before, joins
        if part.independent:
            segment.clear()
            shown_before = 0
        segment.append(data)
        frames = await asyncio.to_thread(_decode, init, b"".join(segment))
        new, shown_before = frames[shown_before:], len(frames)
        if new:
            decoded.append(_Decoded(part.number, fetched_at, new, new[0][0] + part.duration))
            holds.append(hold_back)
            joins += joined

    conn = EtagConnection(server.host, server.port)
    got = ViewerLog()
    prefix = f"/hls/{stream}/"
    hold_back = 0.0
    if player == "ll":
        status, body, _ = await conn.get(encode_request(
            "GET", prefix + "index.m3u8", f"{server.host}:{server.port}"))
        hold_back = parse_playlist(body.decode()).part_hold_back if status == 200 else 0.0
    try:
        if player == "ll":
            await watch_live_parts(conn, f"{server.host}:{server.port}", prefix,
                                   time.monotonic() + window_s, LatencyHistogram(),
                                   LatencyHistogram(), got, on_part)
        else:
            await watch_live(conn, f"{server.host}:{server.port}", prefix,
                             time.monotonic() + window_s, LatencyHistogram(),
                             LatencyHistogram(), got, on_segment)
    finally:
        conn.close()
    available: list[float] = []  # (a) per frame: its segment fetched minus its capture
    first_of_segment: list[float] = []
    held: list[float] = []  # (b) per segment: the frame a 3-behind player shows then
    counters: list[int] = []
    unreadable = 0
    for i, seg in enumerate(decoded):
        for k, (_, n) in enumerate(seg.frames):
            if n is None:
                unreadable += 1
                continue
            counters.append(n)
            # The files fetched at the join were old already: not when a frame came out.
            if n in camera.captured and i >= joins:
                age = seg.fetched_at - camera.captured[n]
                available.append(age)
                if k == 0:
                    first_of_segment.append(age)
        position = seg.end_s - holds[i]
        shown = [(t, n) for s in decoded[:i + 1] for t, n in s.frames
                 if t <= position and n is not None]
        if shown and shown[-1][1] in camera.captured and decoded[0].frames[0][0] <= position:
            held.append(seg.fetched_at - camera.captured[shown[-1][1]])
    in_order = all(0 < (b - a) % _COUNTER_WRAP < _COUNTER_WRAP // 2
                   for a, b in zip(counters, counters[1:]))
    lengths = [s.end_s - s.frames[0][0] for s in decoded]
    return {"player": player, "hold_s": holds[0] if holds else None,
            "segments": len(decoded), "segments_in_order": got.summary()["in_order"],
            "frames_read": len(counters), "unreadable_frames": unreadable,
            "frames_in_order": in_order, "errors": got.errors, "first_error": got.first_error,
            "target_duration_s": None if player == "ll" else holds[0] / LIVE_SYNC_COUNT
            if holds else None,
            "segment_s": _summary_s(lengths),
            "available_ms": _summary(available),
            "available_first_frame_ms": _summary(first_of_segment),
            "player_behind_ms": _summary(held)}


def _summary_s(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": round(min(values), 3), "max": round(max(values), 3),
            "mean": round(sum(values) / len(values), 3)}


def _origin_requests(server: ServerProcess, start: int, stream: str) -> tuple[Counter[str], int]:
    """The node's /hls requests of this stream logged after byte `start`, by file name;
    and where the log ends now."""
    with open(server.log_path, "rb") as f:
        f.seek(start)
        data = f.read()
    prefix = f"/hls/{stream}/"
    names: Counter[str] = Counter()
    for path, query in _ORIGIN_LINE.findall(data):
        text = path.decode("latin-1")
        if text.startswith(prefix):
            # A blocking reload is counted apart from a plain one.
            names[text[len(prefix):] + ("?" if query else "")] += 1
    return names, start + len(data)


def _log_size(server: ServerProcess) -> int:
    return os.path.getsize(server.log_path)


async def _live_edge(http: httpx.AsyncClient, stream: str, player: Player = "segments") -> int:
    """The last segment's number; for the "ll" player, the last part's."""
    r = await http.get(f"/hls/{stream}/index.m3u8")
    r.raise_for_status()
    playlist = parse_playlist(r.text)
    if player == "ll" and playlist.parts:
        return playlist.parts[-1].number
    return playlist.segments[-1][0]


async def _ingest(http: httpx.AsyncClient, stream: str, host: dict[str, str]) -> str:
    """The node's view of the publisher: "live" while it gets its picture."""
    r = await http.get(f"/api/v1/streams/{stream}/video", headers=host)
    r.raise_for_status()
    stats = r.json()
    return str(stats.get("ingest")) if stats.get("publisher") else "no publisher"


async def _one_run(server: ServerProcess, http: httpx.AsyncClient, stream: str,
                   host_auth: dict[str, str], fleet: HlsFleet, n: int, via: NginxCache | None,
                   config: HlsConfig) -> dict[str, Any]:
    assert server.pid is not None
    edge0 = await _live_edge(http, stream)
    host, port = ("127.0.0.1", via.port) if via is not None else (server.host, server.port)
    log_at = _log_size(server)
    cpu0 = {"node": cpu_seconds(server.pid), "node_tree": tree_cpu_seconds([server.pid]),
            "nginx": tree_cpu_seconds([via.pid]) if via is not None and via.pid else 0.0,
            "this_process": cpu_seconds(os.getpid())}
    fleet_cpu0 = {pid: cpu_seconds(pid) for pid in fleet.pids}
    start = time.monotonic() + 0.5
    end = start + config.window_s
    t0 = time.monotonic()
    answers = await fleet.run(host, port, f"/hls/{stream}/", n, start, config.segment_s, end,
                              config.player)
    wall = time.monotonic() - t0
    edge = await _live_edge(http, stream)
    unit_edge = await _live_edge(http, stream, config.player)
    max_lag = _MAX_LAG_PARTS if config.player == "ll" else _MAX_LAG_SEGMENTS
    unit = "part" if config.player == "ll" else "seg"
    ingest = await _ingest(http, stream, host_auth)
    origin, _ = _origin_requests(server, log_at, stream)
    fleet_cpu = sum(cpu_seconds(pid) - fleet_cpu0.get(pid, 0.0) for pid in fleet.pids)
    cpu = {"node": cpu_seconds(server.pid) - cpu0["node"],
           "node_tree": tree_cpu_seconds([server.pid]) - cpu0["node_tree"],
           "nginx": (tree_cpu_seconds([via.pid]) - cpu0["nginx"]
                     if via is not None and via.pid else 0.0),
           "this_process": cpu_seconds(os.getpid()) - cpu0["this_process"]}
    seg_hist, playlist_hist = LatencyHistogram(), LatencyHistogram()
    viewers: list[dict[str, Any]] = []
    for a in answers:
        seg_hist.merge(LatencyHistogram.decode(a["segment_hist"]))
        playlist_hist.merge(LatencyHistogram.decode(a["playlist_hist"]))
        viewers += a["viewers"]
    served = [v for v in viewers if v["errors"] == 0 and v["in_order"] and v["count"] > 0
              and v["last"] >= unit_edge - max_lag]
    fetched = {s for v in viewers if v["count"]
               for s in range(v["first"], v["last"] + 1)}
    origin_segments = sum(c for name, c in origin.items() if name.startswith(unit + "-"))
    origin_playlists = origin.get("index.m3u8", 0) + origin.get("index.m3u8?", 0)
    errors = [v["first_error"] for v in viewers if v["first_error"]]
    lags = Counter(unit_edge - v["last"] for v in viewers if v["count"])
    run = {
        "viewers": n, "via": "nginx" if via is not None else "direct",
        "unit": "part" if config.player == "ll" else "segment",
        "viewers_served": len(served),
        "viewers_in_order": sum(1 for v in viewers if v["in_order"]),
        "viewers_with_errors": sum(1 for v in viewers if v["errors"]),
        "errors_sample": errors[:3],
        "segments_fetched": sum(v["count"] for v in viewers),
        "distinct_segments": len(fetched), "live_edge": edge,
        # The show went on: the recording advanced through the window, the publisher is live.
        "segments_written": edge - edge0, "ingest_after": ingest,
        "stream_advanced": (edge - edge0 >= config.window_s / config.segment_s - 2
                            and ingest == "live"),
        "lag_segments": {str(k): v for k, v in sorted(lags.items())},
        "segment_ms": seg_hist.summary().as_dict(),
        "playlist_ms": playlist_hist.summary().as_dict(),
        "playlist_requests": sum(v["playlists"] for v in viewers),
        "playlist_304": sum(v["not_modified"] for v in viewers),
        "mbit_s_delivered": round(sum(v["bytes"] for v in viewers) * 8 / 1e6 / wall, 1),
        "origin_segment_requests": origin_segments,
        "origin_playlist_requests": origin_playlists,
        "origin_blocking_playlist_requests": origin.get("index.m3u8?", 0),
        "origin_other_media_requests": sum(
            c for k, c in origin.items() if k.startswith(("seg-", "part-"))
            and not k.startswith(unit + "-")),
        "origin_init_requests": sum(c for k, c in origin.items() if k.startswith("init-")),
        "origin_requests_per_segment": (round(origin_segments / len(fetched), 2)
                                        if fetched else None),
        "origin_playlist_requests_per_s": round(origin_playlists / wall, 1),
        "node_cpu_pct": round(100 * cpu["node"] / wall, 1),
        "node_tree_cpu_pct": round(100 * cpu["node_tree"] / wall, 1),
        "nginx_cpu_pct": round(100 * cpu["nginx"] / wall, 1),
        "load_generator_cpu_pct": round(100 * (fleet_cpu + cpu["this_process"]) / wall, 1),
        "window_s": round(wall, 1),
    }
    log.info("%5d viewers %-6s: served %d, segment p50 %.1f p99 %.1f ms, playlist p99 %.1f ms, "
             "origin %s req/segment, node CPU %.1f%%, nginx %.1f%%", n, run["via"],
             run["viewers_served"], run["segment_ms"]["p50"], run["segment_ms"]["p99"],
             run["playlist_ms"]["p99"], run["origin_requests_per_segment"],
             run["node_cpu_pct"], run["nginx_cpu_pct"])
    return run


async def _wait_playlist(http: httpx.AsyncClient, stream: str, segments: int,
                         server: ServerProcess) -> None:
    deadline = time.monotonic() + _PLAYLIST_TIMEOUT_S
    while time.monotonic() < deadline:
        r = await http.get(f"/hls/{stream}/index.m3u8")
        if r.status_code == 200 and len(parse_playlist(r.text).segments) >= segments:
            return
        await asyncio.sleep(0.25)
    raise RuntimeError(f"no live playlist with {segments} segments within "
                       f"{_PLAYLIST_TIMEOUT_S:.0f} s\nserver log tail:\n{server.log_tail(30)}")


async def _wait_ingest_and_edge(http: httpx.AsyncClient, stream: str, host: dict[str, str],
                                server: ServerProcess) -> None:
    """A new publisher is live and the recording has written two segments of it."""
    deadline = time.monotonic() + _PLAYLIST_TIMEOUT_S
    while await _ingest(http, stream, host) != "live":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the publisher did not come back\n{server.log_tail(30)}")
        await asyncio.sleep(0.25)
    edge = await _live_edge(http, stream)
    while await _live_edge(http, stream) < edge + 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the recording did not go on\n{server.log_tail(30)}")
        await asyncio.sleep(0.25)


async def run_hls(config: HlsConfig) -> dict[str, Any]:
    """Run the whole scenario; returns the report (see `loadtest.hls_report`)."""
    config.validate()
    restrict_ice_hosts(("127.0.0.1",))
    started = time.monotonic()
    load_before = os.getloadavg()
    report: dict[str, Any] = {"scenario": "hls", "config": asdict(config), "runs": []}
    server = ServerProcess.livecart(log_level=config.server_log_level, access_log=True,
                                    settings={
        "LIVECART_VIDEO_ICE_HOSTS": "127.0.0.1",
        "LIVECART_RECORDING_SEGMENT_S": str(config.segment_s),
        "LIVECART_RECORDING_PART_S": "0.5" if config.player == "ll" else "0",
        "LIVECART_HTTP_MAX_CONNECTIONS": str(max(config.viewers) + 500)})
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(server)
        shop, http, token = await host_a_show(stack, server)
        camera = TimedCounterTrack(busy=config.picture == "busy")
        publishers = [await publish(http, shop.stream, token, camera)]
        stack.push_async_callback(lambda: publishers[-1].stop())
        await _wait_playlist(http, shop.stream, LIVE_SYNC_COUNT + 1, server)
        report["stream"] = shop.stream
        if config.glass_window_s > 0:
            log.info("glass to glass: one WHEP viewer and one HLS viewer for %.0f s",
                     config.glass_window_s)
            webrtc, hls = await asyncio.gather(
                _glass_webrtc(http, shop.stream, camera, config.glass_window_s),
                _glass_hls(server, shop.stream, camera, config.glass_window_s, config.player))
            report["glass"] = {"webrtc": webrtc, "hls": hls}
            log.info("glass to glass p50: WebRTC %.0f ms, HLS available %.0f ms, "
                     "player behind the edge %.0f ms", webrtc["latency_ms"]["p50"],
                     hls["available_ms"]["p50"], hls["player_behind_ms"]["p50"])
        assert server.pid is not None
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(_IDLE_WINDOW_S)
        report["node_cpu_no_viewers_pct"] = round(
            100 * (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0), 1)
        log.info("no viewers: node CPU %.1f%% of a core (ingest decode, encode, recording)",
                 report["node_cpu_no_viewers_pct"])
        fleet = await stack.enter_async_context(HlsFleet(config.viewers_per_process))
        fleet.spawn_for(max(config.viewers))
        await asyncio.sleep(_SPAWN_SETTLE_S)
        cache = None
        if config.cache:
            cache = await stack.enter_async_context(
                NginxCache(server.port, workers=config.nginx_workers))
        host_auth = {"Authorization": f"Bearer {token}"}
        # Every N through the cache first, then straight at the node: a node saturated
        # straight on can lose its publisher; before each run a lost one publishes again.
        plan: list[tuple[int, NginxCache | None]] = [
            (n, cache) for n in config.viewers if cache is not None]
        plan += [(n, None) for n in config.viewers if config.direct]
        for n, via in plan:
            if await _ingest(http, shop.stream, host_auth) != "live":
                log.info("the publisher was lost; publishing again")
                # Gone without a DELETE (that would end the show): a new WHIP publish
                # within the node's reconnect grace resumes the stream.
                await publishers[-1].vanish()
                publishers.append(await publish(http, shop.stream, token,
                                                TimedCounterTrack(config.picture == "busy")))
                await _wait_ingest_and_edge(http, shop.stream, host_auth, server)
                report["republished"] = report.get("republished", 0) + 1
            run = await _one_run(server, http, shop.stream, host_auth, fleet, n, via, config)
            report["runs"].append(run)
        report["server_log_errors"] = log_errors(server.log_tail(1_000_000))
        report["publisher_lost"] = [line[-200:] for line in server.log_tail(1_000_000)
                                    .splitlines() if "lost its publisher" in line]
    report["seconds"] = round(time.monotonic() - started, 1)
    report["machine"] = machine_info(load_before[0])
    report["date"] = now_iso()
    return report
