"""The video test: one WHIP publisher, N WHEP viewers, what one node spends on them.

1. Start a `livecart serve` child (ICE on loopback only, peer caps raised), set up a brand,
   a product and a live stream through the API (`loadtest.flash_sale`'s shop), and publish
   a `BusyCounterTrack` over WHIP from this process.
2. Publisher only: the server's CPU over a window (it decodes the ingest; with nobody
   watching it encodes nothing).
3. Add viewers up to each step of a ladder. The first `sample` viewers decode every frame
   here and check the drawn counter advances; the others count complete frames in client
   processes (`loadtest.video_viewers`). Once every viewer has frames, settle, then measure
   over a window: frames per second at each viewer, the server's CPU (utime + stime from
   /proc), its video stats (encoders, frames encoded and dropped).
   A step holds if every viewer got frames, the median one at least 90% of 30 fps and the
   worst at least 75%; one that misses is measured once more (this machine is shared).
4. The ladder is [N]; with the ramp, every step up to `max_viewers` until frames drop (the
   capacity), then the same on a second node with LIVECART_VIDEO_ENCODE=per_viewer, where
   each viewer's sender encodes its own copy: the baseline the shared encoder is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import av
import httpx

from live.accounts.auth import Role, TokenAuthority
from live.video.compat import restrict_ice_hosts
from loadtest.fanout_node import log_errors
from loadtest.fanout_probe import CpuWatch, cpu_seconds, rss_kib
from loadtest.flash_sale import CREATOR, _Shop
from loadtest.machine import machine_info, now_iso
from loadtest.server_process import ServerProcess
from loadtest.video_source import CounterTrack
from loadtest.video_viewers import CountingFleet, arrivals
from loadtest.webrtc_peers import Viewer, publish, watch

__all__ = ["FPS", "BusyCounterTrack", "VideoConfig", "run_video", "host_a_show"]

log = logging.getLogger(__name__)

Mode = Literal["shared", "per_viewer"]
FPS = 30  # the node's default output (640x360 at 30 fps), which it is run with
SHARED_STEPS = (10, 25, 50, 75, 100, 150, 200, 300, 400)
PER_VIEWER_STEPS = (1, 2, 3, 4, 5, 6, 8, 12, 16)
_TOKEN_TTL_S = 6 * 3600
_NOISE_TOP = 128  # first noisy row: below the counter's two rows of cells (32..96)
_INGEST_TIMEOUT_S = 20.0
_FIRST_FRAMES_TIMEOUT_S = 30.0
_POLL_S = 0.25
_COUNTER_WRAP = 1 << 16
_SATURATED_PCT = 85.0


@dataclass(frozen=True, slots=True)
class VideoConfig:
    viewers: int = 50
    window_s: float = 10.0  # the measured window at `viewers`
    ramp: bool = True
    ramp_window_s: float = 5.0  # the measured window at the other steps of the ramp
    max_viewers: int = 200
    sample: int = 2  # viewers that decode every frame and read its counter
    viewers_per_process: int = 50  # counting viewers per client process
    picture: Literal["busy", "static"] = "busy"
    idle_window_s: float = 5.0  # publisher only
    warmup_s: float = 2.0  # after the publisher connects
    settle_s: float = 2.0  # after every viewer has frames
    p50_fps_fraction: float = 0.9  # a step holds if the median viewer gets this much of FPS
    min_fps_fraction: float = 0.75  # ... and the worst one this much
    duration_limit_s: float = 900.0  # the ramp stops adding steps after this long
    server_log_level: str | None = None

    def validate(self) -> None:
        if self.viewers < 1 or self.sample < 0 or self.viewers_per_process < 1:
            raise ValueError("viewers and viewers per process must be at least 1, sample >= 0")
        if self.window_s <= 0 or self.ramp_window_s <= 0 or self.idle_window_s <= 0:
            raise ValueError("windows must be positive")
        if self.ramp and self.max_viewers < self.viewers:
            raise ValueError(f"--max-viewers ({self.max_viewers}) is below --viewers "
                             f"({self.viewers})")


class BusyCounterTrack(CounterTrack):
    """`CounterTrack` with fresh noise below the counter. A still picture compresses to
    ~20 kbit/s, one small packet a frame; noise makes the encoder spend its whole bitrate
    (~1 Mbit/s), so a viewer gets as many packets as it would of a camera's picture."""

    def draw(self, number: int) -> av.VideoFrame:
        frame = super().draw(number)
        plane = frame.planes[0]
        start = _NOISE_TOP * plane.line_size
        plane.update(bytes(plane)[:start] + os.urandom(plane.buffer_size - start))
        return frame


