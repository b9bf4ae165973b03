"""The chat test: a big room flooded with chat, against what the chat must never slow down.

1. Start a `livecart serve` child (`loadtest.fanout_node`), set up a brand, a product and a
   live stream (`loadtest.flash_sale`'s shop), and one buyer token per chatter.
2. Open `viewers` anonymous viewers over client processes (the fan-out test's,
   `loadtest.fanout_fleet`, with `loadtest.chat_clients` watching the chat), and in one more
   client process the chatters: the stream's creator (the host) and `chatters` signed-in
   buyers.
3. Idle: the server's CPU with the room connected and nothing happening.
4. Pins, no chat: the host toggles a pin `pins` times over REST, `pin_interval_s` apart;
   latency per (viewer, pin) = arrival - the host's send time (CLOCK_MONOTONIC).
5. State frames: one viewer likes at `likes_per_s`, so each tick sends every viewer a
   `state` frame: the server's CPU per state frame delivered.
6. Flood: the chatters send `chat_rate` messages a second in turn (each at most one a
   second: the server's per-user limit) for `duration_s`. After `warmup_s`: the same pins
   again, `deletions` messages deleted over REST (each must reach every viewer as a
   `chat.deleted` event), `host_messages` messages from the host (staff: never sampled,
   every viewer must get each). Measured: messages accepted and refused (by code), each
   viewer's delivered rate against the per-viewer cap, deliveries a second, send-to-receive
   latency, the server's CPU per chat message delivered.
7. A few ticks later every viewer's pins and seq against the truth: gaps, duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from live.accounts.auth import Role, TokenAuthority
from live.settings import Settings
from loadtest.chat_clients import ChatWorker
from loadtest.fanout_fleet import (ViewerFleet, connect_viewers, merge_counts, pin_latency,
                                   seq_checks, total, type_delta)
from loadtest.fanout_node import (Host, hub_port, log_errors, logged_events, py_spy, read_seq,
                                  start_livecart, truth)
from loadtest.fanout_probe import CpuWatch, cpu_seconds
from loadtest.fanout_viewers import ViewerOptions
from loadtest.flash_sale import BRAND, CREATOR, _Shop
from loadtest.histogram import LatencyHistogram
from loadtest.machine import machine_info, now_iso

__all__ = ["ChatConfig", "run_chat", "cpu_per_delivery", "per_viewer_cap", "VIEWERS_PER_PROCESS"]

log = logging.getLogger(__name__)

VIEWERS_PER_PROCESS = 2_500
_TOKEN_TTL_S = 6 * 3600
_CHATTER_HEADROOM = 1.5  # chatters per message a second: each sends every 1.5 s
_PIN_EVENTS = ("pin", "unpin")
_TICK_S = 0.1


@dataclass(frozen=True, slots=True)
class ChatConfig:
    viewers: int = 2_000
    chat_rate: float = 200.0  # messages a second from the chatters, all together
    chatters: int | None = None  # None: 1.5 per message a second
    processes: int | None = None  # viewer processes; None: one per VIEWERS_PER_PROCESS
    duration_s: float = 15.0  # the flood
    warmup_s: float = 2.0  # of the flood, before pins, deletions and the window start
    pins: int = 10
    pin_interval_s: float = 0.5
    deletions: int = 5
    host_messages: int = 5
    idle_s: float = 3.0
    state_s: float = 5.0
    likes_per_s: float = 15.0  # one socket, under the hub's 20 a second
    within_ms: float = 150.0
    settle_s: float = 1.0
    connect_timeout_s: float | None = None  # None: 60 s + 20 ms per viewer
    max_reconnects: int = 8
    server_log_level: str | None = None
    py_spy: Path | None = None

    @property
    def chatter_count(self) -> int:
        return self.chatters or max(1, math.ceil(self.chat_rate * _CHATTER_HEADROOM))

    @property
    def client_processes(self) -> int:
        return self.processes or max(1, math.ceil(self.viewers / VIEWERS_PER_PROCESS))

    def validate(self) -> None:
        if self.viewers < 1 or self.pins < 1 or self.chat_rate <= 0:
            raise ValueError("viewers, pins and the chat rate must be positive")
        if self.deletions < 0 or self.host_messages < 0:
            raise ValueError("deletions and host messages cannot be negative")
        if self.chatter_count < self.chat_rate:
            raise ValueError(f"{self.chatter_count} chatters cannot send {self.chat_rate:g} "
                             f"messages a second: the server takes one a second per user")
        need = self.warmup_s + self.pins * self.pin_interval_s + 1
        if self.duration_s < need:
            raise ValueError(f"the flood ({self.duration_s} s) must outlast the warm-up and "
                             f"the pins: at least {need:.1f} s")


def per_viewer_cap() -> float:
    """The per-viewer cap the server runs with (LIVECART_CHAT_PER_VIEWER_S, inherited)."""
    return Settings.from_env().chat_per_viewer_s


async def run_chat(config: ChatConfig) -> dict[str, Any]:
    """Run the whole scenario; returns the report (see `loadtest.chat_report`)."""
    config.validate()
    load_before = os.getloadavg()
    report: dict[str, Any] = {
        "scenario": "chat", "viewers": config.viewers, "chatters": config.chatter_count,
        "client_processes": config.client_processes, "viewers_connected": 0,
        "per_viewer_cap": per_viewer_cap(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
    }
    options = ViewerOptions(max_attempts=config.max_reconnects)
    async with (ViewerFleet(config.viewers, config.client_processes, options,
                            ChatWorker) as viewers,
                ViewerFleet(config.chatter_count + 1, 1, options, ChatWorker) as chatters):
        await _run(config, viewers, chatters, report)
    report["machine"] = machine_info(load_before[0])
    report["date"] = now_iso()
    return report


async def _run(config: ChatConfig, viewers: ViewerFleet, chatters: ViewerFleet,
               report: dict[str, Any]) -> None:
    run_id = f"{int(time.time()):x}{os.getpid():x}"
    timeout = config.connect_timeout_s or 60.0 + 0.02 * config.viewers
    server = start_livecart(config.viewers + config.chatter_count + 1, config.server_log_level)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(server)
        assert server.pid is not None
        pid = server.pid
        stack.callback(lambda: report.__setitem__(
            "server_log_errors", log_errors(server.log_tail(100_000))))
        if server.valkey_url is None:
            raise RuntimeError(f"no Valkey config under {server.node_data_dir}")
        valkey = redis.Redis.from_url(server.valkey_url, socket_timeout=10)
        stack.push_async_callback(valkey.aclose)
        tokens = TokenAuthority(server.secret)
        shop = _Shop(server.host, server.port, tokens, run_id)
        try:
            await shop.setup(100, config.chatter_count)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log tail:\n{server.log_tail(40)}") from None
        creator = tokens.mint(Role.CREATOR, CREATOR, ttl_s=_TOKEN_TTL_S)
        host = Host(server.host, server.port, creator, shop.stream, shop.product)
        stack.callback(host.close)
        report["host_errors"] = host.errors
        url = f"ws://127.0.0.1:{hub_port(server)}/ws/streams/{shop.stream}"
        log.info("stream %s; connecting %d viewers and %d chatters", shop.stream,
                 config.viewers, config.chatter_count)
        report["connect"] = await connect_viewers(viewers, url, True, timeout)
        report["viewers_connected"] = report["connect"]["ready"]
        report["chatters_connect"] = await connect_viewers(
            chatters, url, True, timeout, [creator, *shop.buyer_tokens])
        await asyncio.sleep(config.settle_s)

        async with py_spy(config.py_spy, pid):
            report["idle"] = await _idle(config, viewers, pid)
            log.info("pins without chat")
            report["pins_quiet"] = await _pins(config, viewers, host, valkey, shop.stream,
                                               time.monotonic())
            log.info("state frames: likes at %.0f/s for %.0f s", config.likes_per_s,
                     config.state_s)
            report["state_phase"] = await _state_phase(config, viewers, chatters, pid)
            log.info("flood: %.0f messages/s from %d chatters for %.0f s", config.chat_rate,
                     config.chatter_count, config.duration_s)
            await _flood(config, viewers, chatters, shop, host, creator, valkey, pid, report)
        await _check(viewers, shop, tokens.mint(Role.BRAND, BRAND, ttl_s=_TOKEN_TTL_S), valkey,
                     report, timeout)
        report["cpu_per_delivery"] = cpu_per_delivery(report)
        await viewers.call_all("disconnect", timeout_s=120)
        await chatters.call_all("disconnect", timeout_s=120)


def _cpu_phase(pid: int, cpu0: float, watch: CpuWatch, seconds: float) -> dict[str, Any]:
    return {"server_cpu_s": round(cpu_seconds(pid) - cpu0, 3), "seconds": round(seconds, 3),
            "machine": watch.stop()}


async def _idle(config: ChatConfig, viewers: ViewerFleet, pid: int) -> dict[str, Any]:
    """The room connected, nothing happening: the CPU every phase pays anyway."""
    before = await viewers.call_all("status")
    cpu0, watch, started = cpu_seconds(pid), CpuWatch([os.getpid(), pid]), time.monotonic()
    await asyncio.sleep(config.idle_s)
    out = _cpu_phase(pid, cpu0, watch, time.monotonic() - started)
    out["frames_to_viewers"] = type_delta(before, await viewers.call_all("status"))
    return out


async def _pins(config: ChatConfig, viewers: ViewerFleet, host: Host, valkey: redis.Redis,
                stream: str, start_at: float) -> dict[str, Any]:
    """`pins` toggles from `start_at`; the latency of every (viewer, pin) pair. Other
    events (deletions) may interleave: the pins' seqs are read back from the log."""
    await viewers.call_all("reset_arrivals")
    seq0 = await read_seq(valkey, stream)
    sent: list[tuple[float, str]] = []
    for i in range(config.pins):
        wait = start_at + i * config.pin_interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        at = time.monotonic()
        sent.append((at, await host.toggle()))
    await asyncio.sleep(1.0)
    events = await logged_events(valkey, stream, seq0, await read_seq(valkey, stream))
    pins = [e for e in events if e["type"] in _PIN_EVENTS]
    if [e["type"] for e in pins] != [op for _, op in sent]:
        raise RuntimeError(f"pin events {[e['type'] for e in pins]} are not the host's "
                           f"{[op for _, op in sent]}")
    at_seq = {int(e["seq"]): at for e, (at, _) in zip(pins, sent)}
    return await pin_latency(viewers, at_seq, config.within_ms / 1000)


