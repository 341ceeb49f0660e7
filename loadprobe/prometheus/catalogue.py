"""The standard queries, built from metric names that each service chooses.

Services name their metrics differently, so every query here is built from a
:class:`MetricNames`. The defaults follow the Prometheus naming conventions
and the client libraries' process metrics: ``http_requests_total`` with a
``code`` label, the ``http_request_duration_seconds`` histogram,
``process_cpu_seconds_total``, ``process_resident_memory_bytes`` and ``up``.

Counters are always read through ``rate()``, which treats a drop in the
counter as a restart from zero, so a counter reset never gives a negative
rate. A query that is only a counter selector (``foo_total{job="api"}``) is
wrapped in ``rate(...[window])`` unless the caller asks for raw values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from capplan.errors import ConfigError
from loadprobe.prometheus.matrix import escape_label_value

__all__ = [
    "MetricNames",
    "StandardQuery",
    "STANDARD_QUERIES",
    "standard_query",
    "build_selector",
    "counter_selector_metric",
    "read_counter_through_rate",
    "format_range",
    "describe_catalogue",
]

logger = logging.getLogger(__name__)

# Suffixes of monotonic counters in the Prometheus and OpenMetrics conventions.
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")

_BARE_SELECTOR = re.compile(r"^\s*(?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?P<matchers>\{[^{}]*\})?\s*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class MetricNames:
    """Metric names, labels and the label selector of one service.

    ``selector`` is a list of label matchers without braces, such as
    ``job="api",env="prod"``; it is added to every metric selector.
    ``error_status`` is a regular expression matched against
    ``status_label`` to count failed requests.
    """

    requests_total: str = "http_requests_total"
    duration_histogram: str = "http_request_duration_seconds"
    status_label: str = "code"
    error_status: str = "5.."
    cpu_seconds_total: str = "process_cpu_seconds_total"
    memory_bytes: str = "process_resident_memory_bytes"
    up: str = "up"
    selector: str = ""

    def __post_init__(self) -> None:
        for option, value in (
            ("--requests-metric", self.requests_total),
            ("--duration-metric", self.duration_histogram),
            ("--cpu-metric", self.cpu_seconds_total),
            ("--memory-metric", self.memory_bytes),
            ("--up-metric", self.up),
        ):
            if not _METRIC_NAME.match(value):
                raise ConfigError(f"{option} {value!r} is not a Prometheus metric name; give one such as http_requests_total")
        if not _LABEL_NAME.match(self.status_label):
            raise ConfigError(f"--status-label {self.status_label!r} is not a Prometheus label name; give one such as code")
        if "{" in self.selector or "}" in self.selector:
            raise ConfigError(
                f"--selector {self.selector!r} must be label matchers without braces, such as job=\"api\""
            )


def build_selector(metric: str, selector: str = "", *extra: str) -> str:
    """Return ``metric{matchers}`` with the service selector and any extra matchers."""
    matchers = [part for part in (selector.strip().strip(","), *extra) if part]
    if not matchers:
        return metric
    return f"{metric}{{{','.join(matchers)}}}"


def format_range(seconds: int) -> str:
    """Format a range-vector duration for PromQL, such as ``300s``."""
    return f"{int(seconds)}s"


@dataclass(frozen=True)
class StandardQuery:
    """A named query of the catalogue: its PromQL template, unit and meaning.

    The template has the fields ``{window}`` (a PromQL duration) and the
    metric selectors of :class:`MetricNames`.
    """

    name: str
    unit: str
    description: str
    template: str

    def render(self, names: MetricNames, window_s: int) -> str:
        """Return the PromQL of this query for a service and a rate window in seconds."""
        fields = _selector_fields(names)
        return self.template.format(window=format_range(window_s), **fields)


def _selector_fields(names: MetricNames) -> dict[str, str]:
    error_matcher = f'{names.status_label}=~"{escape_label_value(names.error_status)}"'
    return {
        "requests": build_selector(names.requests_total, names.selector),
        "errors": build_selector(names.requests_total, names.selector, error_matcher),
        "buckets": build_selector(f"{names.duration_histogram}_bucket", names.selector),
        "duration_sum": build_selector(f"{names.duration_histogram}_sum", names.selector),
        "duration_count": build_selector(f"{names.duration_histogram}_count", names.selector),
        "cpu": build_selector(names.cpu_seconds_total, names.selector),
        "memory": build_selector(names.memory_bytes, names.selector),
        "up": build_selector(names.up, names.selector),
    }


def _quantile(q: float) -> str:
    # histogram_quantile interpolates linearly inside a bucket, so the result
    # is an estimate whose error depends on the bucket boundaries.
    return f"1000 * histogram_quantile({q}, sum by (le) (rate({{buckets}}[{{window}}])))"


STANDARD_QUERIES: dict[str, StandardQuery] = {
    query.name: query
    for query in (
        StandardQuery(
            "request_rate", "rps", "requests per second, all instances together",
            "sum(rate({requests}[{window}]))",
        ),
        StandardQuery(
            "error_rate", "fraction", "fraction of requests whose status matches the error pattern",
            "(sum(rate({errors}[{window}])) or vector(0)) / sum(rate({requests}[{window}]))",
        ),
        StandardQuery("latency_p50_ms", "ms", "median latency from the duration histogram", _quantile(0.5)),
        StandardQuery("latency_p95_ms", "ms", "95th percentile latency from the duration histogram", _quantile(0.95)),
        StandardQuery("latency_p99_ms", "ms", "99th percentile latency from the duration histogram", _quantile(0.99)),
        StandardQuery(
            "latency_mean_ms", "ms", "mean latency from the histogram's sum and count",
            "1000 * sum(rate({duration_sum}[{window}])) / sum(rate({duration_count}[{window}]))",
        ),
        StandardQuery(
            "cpu_cores_by_instance", "cores", "CPU cores in use per instance",
            "sum by (instance) (rate({cpu}[{window}]))",
        ),
        StandardQuery(
            "memory_bytes_by_instance", "bytes", "resident memory per instance",
            "sum by (instance) ({memory})",
        ),
        StandardQuery(
            "instance_count", "instances", "instances whose scrape succeeds (up == 1)",
            "sum({up})",
        ),
    )
}


def standard_query(name: str) -> StandardQuery:
    """Return the standard query called ``name``, or raise ConfigError listing the known names."""
    try:
        return STANDARD_QUERIES[name]
    except KeyError:
        known = ", ".join(STANDARD_QUERIES)
        raise ConfigError(f"--standard {name!r} is not a standard query; choose one of {known}") from None


def counter_selector_metric(query: str) -> str | None:
    """Return the metric name when ``query`` is only a selector of a counter, else None.

    A counter is recognised by its name suffix (``_total``, ``_count``,
    ``_sum``, ``_bucket``).
    """
    # NOTE: metric metadata (the TYPE line) is not consulted, because
    # backfilled and remote-written data often lack it. So a counter named
    # without one of these suffixes is not recognised.
    match = _BARE_SELECTOR.match(query)
    if not match:
        return None
    metric = match.group("metric")
    if metric.endswith(COUNTER_SUFFIXES):
        return metric
    return None


def read_counter_through_rate(query: str, window_s: int, raw: bool = False) -> str:
    """Wrap a bare counter selector in ``rate(...[window])``; return other queries unchanged."""
    metric = counter_selector_metric(query)
    if metric is None:
        return query
    if raw:
        logger.warning(
            "storing the raw values of counter %s as requested; they only grow and drop to zero at a restart, "
            "so forecast rate(%s[...]) instead",
            metric,
            metric,
        )
        return query
    wrapped = f"rate({query.strip()}[{format_range(window_s)}])"
    logger.info("%s is a counter; collecting %s in units per second (pass --raw to store the counter itself)", metric, wrapped)
    return wrapped


def describe_catalogue(names: MetricNames, window_s: int) -> list[Mapping[str, str]]:
    """Return each standard query with its rendered PromQL, for listing."""
    return [
        {"name": q.name, "unit": q.unit, "description": q.description, "query": q.render(names, window_s)}
        for q in STANDARD_QUERIES.values()
    ]
