"""The fan-out test: thousands of viewers in one room, a host pinning, a buy storm.

1. Start a `livecart serve` child (embedded Valkey) and set up, through the API, a brand, a
   product, a live stream offering it, and wallets for the storm's buyers
   (`loadtest.flash_sale`'s shop).
2. Open `viewers` WebSocket viewers over `processes` client processes
   (`loadtest.fanout_fleet`, `loadtest.fanout_viewers`). Server RSS before and after, idle:
   memory per connection.
3. Burst: the host toggles a pin `burst_events` times back to back (REST, one request after
   the other); deliveries per second = burst frames received by all viewers / (last arrival
   - first send); and the server's CPU time per delivery. Then `pins` toggles
   `pin_interval_s` apart with nothing else going on: the pin latency of the fan-out alone.
4. Storm: buys at `buy_rate` per second over HTTP for `duration_s` (`loadtest.race`, its own
   process), stock changing all along; meanwhile the host pins/unpins `pins` times,
   `pin_interval_s` apart. Pin latency per (viewer, pin) = arrival at the viewer - the
   host's send time, both CLOCK_MONOTONIC (one clock for every process on this machine).
5. After the storm and a few ticks: every viewer's stock, pins and seq are compared with
   the truth read from the API and Valkey: stale viewers, gaps, duplicates.
6. Baseline: the livecart server stopped, a bare `websockets.broadcast` server
   (`loadtest.fanout_bare`) gets the same viewer processes and the same burst (the very
   frames the hub sent): its deliveries per second and memory per connection; the same
   burst framed once and written to each transport, frame by frame and all in one write
   (what cheaper fan-outs could cost); and the same number of pin-sized frames, for the
   latency floor on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as redis

from live.accounts.auth import Role, TokenAuthority
from loadtest.fanout_fleet import (ViewerFleet, connect_viewers, measure_burst, merge_counts,
                                   pin_latency, seq_checks, total, type_delta)
from loadtest.fanout_node import (Host, hub_pid, hub_port, log_errors, logged_events, py_spy,
                                  read_seq, start_livecart, truth)
from loadtest.fanout_probe import CpuWatch, cpu_seconds, rss_kib
from loadtest.fanout_viewers import ViewerOptions
from loadtest.flash_sale import BRAND, CREATOR, _Shop
from loadtest.machine import machine_info, now_iso
from loadtest.race import RaceResult, RaceSpec, run_race
from loadtest.server_process import ServerProcess

__all__ = ["FanoutConfig", "run_fanout", "VIEWERS_PER_PROCESS"]

log = logging.getLogger(__name__)

VIEWERS_PER_PROCESS = 2_500
_TOKEN_TTL_S = 6 * 3600
_STORM_LEAD_S = 1.0  # the storm runs this long before the first pin
_STORM_CONCURRENCY = 64
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


async def _hub_part(config: FanoutConfig, fleet: ViewerFleet,
                    report: dict[str, Any]) -> list[str]:
    """Everything against livecart; returns the burst frames (for the baseline)."""
    run_id = f"{int(time.time()):x}{os.getpid():x}"
    storm_buys = max(1, math.ceil(config.buy_rate * config.duration_s))
    connect_timeout = config.connect_timeout_s or 60.0 + 0.02 * config.viewers
    server = start_livecart(config.viewers, config.server_log_level)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(server)
        assert server.pid is not None
        node = server.pid
        pid = hub_pid(server)  # fan-out's memory and CPU: the hub's process
        report["hub_process"] = "own" if pid != node else "inline"
        stack.callback(lambda: report.__setitem__(
            "server_log_errors", log_errors(server.log_tail(100_000))))
        ws_port = hub_port(server)
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
        host = Host(server.host, server.port,
                    tokens.mint(Role.CREATOR, CREATOR, ttl_s=_TOKEN_TTL_S), shop.stream,
                    shop.product)
        stack.callback(host.close)
        report["host_errors"] = host.errors
        log.info("setup done (stream %s); connecting %d viewers", shop.stream, config.viewers)

        # Memory: idle server before and after every viewer is in the room.
        await asyncio.sleep(config.settle_s)
        rss0 = rss_kib(pid)
        url = f"ws://127.0.0.1:{ws_port}/ws/streams/{shop.stream}"
        report["connect"] = await connect_viewers(fleet, url, True, connect_timeout)
        connected = report["connect"]["ready"]
        report["viewers_connected"] = connected
        log.info("%d viewers in the room after %.1f s", connected, report["connect"]["seconds"])
        await asyncio.sleep(config.settle_s)
        rss1 = rss_kib(pid)
        report["server_rss_kib"] = {"before": rss0, "after": rss1}
        report["memory_per_connection_kb"] = round((rss1 - rss0) / max(1, connected), 2)

        async with py_spy(config.py_spy, pid):
            # Burst: the host's events back to back.
            seq0 = await read_seq(valkey, shop.stream)

            async def send_burst() -> None:
                for _ in range(config.burst_events):
                    await host.toggle()

            log.info("burst: %d events to %d viewers", config.burst_events, connected)
            burst = await measure_burst(fleet, send_burst, seq0, config.burst_events, pid,
                                        timeout_s=120 + config.burst_events * connected * 50e-6)
            seq1 = await read_seq(valkey, shop.stream)
            if seq1 != seq0 + config.burst_events:
                raise RuntimeError(f"the burst made seqs {seq0}..{seq1}, expected "
                                   f"{config.burst_events} events")
            frames = burst.pop("kept")
            report["burst"] = burst
            report["deliveries_per_s"] = burst["per_s"]

            # Pins with nothing else going on: the fan-out alone.
            report["pin_idle"] = await _idle_pins(config, fleet, host, valkey, shop.stream, pid)

            # Storm + pins.
            report["pin_phase"], report["storm"] = await _storm(config, fleet, shop, host,
                                                                valkey, {node, pid}, storm_buys)

        # After the storm: a few ticks, everyone back, then compare with the truth.
        await asyncio.sleep(5 * _TICK_S)
        await fleet.call_all("wait_ready", {"timeout_s": connect_timeout},
                             timeout_s=connect_timeout + 30)
        for _ in range(3):
            stock, pinned = await truth(shop, brand_token)
            seq = await read_seq(valkey, shop.stream)
            await asyncio.sleep(5 * _TICK_S)
            checks = await fleet.call_all("check", {"stock": stock, "pinned": pinned, "seq": seq},
                                          timeout_s=120)
            again = await truth(shop, brand_token)
            if again == (stock, pinned) and await read_seq(valkey, shop.stream) == seq:
                break
            log.info("the truth moved during the check; checking again")
        report["truth"] = {"stock": stock, "pinned": pinned, "seq": seq}
        report["stale_viewers"] = total(checks, "stale")
        report["stale_examples"] = [e for c in checks for e in c["stale_examples"]][:5]
        report.update(seq_checks(checks))
        report["viewers_with_gaps"] = total(checks, "viewers_with_gaps")
        report["viewers_with_duplicates"] = total(checks, "viewers_with_dups")
        report["hub_connect_failures"] = merge_counts(checks, "failures")
        await fleet.call_all("disconnect", timeout_s=120)
    return frames


async def _idle_pins(config: FanoutConfig, fleet: ViewerFleet, host: Host,
                     valkey: redis.Redis, stream: str, pid: int) -> dict[str, Any]:
    await fleet.call_all("reset_arrivals")
    seq0 = await read_seq(valkey, stream)
    sent: dict[int, float] = {}
    watch = CpuWatch([os.getpid(), pid])
    start = time.monotonic()
    for i in range(config.pins):
        wait = start + i * config.pin_interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        at = time.monotonic()
        await host.toggle()
        sent[seq0 + 1 + i] = at
    await asyncio.sleep(1.0)
    if await read_seq(valkey, stream) != seq0 + config.pins:
        raise RuntimeError("something else emitted events during the idle pins")
    cpu = watch.stop()
    latency = await pin_latency(fleet, sent, config.within_ms / 1000)
    latency["cpu"] = cpu
    return latency


async def _storm(config: FanoutConfig, fleet: ViewerFleet, shop: _Shop, host: Host,
                 valkey: redis.Redis, pids: set[int],
                 storm_buys: int) -> tuple[dict[str, Any], dict[str, Any]]:
    await fleet.call_all("reset_arrivals")
    before = await fleet.call_all("status")
    seq0 = await read_seq(valkey, shop.stream)
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

    pinning: list[asyncio.Task[None]] = []

    async def start_pins(go_at: float) -> None:
        # Its own task: `run_race` cancels a side task still running when the buys end, and
        # a pin cancelled mid-request may still have made its event.
        pinning.append(asyncio.create_task(pins(go_at)))

    spec = RaceSpec(shop.host, shop.port, _STORM_CONCURRENCY, config.buy_rate,
                    attempt_timeout_s=10.0, max_attempts=3,
                    duration_limit_s=config.duration_s + 60)
    log.info("storm: %d buys at %.0f/s; %d pins %.2f s apart", storm_buys, config.buy_rate,
             config.pins, config.pin_interval_s)
    cpu0 = sum(cpu_seconds(pid) for pid in pids)  # the node's and its hub's
    try:
        race: RaceResult = await run_race(spec, shop.buy_requests(), processes=1,
                                          during=start_pins)
        storm_over = time.monotonic()
        if pinning:
            await asyncio.wait_for(pinning[0], config.pins * (config.pin_interval_s + 30))
    finally:
        for task in pinning:
            task.cancel()
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
    after = await fleet.call_all("status")
    seq1 = await read_seq(valkey, shop.stream)
    events = await logged_events(valkey, shop.stream, seq0, seq1)
    ops = [op for _, op in sent]
    if [e["type"] for e in events] != ops:
        raise RuntimeError(f"events during the storm {[e['type'] for e in events]} are not "
                           f"the host's {ops}")
    sent_at = {seq0 + 1 + i: at for i, (at, _) in enumerate(sent)}
    latency = await pin_latency(fleet, sent_at, config.within_ms / 1000)
    latency["pins_sent"] = len(sent)
    latency["pins_sent_after_the_storm"] = sum(1 for at, _ in sent if at > storm_over)
    statuses: dict[str, int] = {}
    for s in race.statuses:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    storm = {"buys": storm_buys, "rate_target_per_s": config.buy_rate,
             "throughput_per_s": round(race.throughput_per_s, 1),
             "seconds": round(race.elapsed_s, 2), "statuses": statuses,
             "latency_ms": race.latency().summary().as_dict(),
             "server_cpu_s": round(cpu, 2),
             "frames_to_viewers": type_delta(before, after)}
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
        connected = await connect_viewers(fleet, f"ws://127.0.0.1:{bare.port}/ws/streams/bare",
                                          False, connect_timeout)
        report["bare_connect"] = connected
        await asyncio.sleep(config.settle_s)
        rss1 = rss_kib(pid)
        report["bare_rss_kib"] = {"before": rss0, "after": rss1}
        report["bare_memory_per_connection_kb"] = round(
            (rss1 - rss0) / max(1, connected["ready"]), 2)
        async with connect(f"ws://127.0.0.1:{bare.port}/control", compression=None,
                           proxy=None, max_size=2**24, open_timeout=30) as control:

            async def send(batch: list[str], op: str = "burst") -> None:
                await control.send(orjson.dumps({"op": op, "frames": batch}).decode())
                await asyncio.wait_for(control.recv(), 300)

            log.info("baseline burst: the hub's %d frames to %d viewers", len(frames),
                     connected["ready"])
            limit_s = 120 + len(frames) * config.viewers * 50e-6
            burst = await measure_burst(fleet, lambda: send(frames), None, len(frames), pid,
                                        timeout_s=limit_s)
            burst.pop("kept")
            report["bare_burst"] = burst
            report["bare_deliveries_per_s"] = burst["per_s"]
            raw = await measure_burst(fleet, lambda: send(frames, "burst_raw"), None,
                                      len(frames), pid, timeout_s=limit_s)
            raw.pop("kept")
            report["raw_burst"] = raw
            batched = await measure_burst(fleet, lambda: send(frames, "burst_batched"), None,
                                          len(frames), pid, timeout_s=limit_s)
            batched.pop("kept")
            report["batched_burst"] = batched
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
            report["bare_pin_latency"] = await pin_latency(fleet, sent, config.within_ms / 1000)
        await fleet.call_all("disconnect", timeout_s=120)


async def run_fanout(config: FanoutConfig) -> dict[str, Any]:
    """Run the whole scenario; returns the report (see `loadtest.fanout_report`)."""
    config.validate()
    load_before = os.getloadavg()
    report: dict[str, Any] = {
        "scenario": "fanout", "viewers": config.viewers,
        "client_processes": config.client_processes,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "viewers_connected": 0, "bare_deliveries_per_s": None, "ratio_vs_bare": None,
        "ratio_vs_bare_cpu": None,
        "bare_memory_per_connection_kb": None,
    }
    options = ViewerOptions(max_attempts=config.max_reconnects)
    async with ViewerFleet(config.viewers, config.client_processes, options) as fleet:
        try:
            frames = await _hub_part(config, fleet, report)
        except Exception:
            log.error("the hub part failed; server errors: %s", report.get("server_log_errors"))
            raise
        if config.baseline and frames:
            await _bare_part(config, fleet, frames, report)
    if report["bare_deliveries_per_s"]:
        report["ratio_vs_bare"] = round(report["deliveries_per_s"]
                                        / report["bare_deliveries_per_s"], 3)
        # The same ratio from the servers' own CPU time per delivery: less at the mercy of
        # whatever else this shared machine runs during one of the two bursts.
        hub_us = report["burst"]["server_us_per_delivery"]
        bare_us = report["bare_burst"]["server_us_per_delivery"]
        if hub_us and bare_us:
            report["ratio_vs_bare_cpu"] = round(bare_us / hub_us, 3)
    report["pin_latency_ms"] = {k: report["pin_phase"][k] for k in ("p50_ms", "p99_ms", "max_ms")}
    report["reached_within_150ms"] = report["pin_phase"]["reached_within"]
    report["machine"] = machine_info(load_before[0])
    report["date"] = now_iso()
    return report

