"""What processes cost, read from /proc (Linux only): resident memory, CPU time, and how
busy the whole machine was, so a run can say how much of it went to something else."""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["rss_kib", "cpu_seconds", "tree_cpu_seconds", "machine_cpu_seconds", "CpuWatch"]

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """VmRSS of that one process (not its children: the embedded Valkey is a child)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces: split after its closing parenthesis.
        return f.read().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time of these processes and their direct children (a server and its Valkey)."""
    roots = set(pids)
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = _stat(int(name))
        except OSError:  # gone meanwhile
            continue
        if int(name) in roots or int(fields[1]) in roots:
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, all cores summed."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq) / _TICKS, steal / _TICKS


class CpuWatch:
    """CPU used over a window by our processes, and by everything else on the machine."""

    def __init__(self, ours: Iterable[int]) -> None:
        self._ours = list(ours)
        self._start = self._read()

    def _read(self) -> tuple[float, float, float]:
        busy, steal = machine_cpu_seconds()
        return busy, steal, tree_cpu_seconds(self._ours)

    def stop(self) -> dict[str, float]:
        busy, steal, ours = (b - a for a, b in zip(self._start, self._read()))
        return {"ours_cpu_s": round(ours, 2), "others_cpu_s": round(max(0.0, busy - ours), 2),
                "steal_s": round(steal, 2)}
