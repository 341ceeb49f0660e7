"""Measuring a live service over one window with instant PromQL queries.

Every measurement is one instant query evaluated at the window's end over a
range equal to the window, so all of them describe the same interval.
Latency percentiles come from the duration histogram through
``histogram_quantile``, which interpolates linearly within a bucket; they
are estimates whose precision depends on the bucket bounds.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from loadprobe.analyzer.config import WINDOW_PLACEHOLDER, AnalyzerConfig
from loadprobe.prometheus.catalogue import STANDARD_QUERIES, build_selector, format_range
from loadprobe.prometheus.client import PrometheusClient

__all__ = ["Measurements", "METRIC_UNITS", "build_queries", "measure"]

logger = logging.getLogger(__name__)

METRIC_UNITS = {
    "throughput_rps": "rps",
    "error_rate": "fraction",
    "p95_ms": "ms",
    "p99_ms": "ms",
    "mean_ms": "ms",
    "cpu_cores": "cores",
    "cpu_utilisation": "fraction",
    "memory_bytes": "bytes",
    "memory_utilisation": "fraction",
    "instances": "instances",
}


@dataclass(frozen=True)
class Measurements:
    """The service over one window; None where Prometheus had no data (or only NaN)."""

    window_start: datetime
    window_end: datetime
    throughput_rps: float | None
    error_rate: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    cpu_cores: float | None
    cpu_utilisation: float | None
    memory_bytes: float | None
    memory_utilisation: float | None
    instances: float | None

    def values(self) -> dict[str, float | None]:
        data = asdict(self)
        return {key: data[key] for key in METRIC_UNITS}


def build_queries(config: AnalyzerConfig) -> dict[str, str]:
    """Return the PromQL of each measurement for ``config``."""
    names = config.names
    window = format_range(config.window_s)
    cpu = build_selector(names.cpu_seconds_total, names.selector)
    memory = build_selector(names.memory_bytes, names.selector)
    queries = {
        "throughput_rps": STANDARD_QUERIES["request_rate"].render(names, config.window_s),
        "error_rate": STANDARD_QUERIES["error_rate"].render(names, config.window_s),
        "p95_ms": STANDARD_QUERIES["latency_p95_ms"].render(names, config.window_s),
        "p99_ms": STANDARD_QUERIES["latency_p99_ms"].render(names, config.window_s),
        "mean_ms": STANDARD_QUERIES["latency_mean_ms"].render(names, config.window_s),
        "cpu_cores": f"sum(rate({cpu}[{window}]))",
        "cpu_busiest_cores": f"max(sum by (instance) (rate({cpu}[{window}])))",
        "memory_bytes": f"max(sum by (instance) (max_over_time({memory}[{window}])))",
        "instances": STANDARD_QUERIES["instance_count"].render(names, config.window_s),
    }
    if config.cpu_query:
        queries["cpu_utilisation"] = config.cpu_query.replace(WINDOW_PLACEHOLDER, window)
    if config.memory_query:
        queries["memory_utilisation"] = config.memory_query.replace(WINDOW_PLACEHOLDER, window)
    return queries


def _largest_value(result: list[Any]) -> float | None:
    """Return the largest non-NaN value of an instant-vector result, or the value of a scalar result."""
    if not result:
        return None
    if not isinstance(result[0], dict):
        # A scalar result is the pair [timestamp, "value"] itself.
        texts = [result[1]]
    else:
        texts = [item["value"][1] for item in result]
    values = [float(text) for text in texts if not math.isnan(float(text))]
    return max(values) if values else None


def measure(client: PrometheusClient, config: AnalyzerConfig, window_end: datetime) -> Measurements:
    """Query every measurement for the window that ends at ``window_end`` (naive UTC)."""
    queries = build_queries(config)
    raw = {key: _largest_value(client.query(query, window_end)) for key, query in queries.items()}

    cpu_utilisation = raw.get("cpu_utilisation")
    if "cpu_utilisation" not in queries and config.cpu_cores and raw["cpu_busiest_cores"] is not None:
        cpu_utilisation = raw["cpu_busiest_cores"] / config.cpu_cores
    memory_utilisation = raw.get("memory_utilisation")
    if "memory_utilisation" not in queries and config.memory_limit_bytes and raw["memory_bytes"] is not None:
        memory_utilisation = raw["memory_bytes"] / config.memory_limit_bytes

    measurements = Measurements(
        window_start=window_end - timedelta(seconds=config.window_s),
        window_end=window_end,
        throughput_rps=raw["throughput_rps"],
        error_rate=raw["error_rate"],
        p95_ms=raw["p95_ms"],
        p99_ms=raw["p99_ms"],
        mean_ms=raw["mean_ms"],
        cpu_cores=raw["cpu_cores"],
        cpu_utilisation=cpu_utilisation,
        memory_bytes=raw["memory_bytes"],
        memory_utilisation=memory_utilisation,
        instances=raw["instances"],
    )
    if measurements.throughput_rps is None:
        logger.warning(
            "no request rate in the window ending %s UTC: %s has no data there; check --requests-metric and --selector",
            window_end.isoformat(),
            config.names.requests_total,
        )
    return measurements
