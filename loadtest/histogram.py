"""Latency histograms: HdrHistogram in microseconds, mergeable across client processes."""

from __future__ import annotations

from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

__all__ = ["LatencyHistogram", "LatencySummary"]

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000  # one hour: nothing we measure is longer
_SIGNIFICANT_DIGITS = 3  # 0.1 % resolution


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "p50": self.p50_ms, "p90": self.p90_ms,
                "p99": self.p99_ms, "max": self.max_ms}


class LatencyHistogram:
    """Record latencies in seconds; read percentiles in milliseconds."""

    def __init__(self) -> None:
        self._hist = HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIGNIFICANT_DIGITS)

    def record(self, seconds: float) -> None:
        self._hist.record_value(min(max(int(seconds * 1e6), _LOWEST_US), _HIGHEST_US))

    def merge(self, other: "LatencyHistogram") -> None:
        self._hist.add(other._hist)

    def encode(self) -> bytes:
        """Compact bytes for sending across processes (`decode` reads them back)."""
        return bytes(self._hist.encode())

    @classmethod
    def decode(cls, data: bytes) -> "LatencyHistogram":
        hist = cls()
        if data:
            hist._hist.decode_and_add(data)
        return hist

    @property
    def count(self) -> int:
        return int(self._hist.get_total_count())

    def percentile_ms(self, percentile: float) -> float:
        if self.count == 0:
            return 0.0
        return round(self._hist.get_value_at_percentile(percentile) / 1000, 3)

    def summary(self) -> LatencySummary:
        if self.count == 0:
            return LatencySummary(0, 0.0, 0.0, 0.0, 0.0)
        return LatencySummary(self.count, self.percentile_ms(50), self.percentile_ms(90),
                              self.percentile_ms(99), round(self._hist.get_max_value() / 1000, 3))
