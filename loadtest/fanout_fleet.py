"""The parent's side of the viewers: `ViewerFleet` spawns the client processes
(`loadtest.fanout_viewers`) and sends every one the same command; the functions below turn
their answers into measurements (connected, burst deliveries, pin latency)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import time
from typing import Any

from loadtest.child_procs import answer, stop_children
from loadtest.fanout_probe import CpuWatch, cpu_seconds
from loadtest.fanout_viewers import ViewerOptions, Worker, child_main
from loadtest.histogram import LatencyHistogram

__all__ = ["ViewerFleet", "connect_viewers", "measure_burst", "pin_latency", "seq_checks",
           "total", "merge_counts", "type_delta"]

log = logging.getLogger(__name__)

_POLL_S = 0.1
_NO_PROGRESS_S = 10.0  # a burst that delivers nothing for this long is over


class ViewerFleet:
    """Client processes holding the viewers; `async with` starts them, exit stops them."""

    def __init__(self, viewers: int, processes: int, options: ViewerOptions | None = None,
                 worker: type[Worker] = Worker) -> None:
        if viewers < 1 or processes < 1:
            raise ValueError("viewers and processes must be at least 1")
        self.viewers = viewers
        self.processes = min(processes, viewers)
        self.options = options or ViewerOptions()
        self.worker = worker  # the client processes' command loop (its commands)
        self._children: list[tuple[multiprocessing.process.BaseProcess,
                                   multiprocessing.connection.Connection]] = []

    @property
    def shares(self) -> list[tuple[int, int]]:
        """(first index, count) of each process's viewers."""
        base, extra = divmod(self.viewers, self.processes)
        out, first = [], 0
        for k in range(self.processes):
            count = base + (1 if k < extra else 0)
            out.append((first, count))
            first += count
        return out

    async def __aenter__(self) -> "ViewerFleet":
        ctx = multiprocessing.get_context("spawn")
        try:
            for _ in range(self.processes):
                ours, theirs = ctx.Pipe()
                proc = ctx.Process(target=child_main, args=(theirs, self.options, self.worker),
                                   name="loadtest-fanout-viewers", daemon=True)
                proc.start()
                theirs.close()
                self._children.append((proc, ours))
            await self.call_all("status", timeout_s=60)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        children, self._children = self._children, []
        await stop_children(children, 15)

    async def call_all(self, op: str, args: dict[str, Any] | None = None, *,
                       timeout_s: float = 30.0, per_process: list[dict[str, Any]] | None = None
                       ) -> list[Any]:
        """Send the command to every process (the same args, or `per_process[k]`)."""
        for k, (_, pipe) in enumerate(self._children):
            pipe.send((op, per_process[k] if per_process is not None else (args or {})))
        return list(await asyncio.gather(*[answer(pipe, timeout_s)
                                           for _, pipe in self._children]))


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


def total(answers: list[dict[str, Any]], key: str) -> int:
    return sum(int(a[key]) for a in answers)