@dataclass(eq=False)
class _Load:
    """One node under test, its publisher and its viewers."""

    server: ServerProcess
    http: httpx.AsyncClient
    stream: str
    host: dict[str, str]  # the host's Authorization header: the stats endpoint wants it
    fleet: CountingFleet
    picture: CounterTrack  # the publisher's camera: its count is the frames it made
    idle_cpu_pct: float
    idle_rss_kib: int = 0  # the server's memory with the publisher only
    samples: list[Viewer] = field(default_factory=list)

    async def stats(self) -> dict[str, Any]:
        r = await self.http.get(f"/api/v1/streams/{self.stream}/video", headers=self.host)
        r.raise_for_status()
        stats: dict[str, Any] = r.json()
        return stats


@dataclass(frozen=True, slots=True)
class _Snapshot:
    at: float
    server_cpu: float
    client_cpu: dict[int, float]
    arrivals: list[dict[str, Any]]  # per process holding viewers (`video_viewers.arrivals`)
    decoded: list[tuple[int, int]]  # (frames decoded, counters read) per sample viewer
    published: int  # frames the publisher made so far
    stats: dict[str, Any]


def _node(config: VideoConfig, mode: Mode, max_peers: int) -> ServerProcess:
    return ServerProcess.livecart(log_level=config.server_log_level, settings={
        "LIVECART_VIDEO_ICE_HOSTS": "127.0.0.1", "LIVECART_VIDEO_ENCODE": mode,
        "LIVECART_VIDEO_MAX_PEERS": str(max_peers),
        # every viewer comes from 127.0.0.1
        "LIVECART_VIDEO_MAX_PEERS_PER_IP": str(max_peers),
        "LIVECART_VIDEO_NEW_SESSIONS_PER_IP_S": "1000"})


async def host_a_show(stack: contextlib.AsyncExitStack,
                      server: ServerProcess) -> tuple[_Shop, httpx.AsyncClient, str]:
    """What a publisher needs on a fresh node: a brand's product in a live stream of the
    load's creator, an HTTP client to the node (closed with `stack`) and the creator's token."""
    tokens = TokenAuthority(server.secret)
    shop = _Shop(server.host, server.port, tokens, f"{int(time.time()):x}{os.getpid():x}")
    await shop.setup(10, 0)
    http = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=30))
    return shop, http, tokens.mint(Role.CREATOR, CREATOR, ttl_s=_TOKEN_TTL_S)


