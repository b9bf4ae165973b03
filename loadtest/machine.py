"""What a report says about the machine it ran on, and when: figures are only comparable
with these next to them (DESIGN.md: a shared, noisy machine)."""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any

__all__ = ["machine_info", "now_iso"]


def machine_info(load_before: float | None = None) -> dict[str, Any]:
    """CPUs, CPU model, Python, platform; with `load_before`, the 1-minute load average
    before the run and now (what else ran meanwhile)."""
    info: dict[str, Any] = {"cpus": os.cpu_count(), "cpu_model": _cpu_model(),
                            "python": platform.python_version(), "platform": platform.platform()}
    if load_before is not None:
        info["loadavg_1m_before"] = round(load_before, 2)
        info["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    return info


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