def merge_counts(answers: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in answers:
        for k, n in a[key].items():
            out[str(k)] = out.get(str(k), 0) + n
    return out


def seq_checks(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """What every viewer process's `check` says about the room's events, summed: the
    report's gaps, repeats, stale or wrong pins, viewers that gave up, frames and closes."""
    return {"gaps": total(checks, "gaps"), "duplicates": total(checks, "dups"),
            "viewers_behind_seq": total(checks, "behind_seq"),
            "viewers_behind_auction": total(checks, "auction_bids_behind"),
            "viewers_pinned_wrong": total(checks, "pinned_wrong"),
            "viewers_gave_up": total(checks, "gave_up"),
            "seq_problems": [p for c in checks for p in c["problems"]][:10],
            "hub_frames": merge_counts(checks, "types"),
            "hub_closes": merge_counts(checks, "closes"),
            "hub_connects": total(checks, "connects")}


def type_delta(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, int]:
    b, a = merge_counts(before, "types"), merge_counts(after, "types")
    return {k: n - b.get(k, 0) for k, n in sorted(a.items()) if n - b.get(k, 0)}


async def connect_viewers(fleet: ViewerFleet, url: str, hub: bool, timeout_s: float,
                          tokens: list[str] | None = None) -> dict[str, Any]:
    """Open the fleet's viewers (with `tokens`, one per viewer: signed in)."""
    started = time.monotonic()
    answers = await fleet.call_all("connect", timeout_s=timeout_s + 60, per_process=[
        {"url": url, "count": count, "first_index": first, "hub": hub, "timeout_s": timeout_s,
         "tokens": None if tokens is None else tokens[first:first + count]}
        for first, count in fleet.shares])
    status = await fleet.call_all("status")
    return {"ready": total(answers, "ready"), "gave_up": total(answers, "gave_up"),
            "seconds": round(time.monotonic() - started, 2),
            "failures": merge_counts(status, "failures"),
            "closes": merge_counts(status, "closes")}


async def measure_burst(fleet: ViewerFleet, send: Any, lo: int | None, count: int, pid: int,
                        timeout_s: float) -> dict[str, Any]:
    """Count the burst's frames at the viewers while `send()` makes the server emit them."""
    per = [{"lo": lo, "hi": (lo or 0) + count, "expected": count, "keep": k == 0}
           for k in range(fleet.processes)]
    await fleet.call_all("burst_begin", per_process=per)
    cpu0 = cpu_seconds(pid)
    watch = CpuWatch([os.getpid(), pid])  # and their children: viewers, Valkey
    started = time.monotonic()
    await send()
    sent_s = time.monotonic() - started
    await _wait_burst(fleet, timeout_s)
    cpu = cpu_seconds(pid) - cpu0
    machine = watch.stop()
    ends = await fleet.call_all("burst_end")
    frames = total(ends, "frames")
    last_at = max(a["last_at"] for a in ends)
    elapsed = max(last_at - started, 1e-9) if frames else 0.0
    return {"frames": frames, "expected": count * total(ends, "live"),
            "viewers_complete": total(ends, "done"), "seconds": round(elapsed, 3),
            "send_seconds": round(sent_s, 3),
            "per_s": round(frames / elapsed, 1) if frames else 0.0,
            "server_cpu_s": round(cpu, 2),
            "server_us_per_delivery": round(cpu / frames * 1e6, 2) if frames else None,
            # CPU this machine spent meanwhile: on this test's processes (server, Valkey,
            # viewers, this one) and on anything else (a noisy neighbour shows here)
            "cpu": machine,
            "kept": ends[0]["kept"]}


async def pin_latency(fleet: ViewerFleet, sent: dict[int, float],
                      within_s: float) -> dict[str, Any]:
    answers = await fleet.call_all("latency", {"sent": sent, "within_s": within_s},
                                   timeout_s=120)
    hist = LatencyHistogram()
    for a in answers:
        hist.merge(LatencyHistogram.decode(a["histogram"]))
    viewers = fleet.viewers
    within = merge_counts(answers, "within")
    missed = merge_counts(answers, "missed")
    pairs = viewers * len(sent)
    summary = hist.summary()
    return {
        "pins": len(sent), "pairs": pairs, "delivered_pairs": summary.count,
        "missed_pairs": sum(missed.values()),
        "viewers_missing_a_pin": total(answers, "viewers_missing"),
        "p50_ms": summary.p50_ms, "p90_ms": summary.p90_ms, "p99_ms": summary.p99_ms,
        "max_ms": round(max(a["max_s"] for a in answers) * 1000, 3),
        "reached_within": round(sum(within.values()) / pairs, 5) if pairs else None,
        "worst_pin_reached_within": round(min(within.get(str(s), 0) for s in sent) / viewers, 5),
    }