@contextlib.asynccontextmanager
async def _loaded_node(config: VideoConfig, mode: Mode, max_viewers: int,
                       report: dict[str, Any]) -> AsyncIterator[_Load]:
    """A node with a stream being published to; its viewers are closed on the way out."""
    server = _node(config, mode, max_viewers + 10)  # the publisher, sessions still closing
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(server)
        assert server.pid is not None
        stack.callback(lambda: report.__setitem__(
            "server_log_errors", log_errors(server.log_tail(100_000))))
        shop, http, token = await host_a_show(stack, server)
        picture = BusyCounterTrack() if config.picture == "busy" else CounterTrack()
        publisher = await publish(http, shop.stream, token, picture)
        stack.push_async_callback(publisher.stop)
        host = {"Authorization": f"Bearer {token}"}
        fleet = await stack.enter_async_context(
            CountingFleet(server.url, shop.stream, config.viewers_per_process))
        load = _Load(server, http, shop.stream, host, fleet, picture, 0.0)
        await _wait_ingest(load)
        await asyncio.sleep(config.warmup_s)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(config.idle_window_s)
        load.idle_cpu_pct = round(_pct(cpu_seconds(server.pid) - cpu0, time.monotonic() - t0), 1)
        report["publisher_only_cpu_pct"] = load.idle_cpu_pct
        load.idle_rss_kib = rss_kib(server.pid)
        log.info("%s node: publisher only, server CPU %.1f%% of a core", mode, load.idle_cpu_pct)
        try:
            yield load
        finally:
            await _close_viewers(load)


async def _close_viewers(load: _Load) -> None:
    """End every viewer's session; a failure here is logged, not raised over the run's own."""
    results = await asyncio.gather(load.fleet.close_viewers(),
                                   *(v.stop() for v in load.samples), return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.warning("closing viewers: %s: %s", type(result).__name__, result)


async def _wait_ingest(load: _Load) -> None:
    deadline = time.monotonic() + _INGEST_TIMEOUT_S
    while True:
        stats = await load.stats()
        if stats.get("publisher") and stats.get("ingest") == "live":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the publisher did not go live: {stats}\n"
                               f"server log tail:\n{load.server.log_tail(30)}")
        await asyncio.sleep(_POLL_S)


async def _grow(load: _Load, target: int, config: VideoConfig) -> dict[str, Any]:
    """Add viewers up to `target` (samples first) and wait until each has frames."""
    started = time.monotonic()
    errors: list[str] = []
    while len(load.samples) < min(config.sample, target):
        try:
            load.samples.append(await watch(load.http, load.stream, audio=False))
        except Exception as exc:  # reported; the step then serves fewer viewers
            errors.append(f"{type(exc).__name__}: {exc}")
            break
    more = target - len(load.samples) - load.fleet.viewers
    if more > 0:
        added = await load.fleet.add(more, timeout_s=30 + 0.5 * more)
        errors += added["errors"]
    deadline = time.monotonic() + _FIRST_FRAMES_TIMEOUT_S
    framed = 0
    while time.monotonic() < deadline:
        counts = [arrivals(load.samples), *await load.fleet.counts()]
        frames = [f for c in counts for f in c["frames"]]
        framed = sum(1 for f in frames if f > 0)
        if framed >= target:
            break
        await asyncio.sleep(_POLL_S)
    return {"seconds": round(time.monotonic() - started, 2), "viewers_with_frames": framed,
            "errors": errors}


async def _snapshot(load: _Load) -> _Snapshot:
    counted = await load.fleet.counts()
    assert load.server.pid is not None
    return _Snapshot(at=time.monotonic(), server_cpu=cpu_seconds(load.server.pid),
                     client_cpu={pid: cpu_seconds(pid) for pid in [os.getpid(), *load.fleet.pids]},
                     arrivals=[arrivals(load.samples), *counted],
                     decoded=[(v.frames, len(v.counters)) for v in load.samples],
                     published=load.picture.count, stats=await load.stats())


def _pct(cpu_s: float, wall_s: float) -> float:
    return 100.0 * cpu_s / wall_s if wall_s > 0 else 0.0


