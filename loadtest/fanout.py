"""The fan-out test: thousands of viewers in one room, a host pinning, a buy storm.

1. Start a `livecart serve` child (embedded Valkey) and set up, through the API, a brand, a
   product, a live stream offering it, and wallets for the storm's buyers
   (`loadtest.flash_sale`'s shop).
2. Open `viewers` WebSocket viewers over `processes` client processes
   (`loadtest.fanout_viewers`). Server RSS before and after, idle: memory per connection.
3. Burst: the host toggles a pin `burst_events` times back to back (REST, one request after
   the other); deliveries per second = burst frames received by all viewers / (last arrival
   - first send).
4. Storm: buys at `buy_rate` per second over HTTP for `duration_s` (`loadtest.race`, its own
   process), stock changing all along; meanwhile the host pins/unpins `pins` times,
   `pin_interval_s` apart. Pin latency per (viewer, pin) = arrival at the viewer - the
   host's send time, both CLOCK_MONOTONIC (one clock for every process on this machine).
5. After the storm and a few ticks: every viewer's stock, pins and seq are compared with
   the truth read from the API and Valkey: stale viewers, gaps, duplicates.
6. Baseline: the livecart server stopped, a bare `websockets.broadcast` server
   (`loadtest.fanout_bare`) gets the same viewer processes and the same burst (the very
   frames the hub sent): its deliveries per second and memory per connection; and the same
   number of pin-sized frames, for the latency floor of these clients on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import os
import platform
import re
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as redis

from checkout.keys import stream_events_key, stream_seq_key
from live.auth import Role, TokenAuthority
from loadtest.fanout_probe import cpu_seconds, rss_kib
from loadtest.fanout_viewers import ViewerFleet, ViewerOptions
from loadtest.flash_sale import BRAND, CREATOR, _cpu_model, _Shop
from loadtest.histogram import LatencyHistogram
from loadtest.http_client import HttpConnection, encode_request, run_requests
from loadtest.race import RaceResult, RaceSpec, run_race
from loadtest.server_process import ServerProcess

__all__ = ["FanoutConfig", "run_fanout", "VIEWERS_PER_PROCESS"]

log = logging.getLogger(__name__)

VIEWERS_PER_PROCESS = 2_500
_TOKEN_TTL_S = 6 * 3600
_HOST_TIMEOUT_S = 30.0
_STORM_LEAD_S = 1.0  # the storm runs this long before the first pin
_STORM_CONCURRENCY = 64
_POLL_S = 0.1
_NO_PROGRESS_S = 10.0  # a burst that delivers nothing for this long is over
_TICK_S = 0.1  # the hub's default ws_tick_ms


@dataclass(frozen=True, slots=True)
class FanoutConfig:
    viewers: int = 10_000
    processes: int | None = None  # None: one per VIEWERS_PER_PROCESS viewers
    duration_s: float = 15.0  # the buy storm
    buy_rate: float = 300.0  # buys per second during the storm
    pins: int = 20  # pin/unpin toggles during the storm
    pin_interval_s: float = 0.5
    burst_events: int = 40  # host events sent back to back for deliveries/s
    within_ms: float = 150.0
    settle_s: float = 2.0  # idle time before reading memory
    connect_timeout_s: float | None = None  # None: 60 s + 20 ms per viewer
    max_reconnects: int = 8  # in a row, per viewer
    server_log_level: str | None = None  # None: the server's default
    baseline: bool = True
    bare_loop: str = "uvloop"
    py_spy: Path | None = None  # profile the livecart server (burst + storm) into this file

    def validate(self) -> None:
        if self.viewers < 1 or self.pins < 1 or self.burst_events < 1:
            raise ValueError("viewers, pins and burst events must be at least 1")
        if self.duration_s < _STORM_LEAD_S + self.pins * self.pin_interval_s + 1:
            raise ValueError(f"the storm ({self.duration_s} s) must outlast the pins: at least "
                             f"{_STORM_LEAD_S + self.pins * self.pin_interval_s + 1:.1f} s")

    @property
    def client_processes(self) -> int:
        return self.processes or max(1, math.ceil(self.viewers / VIEWERS_PER_PROCESS))


class _Host:
    """The stream's creator, toggling one product's pin over REST, one request at a time."""

    def __init__(self, host: str, port: int, token: str, stream: str, product: str) -> None:
        self._conn = HttpConnection(host, port)
        authority = f"{host}:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        self._pin = encode_request(
            "POST", f"/api/v1/streams/{stream}/pins", authority,
            {**auth, "Content-Type": "application/json"}, orjson.dumps({"product_id": product}))
        self._unpin = encode_request("DELETE", f"/api/v1/streams/{stream}/pins/{product}",
                                     authority, auth)
        self.pinned = False

    async def toggle(self) -> str:
        """Pin if unpinned, else unpin; returns "pin" or "unpin" (the event it caused)."""
        op = "unpin" if self.pinned else "pin"
        reply = await self._conn.request(self._unpin if self.pinned else self._pin,
                                         _HOST_TIMEOUT_S)
        if reply.status != 200:
            raise RuntimeError(f"{op} failed: {reply.status} {reply.body[:300]!r}")
        self.pinned = not self.pinned
        return op

    def close(self) -> None:
        self._conn.close()


def _livecart(config: FanoutConfig) -> ServerProcess:
    """`livecart serve` (as `ServerProcess.livecart`), with the hub's caps raised for one IP."""
    secret = secrets.token_hex(32)
    env = {"LIVECART_JWT_SECRET": secret, "LIVECART_WS_PORT": "0",
           "LIVECART_WS_MAX_PER_IP": str(max(20_000, 2 * config.viewers))}
    if config.server_log_level:
        env["LIVECART_LOG_LEVEL"] = config.server_log_level
    server = ServerProcess([sys.executable, "-m", "live.cli", "serve", "--durability",
                            "appendfsync"], name="livecart", env=env)
    server.secret = secret
    return server


