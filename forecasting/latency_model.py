"""Latency against offered rate: a single-queue model fitted to stepped load tests.

Each latency statistic ``s`` (the mean or a percentile) is modelled as::

    L_s(r) = a_s + b_s * u / (1 - u),    u = r / capacity_rps

``a_s`` is the latency without load (service time plus network), and
``b_s * u / (1 - u)`` the queueing delay, which grows without bound as the
rate approaches the capacity. For one server this form is exact for the mean
of M/G/1 (Pollaczek-Khinchine: b = S (1 + cv^2) / 2) and for every
percentile of M/M/1. For a pool of c servers it is an approximation, and a
pool shows almost no queueing until close to its limit, so its capacity is
often not predictable from light load (see :attr:`LatencyModel.has_signal`).

The mean has one more constraint when ``single_server`` is set (the
default): by Pollaczek-Khinchine its queueing coefficient is
``S (1 + cv^2) / 2`` with ``S = 1000 / capacity_rps`` ms, so it is at least
``500 / capacity_rps`` ms whatever the service-time distribution. Without
this bound the capacity trades off freely against the queueing coefficient
when the data stop at moderate load. With it, a CPU-bound server observed up
to 60 % of its capacity was located within 6 % in the run recorded in
docs/benchmarks.md. A pool of several
servers queues less than this bound at moderate load, so the bound can only
push its fitted capacity upward there; pools show too little queueing below
their limit to pass :attr:`LatencyModel.has_signal` anyway.

All statistics share one capacity. Given the capacity the model is linear in
``a`` and ``b``, so the fit scans the capacity on a log grid above the
highest fitted rate, solves ``a`` and ``b`` in closed form (non-negative,
minimising relative error) and refines the best grid point. The loss is
Huber's on the relative error, by reweighted least squares, because a step
disturbed by another process on the machine (a stall of a few ms) would
otherwise move the capacity more than all the other steps together.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from capplan.errors import ConfigError, InputDataError

__all__ = [
    "MIN_RATES",
    "MIN_QUEUE_GROWTH",
    "StatisticFit",
    "LatencyModel",
    "fit_latency_model",
    "statistic_name",
]

logger = logging.getLogger(__name__)

MIN_RATES = 4                 # distinct rates needed: three parameters per statistic plus one to judge the fit
MIN_QUEUE_GROWTH = 0.10       # queueing delay at the top fitted rate, as a fraction of the no-load latency
MIN_MEAN_QUEUE_FACTOR = 0.5   # Pollaczek-Khinchine: mean queueing coefficient >= S / 2, with S = 1 / capacity
CAPACITY_GRID_SPAN = 50.0     # the capacity is searched up to this multiple of the highest fitted rate
CAPACITY_GRID_POINTS = 240
_EDGE_FRACTION = 0.9          # a capacity in the top 10 % of the log grid means latency never bent
HUBER_RELATIVE_ERROR = 0.05   # relative errors beyond this count linearly, so one disturbed step cannot steer the fit
_REWEIGHTS = 3                # iteratively reweighted least-squares passes per capacity


@dataclass(frozen=True)
class StatisticFit:
    """The fitted no-load latency and queueing coefficient of one statistic, in ms."""

    no_load_ms: float
    queue_ms: float


@dataclass(frozen=True)
class LatencyModel:
    """A fitted latency-versus-rate model.

    ``statistics`` maps ``mean`` and ``pNN`` names to their fits.
    ``max_rate_rps`` is the highest fitted rate and ``queue_growth`` the
    queueing delay of the primary statistic there, as a fraction of its
    no-load latency.
    """

    capacity_rps: float
    statistics: dict[str, StatisticFit]
    primary: str
    max_rate_rps: float
    rates: int
    relative_rmse: float
    queue_growth: float
    at_grid_edge: bool

    @property
    def has_signal(self) -> bool:
        """True when latency bent upward within the data enough to locate the capacity."""
        return self.queue_growth >= MIN_QUEUE_GROWTH and not self.at_grid_edge

    def signal_note(self) -> str | None:
        if self.has_signal:
            return None
        return (
            f"latency stayed nearly flat up to {self.max_rate_rps:.4g} rps (queueing delay "
            f"{self.queue_growth:.0%} of the no-load {self.primary}, less than {MIN_QUEUE_GROWTH:.0%}); "
            "a hard limit such as a rate limiter or a large worker pool gives no signal below it, "
            "so the queueing model cannot predict the capacity from these steps"
        )

    def predict_ms(self, statistic: str, rate_rps: float) -> float | None:
        """Return the predicted latency in ms at ``rate_rps``, or None at or beyond the capacity."""
        fit = self._statistic(statistic)
        if rate_rps < 0:
            raise ConfigError(f"rate {rate_rps:g} rps is negative; give a rate of 0 or more")
        if rate_rps >= self.capacity_rps:
            return None
        u = rate_rps / self.capacity_rps
        return fit.no_load_ms + fit.queue_ms * u / (1.0 - u)

    def rate_for_latency(self, statistic: str, limit_ms: float) -> float | None:
        """Return the highest rate whose predicted latency is at most ``limit_ms``.

        Returns 0.0 when even an idle instance exceeds the limit, and None when
        the statistic shows no queueing, so the rate is unknown.
        """
        fit = self._statistic(statistic)
        if limit_ms <= fit.no_load_ms:
            return 0.0
        if fit.queue_ms <= 0:
            return None
        x = (limit_ms - fit.no_load_ms) / fit.queue_ms
        return self.capacity_rps * x / (1.0 + x)

    def knee_rps(self, statistic: str | None = None) -> float:
        """Return the rate where queueing delay equals the no-load latency, so latency has doubled."""
        fit = self._statistic(statistic or self.primary)
        if fit.queue_ms <= 0:
            return self.capacity_rps
        return self.capacity_rps * fit.no_load_ms / (fit.no_load_ms + fit.queue_ms)

    def as_dict(self) -> dict[str, Any]:
        return {
            "capacity_rps": self.capacity_rps,
            "knee_rps": self.knee_rps(),
            "primary": self.primary,
            "no_load_ms": {name: fit.no_load_ms for name, fit in self.statistics.items()},
            "queue_ms": {name: fit.queue_ms for name, fit in self.statistics.items()},
            "max_rate_rps": self.max_rate_rps,
            "rates": self.rates,
            "relative_rmse": self.relative_rmse,
            "queue_growth": self.queue_growth,
            "has_signal": self.has_signal,
        }

    def _statistic(self, statistic: str) -> StatisticFit:
        try:
            return self.statistics[statistic]
        except KeyError:
            raise ConfigError(
                f"latency statistic {statistic!r} was not fitted; fitted: {', '.join(sorted(self.statistics))}"
            ) from None


def statistic_name(percentile: float) -> str:
    """Return the statistic name of a percentile: 95 -> ``p95``, 99.9 -> ``p99.9``."""
    if not 0 < percentile < 100:
        raise ConfigError(f"percentile {percentile:g} is outside (0, 100); give for example 95")
    return f"p{percentile:g}"


def fit_latency_model(
    rates_rps: np.ndarray | list[float],
    latencies_ms: Mapping[str, np.ndarray | list[float]],
    primary: str = "mean",
    single_server: bool = True,
) -> LatencyModel:
    """Fit the queueing model to latency statistics measured at several rates.

    ``latencies_ms`` maps statistic names (``mean``, ``p95``...) to arrays
    aligned with ``rates_rps``; NaN marks a missing value. ``primary`` is the
    statistic whose queueing growth decides whether the capacity has a
    signal. ``single_server`` bounds the mean's queueing coefficient from
    below (see the module docstring). Raises InputDataError with fewer than MIN_RATES distinct rates.
    """
    rates = np.asarray(rates_rps, dtype=float)
    if primary not in latencies_ms:
        raise ConfigError(f"primary statistic {primary!r} is not among {', '.join(latencies_ms)}")
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, values in latencies_ms.items():
        y = np.asarray(values, dtype=float)
        if y.shape != rates.shape:
            raise InputDataError(f"latency statistic {name!r} has {y.size} values for {rates.size} rates")
        keep = np.isfinite(y) & (y > 0) & np.isfinite(rates) & (rates > 0)
        if keep.sum() >= MIN_RATES:
            series[name] = (rates[keep], y[keep])
    if primary not in series:
        distinct = len(np.unique(rates[np.isfinite(rates) & (rates > 0)]))
        raise InputDataError(
            f"the latency model needs at least {MIN_RATES} rates with a measured {primary} latency, got {distinct}; "
            "run more steps below the limit"
        )

    top = max(float(r.max()) for r, _ in series.values())
    grid = top * np.exp(np.linspace(math.log(1.0005), math.log(CAPACITY_GRID_SPAN), CAPACITY_GRID_POINTS))
    losses = np.array([_total_loss(capacity, series, single_server)[0] for capacity in grid])
    best_index = int(np.argmin(losses))
    low = grid[max(best_index - 1, 0)]
    high = grid[min(best_index + 1, len(grid) - 1)]
    refined = optimize.minimize_scalar(
        lambda log_c: _total_loss(math.exp(log_c), series, single_server)[0],
        bounds=(math.log(low), math.log(high)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    capacity = math.exp(float(refined.x)) if refined.fun <= losses[best_index] else float(grid[best_index])
    loss, fits = _total_loss(capacity, series, single_server)
    points = sum(len(r) for r, _ in series.values())

    primary_fit = fits[primary]
    u_top = top / capacity
    growth = primary_fit.queue_ms * u_top / (1.0 - u_top) / primary_fit.no_load_ms if primary_fit.no_load_ms > 0 else math.inf
    model = LatencyModel(
        capacity_rps=capacity,
        statistics=fits,
        primary=primary,
        max_rate_rps=top,
        rates=len(np.unique(series[primary][0])),
        relative_rmse=math.sqrt(loss / points),
        queue_growth=growth,
        at_grid_edge=best_index >= _EDGE_FRACTION * (len(grid) - 1),
    )
    logger.debug("latency model: capacity %.4g rps, queue growth %.3f, relative RMSE %.3f",
                 capacity, growth, model.relative_rmse)
    return model


def _total_loss(
    capacity: float, series: Mapping[str, tuple[np.ndarray, np.ndarray]], single_server: bool
) -> tuple[float, dict[str, StatisticFit]]:
    total = 0.0
    fits: dict[str, StatisticFit] = {}
    for name, (rates, y) in series.items():
        u = rates / capacity
        x = u / (1.0 - u)
        min_queue_ms = MIN_MEAN_QUEUE_FACTOR * 1000.0 / capacity if (single_server and name == "mean") else 0.0
        weights = np.ones_like(y)
        for _ in range(_REWEIGHTS):
            a, b = _bounded_line(x, y, min_queue_ms, weights)
            relative = np.abs((a + b * x - y) / y)
            weights = np.minimum(1.0, HUBER_RELATIVE_ERROR / np.maximum(relative, 1e-12))
        total += float(np.sum(_huber(relative)))
        fits[name] = StatisticFit(no_load_ms=a, queue_ms=b)
    return total, fits


def _huber(relative: np.ndarray) -> np.ndarray:
    c = HUBER_RELATIVE_ERROR
    return np.where(relative <= c, relative**2, 2 * c * relative - c * c)


def _bounded_line(x: np.ndarray, y: np.ndarray, min_b: float, weights: np.ndarray) -> tuple[float, float]:
    """Return (a, b) with a >= 0 and b >= min_b minimising the weighted relative squared error of a + b x against y."""
    w = weights / (y * y)
    sw, sx, sy = w.sum(), (w * x).sum(), (w * y).sum()
    sxx, sxy = (w * x * x).sum(), (w * x * y).sum()
    det = sw * sxx - sx * sx
    if det > 0:
        a = (sxx * sy - sx * sxy) / det
        b = (sw * sxy - sx * sy) / det
        if a >= 0 and b >= min_b:
            return float(a), float(b)
    # The optimum lies on a bound: the better of b = min_b (best a) and a = 0 (best b).
    a_on_b_bound = max(float((sy - min_b * sx) / sw), 0.0)
    b_on_a_bound = max(float(sxy / sxx) if sxx > 0 else min_b, min_b)
    candidates = [(a_on_b_bound, min_b), (0.0, b_on_a_bound)]
    errors = [float(np.sum(w * (a + b * x - y) ** 2)) for a, b in candidates]
    return candidates[int(np.argmin(errors))]
