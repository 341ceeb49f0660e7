"""Comparing measurements with thresholds: bottlenecks, severity and advice.

A measurement beyond its threshold is a bottleneck; a value equal to the
threshold is not. Its severity is ``critical`` when it is far beyond:

- latency at least twice its threshold,
- an error rate at least five times its threshold (so 5 % for the default 1 %),
- CPU or memory utilisation at 95 % or more (or at the threshold, if that is higher),
- throughput below half of the minimum,

and ``warning`` otherwise. The recommendation reads the other measurements
of the same window, because the fix for high latency depends on whether the
CPU is busy or errors rise with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from loadprobe.analyzer.config import Thresholds
from loadprobe.analyzer.measure import METRIC_UNITS, Measurements

__all__ = ["Bottleneck", "find_bottlenecks", "overall_status", "LATENCY_CRITICAL_FACTOR", "ERROR_CRITICAL_FACTOR"]

LATENCY_CRITICAL_FACTOR = 2.0
ERROR_CRITICAL_FACTOR = 5.0
UTILISATION_CRITICAL = 0.95
THROUGHPUT_CRITICAL_FACTOR = 0.5
_SEVERITY_ORDER = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Bottleneck:
    """One threshold breach: the measurement, how bad it is and what to do."""

    metric: str
    severity: str  # warning | critical
    value: float
    threshold: float
    unit: str
    recommendation: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.1f} %"


def _instances_for_cpu(m: Measurements, target: float) -> int | None:
    """Return the instance count that brings the busiest instance's CPU to ``target``, assuming even load.

    The result is at least one more than now, because callers use it only
    when the CPU is over its threshold.
    """
    if m.instances is None or m.cpu_utilisation is None or m.instances < 1:
        return None
    return max(int(m.instances) + 1, math.ceil(m.instances * m.cpu_utilisation / target))


def _latency_advice(metric: str, m: Measurements, t: Thresholds) -> str:
    label = "p95" if metric == "p95_ms" else "p99"
    if m.cpu_utilisation is not None and m.cpu_utilisation > t.max_cpu_utilisation:
        needed = _instances_for_cpu(m, t.max_cpu_utilisation)
        scale = f"scale out to about {needed} instances" if needed else "add instances or CPU"
        return (
            f"{label} latency rises while the busiest instance uses {_percent(m.cpu_utilisation)} CPU, so the service "
            f"is CPU-bound: {scale}, or profile the busiest handlers"
        )
    if m.error_rate is not None and m.error_rate > t.max_error_rate:
        return (
            f"{label} latency and errors ({_percent(m.error_rate)}) rise together, which points to overload or a "
            "dependency that times out: check queue lengths, connection pools and the latency of downstream calls"
        )
    if metric == "p99_ms" and (m.p95_ms is None or m.p95_ms <= t.p95_ms):
        return (
            "only the tail is slow (p95 is within its threshold): look for garbage-collection pauses, lock "
            "contention, cold caches and unusually large requests"
        )
    cpu = "unknown" if m.cpu_utilisation is None else _percent(m.cpu_utilisation)
    return (
        f"{label} latency is high while CPU is {cpu}, so the time is likely spent waiting: trace a slow request and "
        "check database queries, downstream calls, connection-pool waits and locks"
    )


def _error_advice(m: Measurements, t: Thresholds) -> str:
    overloaded = (m.cpu_utilisation is not None and m.cpu_utilisation > t.max_cpu_utilisation) or (
        m.p95_ms is not None and m.p95_ms > t.p95_ms
    )
    if overloaded:
        return (
            f"{_percent(m.error_rate or 0.0)} of requests fail while latency or CPU is over its threshold, so the "
            "service is likely overloaded: shed or rate-limit load and add capacity"
        )
    return (
        f"{_percent(m.error_rate or 0.0)} of requests fail while latency and CPU are within their thresholds: break "
        "the errors down by status code and route, and check recent deployments and dependencies"
    )


def _cpu_advice(m: Measurements, t: Thresholds) -> str:
    needed = _instances_for_cpu(m, t.max_cpu_utilisation)
    scale = (
        f"run about {needed} instances instead of {int(m.instances or 0)} to bring it under {_percent(t.max_cpu_utilisation)}"
        if needed
        else "add instances or raise the CPU limit"
    )
    return (
        f"the busiest instance uses {_percent(m.cpu_utilisation or 0.0)} of its CPU: {scale}, and compare the load "
        "with the safe load from a stepped load test (capplan capacity)"
    )


def _memory_advice(m: Measurements, t: Thresholds) -> str:
    return (
        f"the largest instance uses {_percent(m.memory_utilisation or 0.0)} of its memory limit: check whether memory "
        "grows over days (collect --standard memory_bytes_by_instance) which would point to a leak, reduce cache "
        "sizes, or raise the limit before the OOM killer stops the process"
    )


def _throughput_advice(m: Measurements, t: Thresholds) -> str:
    return (
        f"throughput is {m.throughput_rps or 0.0:.2f} rps, below the expected minimum of {t.min_throughput_rps:g} rps: "
        "check the load balancer and upstream clients, and that --requests-metric and --selector match this service"
    )


def _severity(metric: str, value: float, t: Thresholds) -> str | None:
    """Return the severity of ``value`` for ``metric``, or None when it is within its threshold."""
    if metric in ("p95_ms", "p99_ms"):
        limit = t.p95_ms if metric == "p95_ms" else t.p99_ms
        if value <= limit:
            return None
        return "critical" if value >= LATENCY_CRITICAL_FACTOR * limit else "warning"
    if metric == "error_rate":
        if value <= t.max_error_rate:
            return None
        return "critical" if value >= min(1.0, ERROR_CRITICAL_FACTOR * t.max_error_rate) else "warning"
    if metric in ("cpu_utilisation", "memory_utilisation"):
        limit = t.max_cpu_utilisation if metric == "cpu_utilisation" else t.max_memory_utilisation
        if value <= limit:
            return None
        return "critical" if value >= max(UTILISATION_CRITICAL, limit) else "warning"
    if metric == "throughput_rps" and t.min_throughput_rps is not None:
        if value >= t.min_throughput_rps:
            return None
        return "critical" if value < THROUGHPUT_CRITICAL_FACTOR * t.min_throughput_rps else "warning"
    return None


def _threshold_of(metric: str, t: Thresholds) -> float:
    return {
        "p95_ms": t.p95_ms,
        "p99_ms": t.p99_ms,
        "error_rate": t.max_error_rate,
        "cpu_utilisation": t.max_cpu_utilisation,
        "memory_utilisation": t.max_memory_utilisation,
        "throughput_rps": t.min_throughput_rps if t.min_throughput_rps is not None else math.nan,
    }[metric]


def find_bottlenecks(m: Measurements, t: Thresholds) -> list[Bottleneck]:
    """Return the bottlenecks of a window, the most severe first."""
    found = []
    values = m.values()
    for metric in ("error_rate", "p95_ms", "p99_ms", "cpu_utilisation", "memory_utilisation", "throughput_rps"):
        value = values[metric]
        if value is None:
            continue
        severity = _severity(metric, value, t)
        if severity is None:
            continue
        if metric in ("p95_ms", "p99_ms"):
            advice = _latency_advice(metric, m, t)
        elif metric == "error_rate":
            advice = _error_advice(m, t)
        elif metric == "cpu_utilisation":
            advice = _cpu_advice(m, t)
        elif metric == "memory_utilisation":
            advice = _memory_advice(m, t)
        else:
            advice = _throughput_advice(m, t)
        found.append(Bottleneck(metric, severity, value, _threshold_of(metric, t), METRIC_UNITS[metric], advice))
    found.sort(key=lambda b: -_SEVERITY_ORDER[b.severity])
    return found


def overall_status(m: Measurements, bottlenecks: list[Bottleneck]) -> str:
    """Return the worst severity, else ``ok``, or ``no_data`` when throughput, p95 and utilisation are all unmeasured."""
    if bottlenecks:
        return max((b.severity for b in bottlenecks), key=lambda s: _SEVERITY_ORDER[s])
    if m.throughput_rps is None and m.p95_ms is None and m.cpu_utilisation is None and m.memory_utilisation is None:
        return "no_data"
    return "ok"
