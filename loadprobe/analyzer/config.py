"""Analyzer settings: the thresholds and the metrics that utilisation is computed from.

Defaults are the limits that performance teams commonly start from: p95
latency 500 ms, p99 latency 1000 ms, 1 % errors, 80 % CPU and 85 % memory.
A minimum throughput is off unless given, because a useful floor depends on
the service and the time of day.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from capplan.errors import ConfigError
from loadprobe.prometheus.catalogue import MetricNames

__all__ = ["Thresholds", "AnalyzerConfig", "parse_bytes", "WINDOW_PLACEHOLDER"]

DEFAULT_WINDOW_S = 300
# A custom utilisation query may contain this text; it is replaced by the
# analysis window as a PromQL duration, such as 300s.
WINDOW_PLACEHOLDER = "$window"

_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(text: str | float, option: str = "--memory-limit") -> float:
    """Parse a memory size such as ``2GiB``, ``512Mi``, ``1.5GB`` or a bare number of bytes."""
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        match = _SIZE.match(str(text))
        if match is None:
            raise ConfigError(f"{option}: invalid size {text!r}; give bytes with a unit, such as 2GiB or 512MiB")
        value, unit = float(match.group(1)), match.group(2).lower()
    if unit not in _BYTE_UNITS:
        raise ConfigError(f"{option}: unknown unit {unit!r} in {text!r}; use B, KB, MB, GB, KiB, MiB or GiB")
    size = value * _BYTE_UNITS[unit]
    if size <= 0:
        raise ConfigError(f"{option}: {text!r} must be larger than zero")
    return size


@dataclass(frozen=True)
class Thresholds:
    """Limits that make a measurement a bottleneck; fractions for rates and utilisation."""

    p95_ms: float = 500.0
    p99_ms: float = 1000.0
    max_error_rate: float = 0.01
    max_cpu_utilisation: float = 0.80
    max_memory_utilisation: float = 0.85
    min_throughput_rps: float | None = None

    def __post_init__(self) -> None:
        if not self.p95_ms > 0 or not self.p99_ms > 0:
            raise ConfigError(f"latency thresholds must be positive; got p95 {self.p95_ms:g} ms and p99 {self.p99_ms:g} ms")
        for option, value in (
            ("--max-error-rate", self.max_error_rate),
            ("--max-cpu", self.max_cpu_utilisation),
            ("--max-memory", self.max_memory_utilisation),
        ):
            if not 0 < value <= 1:
                raise ConfigError(f"{option} {value:g} is outside (0, 1]; give a fraction such as 0.8 or a percentage such as 80%")
        if self.min_throughput_rps is not None and self.min_throughput_rps < 0:
            raise ConfigError(f"--min-throughput {self.min_throughput_rps:g} rps must not be negative")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AnalyzerConfig:
    """Metric names, the window, and the capacity that utilisation is measured against.

    CPU utilisation is the busiest instance's cores in use divided by
    ``cpu_cores`` (cores available to one instance), or the value of
    ``cpu_query``. Memory utilisation is the largest instance's peak memory
    divided by ``memory_limit_bytes``, or the value of ``memory_query``.
    Without either, the utilisation is not measured and cannot breach.
    """

    names: MetricNames = field(default_factory=MetricNames)
    window_s: int = DEFAULT_WINDOW_S
    cpu_cores: float | None = None
    memory_limit_bytes: float | None = None
    cpu_query: str | None = None
    memory_query: str | None = None

    def __post_init__(self) -> None:
        if self.window_s < 1:
            raise ConfigError(f"--window {self.window_s} s must be at least 1 s; give for example 5m")
        if self.cpu_cores is not None and not self.cpu_cores > 0:
            raise ConfigError(f"--cpu-cores {self.cpu_cores:g} must be positive, such as 2 or 0.5")
        if self.cpu_cores is not None and self.cpu_query:
            raise ConfigError("give --cpu-cores or --cpu-query, not both")
        if self.memory_limit_bytes is not None and self.memory_query:
            raise ConfigError("give --memory-limit or --memory-query, not both")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