async def _state_phase(config: ChatConfig, viewers: ViewerFleet, chatters: ViewerFleet,
                       pid: int) -> dict[str, Any]:
    """Likes, so every tick sends every viewer a `state` frame: CPU per state frame."""
    before = await viewers.call_all("status")
    cpu0, watch, started = cpu_seconds(pid), CpuWatch([os.getpid(), pid]), time.monotonic()
    await chatters.call_all("send", {"start_at": started, "rate": 0, "host_at": [],
                                     "duration_s": config.state_s,
                                     "likes_per_s": config.likes_per_s})
    sent = (await chatters.call_all("sent", timeout_s=config.state_s + 60))[0]
    await asyncio.sleep(2 * _TICK_S)
    out = _cpu_phase(pid, cpu0, watch, time.monotonic() - started)
    out["frames_to_viewers"] = type_delta(before, await viewers.call_all("status"))
    out["likes"] = sent
    return out


async def _flood(config: ChatConfig, viewers: ViewerFleet, chatters: ViewerFleet, shop: _Shop,
                 host: Host, creator: str, valkey: redis.Redis, pid: int,
                 report: dict[str, Any]) -> None:
    start_at = time.monotonic() + 0.5
    lo, hi = start_at + config.warmup_s, start_at + config.duration_s
    spread = hi - 1 - lo
    host_at = [lo + (j + 0.5) * spread / max(1, config.host_messages)
               for j in range(config.host_messages)]
    delete_at = [lo + (k + 0.75) * spread / max(1, config.deletions)
                 for k in range(config.deletions)]
    await viewers.call_all("chat_window", {"lo": lo, "hi": hi})
    before = await viewers.call_all("status")
    cpu0, watch, measured = cpu_seconds(pid), CpuWatch([os.getpid(), pid]), time.monotonic()
    await chatters.call_all("send", {"start_at": start_at, "rate": config.chat_rate,
                                     "duration_s": config.duration_s, "host_at": host_at,
                                     "likes_per_s": 0})
    pins, deleted = await asyncio.gather(
        _pins(config, viewers, host, valkey, shop.stream, lo),
        _delete(shop, creator, delete_at))
    sent = (await chatters.call_all("sent", timeout_s=config.duration_s + 60))[0]
    await asyncio.sleep(max(0.0, hi - time.monotonic()) + config.settle_s)
    cpu = _cpu_phase(pid, cpu0, watch, time.monotonic() - measured)
    after = await viewers.call_all("status")
    ids = [d["id"] for d in deleted]
    answers = await viewers.call_all("chat_report", {"deleted": ids,
                                                     "hosts": config.host_messages},
                                     timeout_s=120)
    report["pins_flood"] = pins
    report["flood"] = _flood_figures(config, sent, answers, hi - lo, cpu,
                                     type_delta(before, after),
                                     total(after, "chat_messages") - total(before, "chat_messages"))
    report["deletions"] = _coverage(deleted, merge_counts(answers, "deleted_reached"),
                                    total(answers, "live"))
    host_reached = merge_counts(answers, "host_reached")
    report["host_messages"] = _coverage(
        [{"id": str(j), "at": at} for j, at in enumerate(host_at)], host_reached,
        total(answers, "live"))
    report["host_messages"]["latency_ms"] = _merged(answers, "host_latency").summary().as_dict()