def _sample_check(samples: list[Viewer], before: _Snapshot, after: _Snapshot) -> dict[str, Any]:
    """Did each decoding viewer's picture move forward, in order, over the window?"""
    per: list[dict[str, Any]] = []
    for viewer, (f0, c0), (f1, c1) in zip(samples, before.decoded, after.decoded):
        counters = viewer.counters[c0:c1]
        steps = [(b - a) % _COUNTER_WRAP for a, b in itertools.pairwise(counters)]
        per.append({"frames": f1 - f0, "counters_read": c1 - c0, "advanced_by": sum(steps),
                    "in_order": all(0 < s < _COUNTER_WRAP // 2 for s in steps)})
    return {"viewers": len(per), "in_order": all(p["in_order"] for p in per),
            "advanced": all(p["advanced_by"] > 0 for p in per),
            "unreadable_frames": sum(p["frames"] - p["counters_read"] for p in per),
            "per_viewer": per}


def _step(load: _Load, n: int, before: _Snapshot, after: _Snapshot, config: VideoConfig,
          cpu: dict[str, float], grow: dict[str, Any]) -> dict[str, Any]:
    assert load.server.pid is not None
    wall = after.at - before.at
    fps: list[float] = []
    kbps: list[float] = []
    for b, a in zip(before.arrivals, after.arrivals):
        span = a["at"] - b["at"]
        fps += [(f1 - f0) / span for f0, f1 in zip(b["frames"], a["frames"])]
        kbps += [(y1 - y0) * 8 / 1000 / span for y0, y1 in zip(b["bytes"], a["bytes"])]
    connected = len(fps)
    fps += [0.0] * (n - connected)  # asked for but never connected: served nothing
    server_pct = _pct(after.server_cpu - before.server_cpu, wall)
    clients = {pid: round(_pct(after.client_cpu[pid] - c0, wall), 1)
               for pid, c0 in before.client_cpu.items()}
    stats0, stats1 = before.stats, after.stats
    served = sum(1 for f in fps if f > 0)
    p50, low = statistics.median(fps), min(fps)
    step: dict[str, Any] = {
        "viewers": n, "viewers_connected": connected, "viewers_served": served,
        "encoders": stats1.get("encoders"), "server_viewers": stats1.get("viewers"),
        "fps_received": {"p50": round(p50, 2), "min": round(low, 2), "max": round(max(fps), 2)},
        "kbps_received_p50": round(statistics.median(kbps or [0.0]), 1),
        "cpu_total_pct": round(server_pct, 1),
        "cpu_viewers_pct": round(server_pct - load.idle_cpu_pct, 1),
        "cpu_per_viewer_pct": round((server_pct - load.idle_cpu_pct) / n, 3),
        # Memory a viewer costs the server: its peer (ICE, DTLS, SRTP, SCTP) and its queue.
        "rss_per_viewer_kib": round((rss_kib(load.server.pid) - load.idle_rss_kib) / n, 1),
        # A load generator near a full core counts late, not the server sending late.
        "load_generator_saturated": max(clients.values()) > _SATURATED_PCT,
        "load_generator_cpu_pct": {"this_process": clients.pop(os.getpid()),
                                   "viewer_processes": list(clients.values())},
        "others_cpu_pct": round(_pct(cpu["others_cpu_s"], wall), 1),
        "steal_pct": round(_pct(cpu["steal_s"], wall), 1),
        "published_fps": round((after.published - before.published) / wall, 2),
        "window_s": round(wall, 2), "connect": grow,
        "sample": _sample_check(load.samples, before, after),
    }
    if "frames_encoded" in stats1:  # the shared encoder's own counters
        step["encoded_fps"] = round((stats1["frames_encoded"] - stats0["frames_encoded"]) / wall, 2)
        step["ingest_frames_dropped"] = stats1["frames_dropped"] - stats0["frames_dropped"]
        step["keyframes_forced"] = stats1["keyframes_forced"] - stats0["keyframes_forced"]
    step["ok"] = (served == n and p50 >= config.p50_fps_fraction * FPS
                  and low >= config.min_fps_fraction * FPS)
    return step


async def _measure(load: _Load, n: int, window_s: float, config: VideoConfig) -> dict[str, Any]:
    grow = await _grow(load, n, config)
    await asyncio.sleep(config.settle_s)
    assert load.server.pid is not None
    watch_cpu = CpuWatch([load.server.pid, os.getpid()])  # and children: Valkey, viewers
    before = await _snapshot(load)
    await asyncio.sleep(window_s)
    after = await _snapshot(load)
    step = _step(load, n, before, after, config, watch_cpu.stop(), grow)
    log.info("%4d viewers: served %d, fps p50 %.1f min %.1f, server CPU %.1f%% "
             "(%.2f%% per viewer), encoders %s%s", n, step["viewers_served"],
             step["fps_received"]["p50"], step["fps_received"]["min"], step["cpu_total_pct"],
             step["cpu_per_viewer_pct"], step["encoders"], "" if step["ok"] else "  <- drops")
    return step


def _ladder(steps: tuple[int, ...], cap: int, also: int | None = None) -> list[int]:
    ladder = {s for s in steps if s <= cap} | ({also} if also else set())
    if max(steps) > cap > max(ladder):
        ladder.add(cap)
    return sorted(ladder)


async def _run_ladder(config: VideoConfig, mode: Mode, ladder: list[int], must_reach: int,
                      deadline: float) -> dict[str, Any]:
    """Steps up the ladder until one drops frames (twice in a row: a step that misses is
    measured once more), going on to `must_reach` regardless."""
    out: dict[str, Any] = {"mode": mode, "steps": []}
    first_failing: int | None = None
    stopped = "the last step"
    async with _loaded_node(config, mode, ladder[-1], out) as load:
        for n in ladder:
            if n > must_reach and time.monotonic() > deadline:
                stopped = "the time limit"
                break
            window = config.window_s if n == must_reach else config.ramp_window_s
            step = await _measure(load, n, window, config)
            if not step["ok"]:  # this machine is shared: one noisy window is not a capacity
                log.info("%d viewers: measuring once more", n)
                first = step
                step = await _measure(load, n, window, config)
                step["first_window"] = {k: first[k] for k in (
                    "fps_received", "cpu_total_pct", "others_cpu_pct", "encoded_fps")
                    if k in first}
            out["steps"].append(step)
            if not step["ok"] and first_failing is None:
                first_failing = n
            if first_failing is not None and n >= must_reach:
                stopped = f"frames dropped at {first_failing} viewers"
                break
    held = [s["viewers"] for s in out["steps"]
            if s["ok"] and (first_failing is None or s["viewers"] < first_failing)]
    out["capacity"] = max(held, default=0)
    out["first_failing"] = first_failing
    out["stopped_at"] = stopped
    return out


async def run_video(config: VideoConfig) -> dict[str, Any]:
    """Run the whole scenario; returns the report (see `loadtest.video_report`)."""
    config.validate()
    restrict_ice_hosts(("127.0.0.1",))
    started = time.monotonic()
    deadline = started + config.duration_limit_s
    load_before = os.getloadavg()
    report: dict[str, Any] = {"scenario": "video", "viewers": config.viewers,
                              "config": asdict(config), "per_viewer": None}
    ladder = (_ladder(SHARED_STEPS, config.max_viewers, config.viewers) if config.ramp
              else [config.viewers])
    shared = await _run_ladder(config, "shared", ladder, config.viewers, deadline)
    report["shared"] = shared
    main = next(s for s in shared["steps"] if s["viewers"] == config.viewers)
    for key in ("viewers_served", "encoders", "fps_received", "cpu_total_pct",
                "cpu_per_viewer_pct", "cpu_viewers_pct", "kbps_received_p50",
                "rss_per_viewer_kib", "sample", "ok"):
        report[key] = main[key]
    report["cpu_publisher_only_pct"] = shared["publisher_only_cpu_pct"]
    if config.ramp and time.monotonic() < deadline:
        per_viewer = _ladder(PER_VIEWER_STEPS, config.max_viewers)
        report["per_viewer"] = await _run_ladder(config, "per_viewer", per_viewer, 0, deadline)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["machine"] = machine_info(load_before[0])
    report["date"] = now_iso()
    return report
