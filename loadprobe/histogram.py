"""Latency histograms: HdrHistogram in microseconds, mergeable across steps.

A histogram is stored as HdrHistogram's compressed base64 encoding, so any
percentile of any step, or of several steps merged, can be computed later from
the store without the raw samples.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

__all__ = ["LatencyHistogram", "LOWEST_US", "HIGHEST_US", "SIGNIFICANT_DIGITS"]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour; larger values are clamped
SIGNIFICANT_DIGITS = 3  # relative error of 0.1 % on every recorded value


class LatencyHistogram:
    """A latency histogram with millisecond accessors."""

    def __init__(self, hdr: HdrHistogram | None = None) -> None:
        self._hdr = hdr or HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record_s(self, seconds: float) -> None:
        micros = int(seconds * 1_000_000)
        self._hdr.record_value(min(max(micros, LOWEST_US), HIGHEST_US))

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def percentile_ms(self, percentile: float) -> float | None:
        """Return the latency at a percentile (0-100) in ms, or None when empty."""
        if self.count == 0:
            return None
        return self._hdr.get_value_at_percentile(percentile) / 1000.0

    def mean_ms(self) -> float | None:
        if self.count == 0:
            return None
        return self._hdr.get_mean_value() / 1000.0

    def max_ms(self) -> float | None:
        if self.count == 0:
            return None
        return self._hdr.get_max_value() / 1000.0

    def merge(self, other: "LatencyHistogram") -> None:
        self._hdr.add(other._hdr)

    def encode(self) -> str:
        return self._hdr.encode().decode("ascii")

    @classmethod
    def decode(cls, text: str) -> "LatencyHistogram":
        return cls(HdrHistogram.decode(text.encode("ascii")))