def _ws_port(server: ServerProcess) -> int:
    """The hub's port (LIVECART_WS_PORT=0 lets the OS pick), from the banner in its log."""
    match = re.search(r"hub\s+ws://[^:/\s]+:(\d+)/", server.log_tail(400))
    if not match:
        raise RuntimeError(f"no hub port in the server log:\n{server.log_tail(40)}")
    return int(match.group(1))


async def _get_json(host: str, port: int, path: str, token: str) -> Any:
    raw = encode_request("GET", path, f"{host}:{port}", {"Authorization": f"Bearer {token}"})
    reply = (await run_requests(host, port, [raw], concurrency=1))[0]
    if reply.status != 200:
        raise RuntimeError(f"GET {path}: {reply.status} {reply.body[:300]!r}")
    return orjson.loads(reply.body)


async def _truth(shop: _Shop, token: str) -> tuple[dict[str, Any], list[str]]:
    """What every viewer should show: stock per variant of the product, and the pins."""
    stock = await _get_json(shop.host, shop.port, f"/api/v1/products/{shop.product}/stock", token)
    stream = await _get_json(shop.host, shop.port, f"/api/v1/streams/{shop.stream}", token)
    levels = {item["variant"]: int(item["available"]) for item in stock["items"]}
    return {shop.product: levels}, list(stream["pinned"])


async def _wait_burst(fleet: ViewerFleet, timeout_s: float) -> None:
    """Until every viewer still trying has its whole burst, or nothing moves for a while."""
    deadline = time.monotonic() + timeout_s
    last_frames, last_move = -1, time.monotonic()
    while time.monotonic() < deadline:
        answers = await fleet.call_all("burst_status")
        done = sum(a["done"] for a in answers)
        live = sum(a["live"] for a in answers)
        frames = sum(a["frames"] for a in answers)
        if done >= live:
            return
        if frames != last_frames:
            last_frames, last_move = frames, time.monotonic()
        elif time.monotonic() - last_move > _NO_PROGRESS_S:
            log.warning("burst stalled: %d of %d viewers complete", done, live)
            return
        await asyncio.sleep(_POLL_S)
    log.warning("burst not complete within %.0f s", timeout_s)


def _sum(answers: list[dict[str, Any]], key: str) -> int:
    return sum(int(a[key]) for a in answers)


