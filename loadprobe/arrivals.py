"""Arrival schedules of an open workload: constant or linearly ramping rates.

With a rate that ramps from ``r0`` to ``r1`` over ``D`` seconds, the expected
number of arrivals by time ``t`` is ``N(t) = r0*t + (r1 - r0)*t**2 / (2*D)``.
Uniform arrivals happen where ``N(t)`` crosses 1, 2, 3, ...; Poisson arrivals
where it crosses the points of a unit-rate Poisson process. Inverting ``N``
gives both from one formula, so a ramp keeps its exact expected count.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

__all__ = ["ARRIVAL_KINDS", "arrival_offsets", "expected_arrivals"]

ARRIVAL_KINDS = ("uniform", "poisson")


def expected_arrivals(rate_start_rps: float, rate_end_rps: float, duration_s: float) -> float:
    """Return the expected number of arrivals of a linear ramp over the whole stage."""
    return (rate_start_rps + rate_end_rps) / 2.0 * duration_s


def _time_of_count(count: float, rate_start_rps: float, rate_end_rps: float, duration_s: float) -> float:
    """Return the time at which the cumulative expected arrivals reach ``count``."""
    if count <= 0:
        return 0.0
    slope = (rate_end_rps - rate_start_rps) / duration_s  # rps per second
    if abs(slope) < 1e-12:
        return count / rate_start_rps
    # Solve slope/2 * t^2 + r0 * t - count = 0 for the positive root, written
    # in the form that stays accurate when slope is small.
    discriminant = rate_start_rps * rate_start_rps + 2.0 * slope * count
    if discriminant < 0:
        return math.inf
    return 2.0 * count / (rate_start_rps + math.sqrt(discriminant))


def arrival_offsets(
    rate_start_rps: float,
    rate_end_rps: float,
    duration_s: float,
    kind: str,
    rng: random.Random,
    phase: float = 0.0,
) -> Iterator[float]:
    """Yield arrival times in seconds from the stage start, up to ``duration_s``.

    ``phase`` in [0, 1) shifts uniform arrivals by that fraction of a gap, so
    several generator processes sharing one rate interleave instead of firing
    together. Poisson arrivals ignore it.
    """
    total = expected_arrivals(rate_start_rps, rate_end_rps, duration_s)
    if total <= 0:
        return
    if kind == "uniform":
        index = 0
        while True:
            count = index + phase
            if count >= total:
                return
            yield _time_of_count(count, rate_start_rps, rate_end_rps, duration_s)
            index += 1
    count = rng.expovariate(1.0)
    while count < total:
        yield _time_of_count(count, rate_start_rps, rate_end_rps, duration_s)
        count += rng.expovariate(1.0)
