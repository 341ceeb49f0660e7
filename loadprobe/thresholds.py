"""k6-style pass/fail thresholds: ``p95<500``, ``error_rate<0.01``, ``checkout.p99<1000``.

A threshold names a metric, optionally prefixed by a scenario name, a
comparison and a number. Latency metrics are in milliseconds and count from
the intended send time. Each threshold is checked against every finished step,
total or per scenario; ``error_rate`` is also checked while a step runs.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from capplan.errors import ConfigError
from loadprobe.measurement import ScenarioMeasurement

__all__ = ["Threshold", "parse_threshold", "LATENCY_METRICS", "METRICS"]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
LATENCY_METRICS = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9, "max": 100.0}
METRICS = (*LATENCY_METRICS, "avg", "error_rate")
_PATTERN = re.compile(
    r"^\s*(?:(?P<scenario>[A-Za-z0-9_\-]+)\.)?(?P<metric>p99\.9|p\d+|avg|max|error_rate)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s|%)?\s*$"
)


@dataclass(frozen=True)
class Threshold:
    """One pass condition; ``scenario`` None means all requests together."""

    text: str
    metric: str
    op: str
    value: float
    scenario: str | None = None

    def measure(self, part: ScenarioMeasurement) -> float | None:
        """Return the metric's value on a measurement, or None when it has no requests."""
        if part.requests == 0:
            return None
        if self.metric == "error_rate":
            return part.errors / part.requests
        if self.metric == "avg":
            return part.latency.mean_ms()
        return part.latency.percentile_ms(LATENCY_METRICS[self.metric])

    def breached(self, part: ScenarioMeasurement) -> str | None:
        """Return a sentence describing the breach, or None when the threshold holds."""
        observed = self.measure(part)
        if observed is None or _OPERATORS[self.op](observed, self.value):
            return None
        unit = "" if self.metric == "error_rate" else " ms"
        return f"threshold {self.text!r} failed: {self.metric} was {observed:.4g}{unit}"


def parse_threshold(text: str) -> Threshold:
    """Parse ``[scenario.]metric<op>value``; a latency may carry ms or s, an error rate %."""
    match = _PATTERN.match(text)
    if match is None:
        raise ConfigError(
            f"threshold {text!r} is not of the form [scenario.]metric<op>value, "
            f"with metric one of {', '.join(METRICS)}; for example p95<500 or checkout.error_rate<0.01"
        )
    metric = match["metric"]
    if metric not in METRICS:
        raise ConfigError(f"threshold {text!r}: unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    value = float(match["value"])
    unit = match["unit"]
    if metric == "error_rate":
        if unit in ("ms", "s"):
            raise ConfigError(f"threshold {text!r}: an error rate takes a fraction or a percentage, not {unit}")
        if unit == "%":
            value /= 100.0
    else:
        if unit == "%":
            raise ConfigError(f"threshold {text!r}: a latency takes ms or s, not %")
        if unit == "s":
            value *= 1000.0
    return Threshold(text=text.strip(), metric=metric, op=match["op"], value=value, scenario=match["scenario"])