def _merge_counts(answers: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in answers:
        for k, n in a[key].items():
            out[str(k)] = out.get(str(k), 0) + n
    return out


def _type_delta(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, int]:
    b, a = _merge_counts(before, "types"), _merge_counts(after, "types")
    return {k: n - b.get(k, 0) for k, n in sorted(a.items()) if n - b.get(k, 0)}


async def _connect(fleet: ViewerFleet, url: str, hub: bool, timeout_s: float) -> dict[str, Any]:
    started = time.monotonic()
    answers = await fleet.call_all("connect", timeout_s=timeout_s + 60, per_process=[
        {"url": url, "count": count, "first_index": first, "hub": hub, "timeout_s": timeout_s}
        for first, count in fleet.shares])
    status = await fleet.call_all("status")
    return {"ready": _sum(answers, "ready"), "gave_up": _sum(answers, "gave_up"),
            "seconds": round(time.monotonic() - started, 2),
            "failures": _merge_counts(status, "failures"),
            "closes": _merge_counts(status, "closes")}


async def _burst(fleet: ViewerFleet, send: Any, lo: int | None, count: int, pid: int,
                 timeout_s: float) -> dict[str, Any]:
    """Count the burst's frames at the viewers while `send()` makes the server emit them."""
    per = [{"lo": lo, "hi": (lo or 0) + count, "expected": count, "keep": k == 0}
           for k in range(fleet.processes)]
    await fleet.call_all("burst_begin", per_process=per)
    cpu0 = cpu_seconds(pid)
    started = time.monotonic()
    await send()
    sent_s = time.monotonic() - started
    await _wait_burst(fleet, timeout_s)
    cpu = cpu_seconds(pid) - cpu0
    ends = await fleet.call_all("burst_end")
    frames = _sum(ends, "frames")
    last_at = max(a["last_at"] for a in ends)
    elapsed = max(last_at - started, 1e-9) if frames else 0.0
    return {"frames": frames, "expected": count * _sum(ends, "live"),
            "viewers_complete": _sum(ends, "done"), "seconds": round(elapsed, 3),
            "send_seconds": round(sent_s, 3),
            "per_s": round(frames / elapsed, 1) if frames else 0.0,
            "server_cpu_s": round(cpu, 2),
            "server_us_per_delivery": round(cpu / frames * 1e6, 2) if frames else None,
            "kept": ends[0]["kept"]}


async def _latency(fleet: ViewerFleet, sent: dict[int, float], within_s: float) -> dict[str, Any]:
    answers = await fleet.call_all("latency", {"sent": sent, "within_s": within_s},
                                   timeout_s=120)
    hist = LatencyHistogram()
    for a in answers:
        hist.merge(LatencyHistogram.decode(a["histogram"]))
    viewers = fleet.viewers
    within = _merge_counts(answers, "within")
    missed = _merge_counts(answers, "missed")
    pairs = viewers * len(sent)
    summary = hist.summary()
    return {
        "pins": len(sent), "pairs": pairs, "delivered_pairs": summary.count,
        "missed_pairs": sum(missed.values()),
        "viewers_missing_a_pin": _sum(answers, "viewers_missing"),
        "p50_ms": summary.p50_ms, "p90_ms": summary.p90_ms, "p99_ms": summary.p99_ms,
        "max_ms": round(max(a["max_s"] for a in answers) * 1000, 3),
        "reached_within": round(sum(within.values()) / pairs, 5) if pairs else None,
        "worst_pin_reached_within": round(min(within.get(str(s), 0) for s in sent) / viewers, 5),
    }


async def _read_seq(client: redis.Redis, stream: str) -> int:
    return int(await client.get(stream_seq_key(stream)) or 0)


async def _events(client: redis.Redis, stream: str, lo: int, hi: int) -> list[dict[str, Any]]:
    """Logged events lo < seq <= hi."""
    if hi <= lo:
        return []
    entries = await client.xrange(stream_events_key(stream), min=f"{lo + 1}-0", max=f"{hi}-0")
    return [orjson.loads(fields[b"e"]) for _, fields in entries]


@contextlib.asynccontextmanager
async def _py_spy(path: Path | None, pid: int):  # type: ignore[no-untyped-def]
    """`py-spy record` on the server while the block runs (its numbers are then perturbed)."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    proc = subprocess.Popen([str(spy) if spy.exists() else "py-spy", "record", "-o", str(path),
                             "--pid", str(pid), "--rate", "100", "--nonblocking",
                             "--format", "speedscope" if path.suffix == ".json" else "flamegraph"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(1.0)  # attached
        yield
    finally:
        proc.send_signal(2)  # SIGINT: py-spy writes its file and exits
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


async def _hub_part(config: FanoutConfig, fleet: ViewerFleet, report: dict[str, Any]) -> list[str]:
    """Everything against livecart; returns the burst frames (for the baseline)."""
    run_id = f"{int(time.time()):x}{os.getpid():x}"
    storm_buys = max(1, math.ceil(config.buy_rate * config.duration_s))
    connect_timeout = config.connect_timeout_s or 60.0 + 0.02 * config.viewers
    server = _livecart(config)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(server)
        assert server.pid is not None
        pid = server.pid
        ws_port = _ws_port(server)
        valkey_url = server.valkey_url
        if valkey_url is None:
            raise RuntimeError(f"no Valkey config under {server.node_data_dir}")
        valkey = redis.Redis.from_url(valkey_url, socket_timeout=10)
        stack.push_async_callback(valkey.aclose)
        tokens = TokenAuthority(server.secret)
        shop = _Shop(server.host, server.port, tokens, run_id)
        started = time.monotonic()
        try:
            await shop.setup(storm_buys + 1000, storm_buys)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log tail:\n{server.log_tail(40)}") from None
        report["setup_seconds"] = round(time.monotonic() - started, 2)
        brand_token = tokens.mint(Role.BRAND, BRAND, ttl_s=_TOKEN_TTL_S)
        host = _Host(server.host, server.port,
                     tokens.mint(Role.CREATOR, CREATOR, ttl_s=_TOKEN_TTL_S), shop.stream,
                     shop.product)
        stack.callback(host.close)
        log.info("setup done (stream %s); connecting %d viewers", shop.stream, config.viewers)

        # Memory: idle server before and after every viewer is in the room.
        await asyncio.sleep(config.settle_s)
        rss0 = rss_kib(pid)
        url = f"ws://127.0.0.1:{ws_port}/ws/streams/{shop.stream}"
        report["connect"] = await _connect(fleet, url, True, connect_timeout)
        connected = report["connect"]["ready"]
        report["viewers_connected"] = connected
        log.info("%d viewers in the room after %.1f s", connected, report["connect"]["seconds"])
        await asyncio.sleep(config.settle_s)
        rss1 = rss_kib(pid)
        report["server_rss_kib"] = {"before": rss0, "after": rss1}
        report["memory_per_connection_kb"] = round((rss1 - rss0) / max(1, connected), 2)

        async with _py_spy(config.py_spy, pid):
            # Burst: the host's events back to back.
            seq0 = await _read_seq(valkey, shop.stream)

            async def send_burst() -> None:
                for _ in range(config.burst_events):
                    await host.toggle()

            log.info("burst: %d events to %d viewers", config.burst_events, connected)
            burst = await _burst(fleet, send_burst, seq0, config.burst_events, pid,
                                 timeout_s=120 + config.burst_events * connected * 50e-6)
            seq1 = await _read_seq(valkey, shop.stream)
            if seq1 != seq0 + config.burst_events:
                raise RuntimeError(f"the burst made seqs {seq0}..{seq1}, expected "
                                   f"{config.burst_events} events")
            frames = burst.pop("kept")
            report["burst"] = burst
            report["deliveries_per_s"] = burst["per_s"]

            # Storm + pins.
            report["pin_phase"], report["storm"] = await _storm(config, fleet, shop, host,
                                                                valkey, pid, storm_buys)

        # After the storm: a few ticks, everyone back, then compare with the truth.
        await asyncio.sleep(5 * _TICK_S)
        await fleet.call_all("wait_ready", {"timeout_s": connect_timeout},
                             timeout_s=connect_timeout + 30)
        for attempt in range(3):
            truth, pinned = await _truth(shop, brand_token)
            seq = await _read_seq(valkey, shop.stream)
            await asyncio.sleep(5 * _TICK_S)
            checks = await fleet.call_all("check", {"stock": truth, "pinned": pinned, "seq": seq},
                                          timeout_s=120)
            again = await _truth(shop, brand_token)
            if again == (truth, pinned) and await _read_seq(valkey, shop.stream) == seq:
                break
            log.info("the truth moved during the check; checking again")
        report["truth"] = {"stock": truth, "pinned": pinned, "seq": seq}
        report["stale_viewers"] = _sum(checks, "stale")
        report["stale_examples"] = [e for c in checks for e in c["stale_examples"]][:5]
        report["gaps"] = _sum(checks, "gaps")
        report["duplicates"] = _sum(checks, "dups")
        report["viewers_with_gaps"] = _sum(checks, "viewers_with_gaps")
        report["viewers_with_duplicates"] = _sum(checks, "viewers_with_dups")
        report["viewers_behind_seq"] = _sum(checks, "behind_seq")
        report["viewers_pinned_wrong"] = _sum(checks, "pinned_wrong")
        report["viewers_gave_up"] = _sum(checks, "gave_up")
        report["seq_problems"] = [p for c in checks for p in c["problems"]][:10]
        report["hub_frames"] = _merge_counts(checks, "types")
        report["hub_closes"] = _merge_counts(checks, "closes")
        report["hub_connect_failures"] = _merge_counts(checks, "failures")
        report["hub_connects"] = _sum(checks, "connects")
        await fleet.call_all("disconnect", timeout_s=120)
        report["server_log_errors"] = _log_errors(server.log_tail(100_000))
    return frames


def _log_errors(text: str) -> dict[str, Any]:
    """How many ERROR records the server logged, and the first one in full."""
    lines = text.splitlines()
    first: list[str] = []
    count = 0
    for i, line in enumerate(lines):
        if " ERROR " in line or " CRITICAL " in line:
            count += 1
            if not first:
                first = [line]
                for more in lines[i + 1:i + 60]:
                    if re.match(r"\d{4}-\d\d-\d\d ", more):
                        break
                    first.append(more)
    return {"count": count, "first": "\n".join(first)}


async def _storm(config: FanoutConfig, fleet: ViewerFleet, shop: _Shop, host: _Host,
                 valkey: redis.Redis, pid: int,
                 storm_buys: int) -> tuple[dict[str, Any], dict[str, Any]]:
    await fleet.call_all("reset_arrivals")
    before = await fleet.call_all("status")
    seq0 = await _read_seq(valkey, shop.stream)
    sent: list[tuple[float, str]] = []

    async def pins(go_at: float) -> None:
        start = go_at + _STORM_LEAD_S
        for i in range(config.pins):
            wait = start + i * config.pin_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            at = time.monotonic()
            op = await host.toggle()
            sent.append((at, op))

    spec = RaceSpec(shop.host, shop.port, _STORM_CONCURRENCY, config.buy_rate,
                    attempt_timeout_s=10.0, max_attempts=3,
                    duration_limit_s=config.duration_s + 60)
    log.info("storm: %d buys at %.0f/s; %d pins %.2f s apart", storm_buys, config.buy_rate,
             config.pins, config.pin_interval_s)
    cpu0 = cpu_seconds(pid)
    race: RaceResult = await run_race(spec, shop.buy_requests(), processes=1, during=pins)
    cpu = cpu_seconds(pid) - cpu0
    after = await fleet.call_all("status")
    seq1 = await _read_seq(valkey, shop.stream)
    events = await _events(valkey, shop.stream, seq0, seq1)
    ops = [op for _, op in sent]
    if [e["type"] for e in events] != ops:
        raise RuntimeError(f"events during the storm {[e['type'] for e in events]} are not "
                           f"the host's {ops}")
    sent_at = {seq0 + 1 + i: at for i, (at, _) in enumerate(sent)}
    latency = await _latency(fleet, sent_at, config.within_ms / 1000)
    latency["pins_sent"] = len(sent)
    statuses: dict[str, int] = {}
    for s in race.statuses:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    storm = {"buys": storm_buys, "rate_target_per_s": config.buy_rate,
             "throughput_per_s": round(race.throughput_per_s, 1),
             "seconds": round(race.elapsed_s, 2), "statuses": statuses,
             "latency_ms": race.latency().summary().as_dict(),
             "server_cpu_s": round(cpu, 2),
             "frames_to_viewers": _type_delta(before, after)}
    return latency, storm


async def _bare_part(config: FanoutConfig, fleet: ViewerFleet, frames: list[str],
                     report: dict[str, Any]) -> None:
    from websockets.asyncio.client import connect

    connect_timeout = config.connect_timeout_s or 60.0 + 0.02 * config.viewers
    bare = ServerProcess([sys.executable, "-m", "loadtest.fanout_bare", "--loop",
                          config.bare_loop], name="fanout-bare")
    async with bare:
        assert bare.pid is not None
        pid = bare.pid
        await asyncio.sleep(config.settle_s)
        rss0 = rss_kib(pid)
        connected = await _connect(fleet, f"ws://127.0.0.1:{bare.port}/ws/streams/bare", False,
                                   connect_timeout)
        report["bare_connect"] = connected
        await asyncio.sleep(config.settle_s)
        rss1 = rss_kib(pid)
        report["bare_rss_kib"] = {"before": rss0, "after": rss1}
        report["bare_memory_per_connection_kb"] = round(
            (rss1 - rss0) / max(1, connected["ready"]), 2)
        async with connect(f"ws://127.0.0.1:{bare.port}/control", compression=None,
                           proxy=None, max_size=2**24, open_timeout=30) as control:

            async def send(batch: list[str]) -> None:
                await control.send(orjson.dumps({"op": "burst", "frames": batch}).decode())
                await asyncio.wait_for(control.recv(), 300)

            log.info("baseline burst: the hub's %d frames to %d viewers", len(frames),
                     connected["ready"])
            burst = await _burst(fleet, lambda: send(frames), None, len(frames), pid,
                                 timeout_s=120 + len(frames) * config.viewers * 50e-6)
            burst.pop("kept")
            report["bare_burst"] = burst
            report["bare_deliveries_per_s"] = burst["per_s"]
            # The latency floor: pin-sized frames, one at a time, no storm.
            await fleet.call_all("reset_arrivals")
            template = next((orjson.loads(f) for f in frames if '"pin"' in f),
                            {"type": "pin", "product_id": "p", "pinned": ["p"], "seq": 0})
            sent: dict[int, float] = {}
            for i in range(config.pins):
                seq = 10**9 + i
                frame = orjson.dumps({**template, "seq": seq}).decode()
                sent[seq] = time.monotonic()
                await send([frame])
                await asyncio.sleep(config.pin_interval_s / 2)
            await asyncio.sleep(1.0)
            report["bare_pin_latency"] = await _latency(fleet, sent, config.within_ms / 1000)
        await fleet.call_all("disconnect", timeout_s=120)


async def run_fanout(config: FanoutConfig) -> dict[str, Any]:
    """Run the whole scenario; returns the report (see `loadtest.fanout_report`)."""
    config.validate()
    report: dict[str, Any] = {
        "scenario": "fanout", "viewers": config.viewers,
        "client_processes": config.client_processes,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "viewers_connected": 0, "bare_deliveries_per_s": None, "ratio_vs_bare": None,
        "bare_memory_per_connection_kb": None,
    }
    options = ViewerOptions(max_attempts=config.max_reconnects)
    async with ViewerFleet(config.viewers, config.client_processes, options) as fleet:
        frames = await _hub_part(config, fleet, report)
        if config.baseline and frames:
            await _bare_part(config, fleet, frames, report)
    if report["bare_deliveries_per_s"]:
        report["ratio_vs_bare"] = round(report["deliveries_per_s"]
                                        / report["bare_deliveries_per_s"], 3)
    report["pin_latency_ms"] = {k: report["pin_phase"][k] for k in ("p50_ms", "p99_ms", "max_ms")}
    report["reached_within_150ms"] = report["pin_phase"]["reached_within"]
    report["machine"] = {"cpus": os.cpu_count(), "cpu_model": _cpu_model(),
                         "python": platform.python_version(), "platform": platform.platform()}
    report["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return report