async def _delete(shop: _Shop, creator: str, times: list[float]) -> list[dict[str, Any]]:
    """At each time, the newest chatter's message still there, deleted by the host."""
    done: list[dict[str, Any]] = []
    base = f"/api/v1/streams/{shop.stream}/chat"
    for when in times:
        wait = when - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        listing = await shop.one(shop.req("GET", f"{base}?limit=20", None), 200)
        taken = {d["id"] for d in done}
        target = next((m["id"] for m in listing["items"]
                       if str(m.get("text", "")).startswith("c") and m["id"] not in taken), None)
        if target is None:
            raise RuntimeError(f"no chatter's message to delete in {listing!r:.300}")
        started = time.monotonic()
        await shop.one(shop.req("DELETE", f"{base}/messages/{target}", creator), 200, 204)
        done.append({"id": target, "at": started,
                     "rest_ms": round((time.monotonic() - started) * 1000, 1)})
    return done


def _merged(answers: list[dict[str, Any]], key: str) -> LatencyHistogram:
    hist = LatencyHistogram()
    for a in answers:
        hist.merge(LatencyHistogram.decode(a[key]))
    return hist


def _coverage(items: list[dict[str, Any]], reached: dict[str, int],
              live: int) -> dict[str, Any]:
    """How many of the live viewers got each item; the worst item's share."""
    rows = [{**item, "viewers": reached.get(str(item["id"]), 0)} for item in items]
    worst = min((r["viewers"] for r in rows), default=live)
    return {"count": len(rows), "viewers": live, "items": rows,
            "worst_reached": round(worst / live, 5) if live else None,
            "all_reached": bool(live) and worst == live}


