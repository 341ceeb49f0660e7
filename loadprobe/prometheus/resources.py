"""The target's CPU and memory during a load-test step, read from Prometheus.

A probe run with ``--prometheus URL`` calls :func:`target_resources` after
each step and stores the result beside the step (``steps.target_cpu_cores``
and ``steps.target_memory_bytes``), so a step's latency can be read against
what the target used to serve it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime

from capplan.errors import ConfigError
from loadprobe.prometheus.auth import auth_from_environment
from loadprobe.prometheus.catalogue import build_selector, format_range
from loadprobe.prometheus.client import PrometheusClient, PrometheusQueryError, Result
from loadprobe.prometheus.matrix import escape_label_value

__all__ = ["target_resources", "selector_text", "instant_value"]

logger = logging.getLogger(__name__)

# A step is short, so a slow or absent Prometheus must not hold up the next step for long.
RESOURCES_TIMEOUT_S = 5.0
RESOURCES_RETRIES = 1


def selector_text(selectors: str | Mapping[str, str] | None) -> str:
    """Return label matchers without braces from a mapping (exact matches) or a matcher string."""
    if selectors is None:
        return ""
    if isinstance(selectors, str):
        text = selectors.strip()
        if "{" in text or "}" in text:
            raise ConfigError(f"selector {selectors!r} must be label matchers without braces, such as job=\"api\"")
        return text
    return ",".join(f'{key}="{escape_label_value(str(value))}"' for key, value in sorted(selectors.items()))


def instant_value(result: Result) -> float | None:
    """Return the single value of an instant-vector result; None when it is empty or NaN."""
    if not result:
        return None
    if len(result) > 1:
        raise ValueError(f"expected one series, got {len(result)}")
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def target_resources(
    prom_url: str,
    start_utc: datetime,
    end_utc: datetime,
    selectors: str | Mapping[str, str] | None,
    *,
    cpu_metric: str = "process_cpu_seconds_total",
    memory_metric: str = "process_resident_memory_bytes",
    client: PrometheusClient | None = None,
) -> dict[str, float | None]:
    """Return the CPU cores and peak memory that the matching targets used from ``start_utc`` to ``end_utc``.

    The result has ``target_cpu_cores`` (the increase of ``cpu_metric`` over
    the step divided by its length, summed over matching instances) and
    ``target_memory_bytes`` (the highest ``memory_metric`` sample in the
    step, summed over instances). A value is None when Prometheus has no
    data for it, for example when the step is shorter than two scrape
    intervals. A query that fails after one retry is logged as a warning and
    gives None too, so that a metrics outage never stops a load test.
    Raises ConfigError for an invalid URL, selector or time span.
    """
    if end_utc <= start_utc:
        raise ConfigError(f"step end {end_utc.isoformat()} is not after its start {start_utc.isoformat()}")
    matchers = selector_text(selectors)
    window_s = max(1, int(round((end_utc - start_utc).total_seconds())))
    queries = {
        "target_cpu_cores": f"sum(rate({build_selector(cpu_metric, matchers)}[{format_range(window_s)}]))",
        "target_memory_bytes": f"sum(max_over_time({build_selector(memory_metric, matchers)}[{format_range(window_s)}]))",
    }
    own_client = client is None
    if client is None:
        client = PrometheusClient(
            prom_url, auth=auth_from_environment(), timeout_s=RESOURCES_TIMEOUT_S, retries=RESOURCES_RETRIES, backoff_s=0.5
        )
    values: dict[str, float | None] = {}
    try:
        for column, query in queries.items():
            try:
                values[column] = instant_value(client.query(query, end_utc))
            except PrometheusQueryError as exc:
                logger.warning("target %s for the step ending %s UTC is unknown: %s", column, end_utc.isoformat(), exc)
                values[column] = None
    finally:
        if own_client:
            client.close()
    if values["target_cpu_cores"] is None and values["target_memory_bytes"] is None:
        logger.info("Prometheus at %s has no CPU or memory data for selector {%s} in this step", client.url, matchers)
    return values