def _flood_figures(config: ChatConfig, sent: dict[str, Any], answers: list[dict[str, Any]],
                   window_s: float, cpu: dict[str, Any], frames: dict[str, int],
                   messages: int) -> dict[str, Any]:
    counts = sorted(c for a in answers for c in a["counts"])
    rates = [c / window_s for c in counts]
    accepted = sent["acks"].get("c", 0)
    return {
        "rate_target_per_s": config.chat_rate, "sent": sent["sent"],
        "sender_max_late_s": sent["max_late_s"],
        "accepted": accepted, "accepted_per_s": round(accepted / config.duration_s, 1),
        "accepted_host": sent["acks"].get("h", 0),
        "refused": sent["refused"], "notices": sent["notices"],
        "window_s": round(window_s, 3),
        "per_viewer_per_s": {
            "mean": round(statistics.fmean(rates), 2) if rates else None,
            "min": round(rates[0], 2) if rates else None,
            "p50": round(statistics.median(rates), 2) if rates else None,
            "max": round(rates[-1], 2) if rates else None},
        "deliveries_per_s": round(sum(counts) / window_s, 1),
        "chat_frames_per_s": round(total(answers, "window_frames") / window_s, 1),
        "latency_ms": _merged(answers, "latency").summary().as_dict(),
        "out_of_order": total(answers, "disorder"),
        "viewers_out_of_order": total(answers, "viewers_with_disorder"),
        "messages_delivered": messages, "frames_to_viewers": frames, **cpu,
    }


async def _check(viewers: ViewerFleet, shop: _Shop, brand: str, valkey: redis.Redis,
                 report: dict[str, Any], timeout: float) -> None:
    """Every viewer back and at the stream's seq with the right pins: no gap, no repeat."""
    await asyncio.sleep(5 * _TICK_S)
    await viewers.call_all("wait_ready", {"timeout_s": timeout}, timeout_s=timeout + 30)
    stock, pinned = await truth(shop, brand)
    seq = await read_seq(valkey, shop.stream)
    checks = await viewers.call_all("check", {"stock": stock, "pinned": pinned, "seq": seq},
                                    timeout_s=120)
    report.update(seq_checks(checks))


def cpu_per_delivery(report: dict[str, Any]) -> dict[str, Any]:
    """The server's CPU per chat message and per state frame delivered: as measured, and
    net of what the idle room costs in the same time."""
    idle = report["idle"]
    idle_per_s = idle["server_cpu_s"] / idle["seconds"]
    out: dict[str, Any] = {"idle_cpu_per_s": round(idle_per_s, 4)}
    for name, phase, delivered in (
            ("chat_message", report["flood"], report["flood"]["messages_delivered"]),
            ("chat_frame", report["flood"], report["flood"]["frames_to_viewers"].get("chat", 0)),
            ("state_frame", report["state_phase"],
             report["state_phase"]["frames_to_viewers"].get("state", 0))):
        net = phase["server_cpu_s"] - idle_per_s * phase["seconds"]
        out[name] = {"delivered": delivered,
                     "us": round(phase["server_cpu_s"] / delivered * 1e6, 2) if delivered else None,
                     "net_us": round(net / delivered * 1e6, 2) if delivered else None}
    return out
