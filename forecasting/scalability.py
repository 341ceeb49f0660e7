"""The Universal Scalability Law (USL): throughput as a function of concurrency.

Gunther's USL models the throughput ``X`` at concurrency ``N`` as::

    X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

``lambda`` is the throughput of one unit of concurrency without interference,
``sigma`` the contention (the serial fraction, as in Amdahl's law) and
``kappa`` the coherency cost (pairwise crosstalk, which makes throughput fall
past a peak). Both coefficients are bounded to be non-negative and ``sigma``
to at most 1, so a fit cannot report a physically impossible speed-up.

The fit is unweighted non-linear least squares on ``X``, the same objective
as the published fits it is tested against, with intervals from the
Jacobian at the solution (Student t, n - 3 degrees of freedom).

:func:`fit_usl` needs :data:`MIN_LEVELS` distinct concurrency levels; with
fewer it raises, and callers fall back to a measured breaking point.
:func:`fit_fleet_scaling` fits the same law to throughput measured at several
fleet sizes, so a plan can use a scaling efficiency instead of assuming that
N instances carry N times the load of one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from capplan.errors import InputDataError

__all__ = [
    "MIN_LEVELS",
    "MIN_FLEET_LEVELS",
    "MIN_CURVATURE",
    "UslParameters",
    "UslFit",
    "fit_usl",
    "fit_fleet_scaling",
    "scaling_efficiency",
    "serving_instances_for",
    "read_fleet_scaling_csv",
]

logger = logging.getLogger(__name__)

MIN_LEVELS = 6                 # distinct concurrency levels a fit of one instance needs
MIN_FLEET_LEVELS = 3           # fleet sizes a scaling-efficiency fit needs (3 parameters)
MIN_CURVATURE = 0.05           # throughput shortfall against linear at the top level that counts as a signal
MAX_EXTRAPOLATION = 4.0        # a predicted peak beyond this multiple of the highest measured throughput is not trusted
DEFAULT_CONFIDENCE = 0.95
MAX_FLEET_SIZE = 100_000       # serving instances searched before a demand is declared out of reach
_SIGMA_STARTS = (0.001, 0.05, 0.3, 0.7)
_KAPPA_STARTS = (0.0, 1e-5, 1e-3, 0.05)


@dataclass(frozen=True)
class UslParameters:
    """The three USL coefficients; ``lambda_`` is in the throughput's unit per unit of concurrency."""

    sigma: float
    kappa: float
    lambda_: float

    def throughput(self, concurrency: float | np.ndarray) -> Any:
        n = np.asarray(concurrency, dtype=float)
        return self.lambda_ * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))

    @property
    def peak_concurrency(self) -> float:
        """Concurrency of maximum throughput: sqrt((1 - sigma) / kappa), at least 1; infinite when kappa is 0."""
        if self.kappa <= 0:
            return math.inf
        return max(1.0, math.sqrt(max(1.0 - self.sigma, 0.0) / self.kappa))

    @property
    def peak_throughput(self) -> float:
        """Maximum throughput; with kappa 0 it is the ceiling lambda / sigma, approached but never reached."""
        if self.kappa > 0:
            return float(self.throughput(self.peak_concurrency))
        if self.sigma > 0:
            return self.lambda_ / self.sigma
        return math.inf

    @property
    def knee_concurrency(self) -> float:
        """Concurrency where the linear bound lambda * N reaches the peak throughput.

        With kappa 0 this is Gunther's point of optimal scalability, 1 / sigma.
        Below it capacity is under-used; above it returns diminish.
        """
        peak = self.peak_throughput
        if not math.isfinite(peak):
            return math.inf
        return peak / self.lambda_

    def concurrency_at_throughput(self, throughput: float) -> float | None:
        """Return the lowest concurrency that reaches ``throughput``, or None when the curve never does."""
        if throughput <= 0:
            return 0.0
        if throughput > self.peak_throughput * (1 + 1e-12):
            return None
        # X (1 + sigma (N - 1) + kappa N (N - 1)) = lambda N is a quadratic in N.
        a = throughput * self.kappa
        b = throughput * (self.sigma - self.kappa) - self.lambda_
        c = throughput * (1.0 - self.sigma)
        if a == 0:
            return -c / b if b != 0 else None
        disc = max(b * b - 4 * a * c, 0.0)
        return (-b - math.sqrt(disc)) / (2 * a)


@dataclass(frozen=True)
class UslFit:
    """A USL fit with its goodness of fit and the range of data behind it.

    ``intervals`` maps ``sigma``, ``kappa`` and ``lambda`` to (low, high) at
    ``confidence``; a bound is None when the data cannot constrain it.
    ``curvature`` is 1 - X(N_max) / (lambda * N_max) at the highest measured
    concurrency: how far the fitted curve has bent below linear scaling
    within the data. Without such a bend the peak is an extrapolation.
    """

    params: UslParameters
    intervals: dict[str, tuple[float | None, float | None]]
    confidence: float
    r_squared: float
    rmse: float
    levels: int
    max_concurrency: float
    max_throughput: float
    curvature: float

    @property
    def has_signal(self) -> bool:
        """True when the data bend below linear enough for the peak to be predicted."""
        if self.curvature < MIN_CURVATURE:
            return False
        return self.params.peak_throughput <= MAX_EXTRAPOLATION * self.max_throughput

    def signal_note(self) -> str | None:
        """Return why the peak cannot be predicted, or None when it can."""
        if self.curvature < MIN_CURVATURE:
            return (
                f"throughput grew almost linearly with concurrency up to {self.max_concurrency:.3g} "
                f"({self.curvature:.1%} below linear at the top level, less than {MIN_CURVATURE:.0%}); "
                "a hard limit such as a rate limiter or a full worker pool gives no signal below it, "
                "so the USL cannot predict the peak from these levels"
            )
        if self.params.peak_throughput > MAX_EXTRAPOLATION * self.max_throughput:
            return (
                f"the fitted peak of {self.params.peak_throughput:.4g} is more than {MAX_EXTRAPOLATION:g} times "
                f"the highest measured throughput ({self.max_throughput:.4g}); that far an extrapolation is not trusted"
            )
        return None

    def as_dict(self) -> dict[str, Any]:
        params = self.params
        return {
            "sigma": params.sigma,
            "kappa": params.kappa,
            "lambda": params.lambda_,
            "intervals": {name: list(bounds) for name, bounds in self.intervals.items()},
            "confidence": self.confidence,
            "r_squared": self.r_squared,
            "rmse": self.rmse,
            "levels": self.levels,
            "peak_throughput": _finite_or_none(params.peak_throughput),
            "peak_concurrency": _finite_or_none(params.peak_concurrency),
            "knee_concurrency": _finite_or_none(params.knee_concurrency),
            "curvature": self.curvature,
            "has_signal": self.has_signal,
        }


def fit_usl(
    concurrency: np.ndarray | list[float],
    throughput: np.ndarray | list[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    min_levels: int = MIN_LEVELS,
) -> UslFit:
    """Fit the USL to measured (concurrency, throughput) pairs.

    Raises InputDataError when the values are not positive and finite, or
    when there are fewer than ``min_levels`` distinct concurrency levels.
    """
    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if n.shape != x.shape or n.ndim != 1:
        raise InputDataError(f"concurrency and throughput must be equal-length lists, got {n.shape} and {x.shape}")
    if not (np.isfinite(n).all() and np.isfinite(x).all()) or (n <= 0).any() or (x <= 0).any():
        raise InputDataError("every concurrency and throughput must be a finite number above 0; drop empty or failed levels")
    levels = len(np.unique(n))
    if levels < min_levels:
        raise InputDataError(
            f"the USL fit needs at least {min_levels} distinct concurrency levels, got {levels}; "
            "measure more levels (smaller steps) to fit the model"
        )

    order = np.argsort(n)
    n, x = n[order], x[order]
    result = _least_squares(n, x)
    params = UslParameters(sigma=float(result.x[0]), kappa=float(result.x[1]), lambda_=float(result.x[2]))

    residuals = params.throughput(n) - x
    ssr = float(np.sum(residuals**2))
    sst = float(np.sum((x - x.mean()) ** 2))
    r_squared = 1.0 - ssr / sst if sst > 0 else 1.0
    intervals = _intervals(result.jac, ssr, len(x), result.x, confidence)
    top = float(n[-1])
    curvature = 1.0 - float(params.throughput(top)) / (params.lambda_ * top)
    fit = UslFit(
        params=params,
        intervals=intervals,
        confidence=confidence,
        r_squared=r_squared,
        rmse=math.sqrt(ssr / len(x)),
        levels=levels,
        max_concurrency=top,
        max_throughput=float(x.max()),
        curvature=curvature,
    )
    logger.debug("USL fit on %d levels: sigma %.4g, kappa %.4g, lambda %.4g, R^2 %.4f",
                 levels, params.sigma, params.kappa, params.lambda_, r_squared)
    return fit


def fit_fleet_scaling(
    instances: np.ndarray | list[float], throughput_rps: np.ndarray | list[float], confidence: float = DEFAULT_CONFIDENCE
) -> UslFit:
    """Fit the USL to throughput measured at several fleet sizes (instances behind one load balancer).

    The scaling efficiency of n instances is X(n) / (n * X(1)). Fewer than
    MIN_LEVELS sizes are allowed here because fleets are costly to measure.
    The intervals are then wide, and a warning is logged.
    """
    sizes = np.asarray(instances, dtype=float)
    if (sizes < 1).any() or not np.allclose(sizes, np.round(sizes)):
        raise InputDataError(f"fleet sizes must be whole numbers of at least 1, got {sizes.tolist()}")
    fit = fit_usl(sizes, throughput_rps, confidence=confidence, min_levels=MIN_FLEET_LEVELS)
    if fit.levels < MIN_LEVELS:
        logger.warning(
            "scaling efficiency fitted from %d fleet sizes; with fewer than %d the coefficients are uncertain "
            "(sigma %.3g, kappa %.3g)", fit.levels, MIN_LEVELS, fit.params.sigma, fit.params.kappa,
        )
    return fit


def scaling_efficiency(params: UslParameters | None, instances: int) -> float:
    """Return X(n) / (n * X(1)) = 1 / (1 + sigma (n - 1) + kappa n (n - 1)); 1.0 for linear scaling (None)."""
    if params is None or instances <= 1:
        return 1.0
    n = float(instances)
    return 1.0 / (1.0 + params.sigma * (n - 1.0) + params.kappa * n * (n - 1.0))


def serving_instances_for(demand_rps: float, safe_rps_per_instance: float, params: UslParameters | None) -> tuple[int, bool]:
    """Return the fewest serving instances whose scaled safe capacity carries ``demand_rps``, and whether any does.

    The capacity of n instances is safe_rps_per_instance * n * efficiency(n).
    With coherency (kappa > 0) it peaks; a demand above that peak returns the
    fleet size at the peak and False.
    """
    base = max(1, math.ceil(round(demand_rps / safe_rps_per_instance, 9)))
    if params is None:
        return base, True
    limit = MAX_FLEET_SIZE
    if params.kappa > 0:
        limit = min(limit, max(1, math.floor(params.peak_concurrency) + 1))
    best_n, best_capacity = 1, 0.0
    for n in range(min(base, limit), limit + 1):
        capacity = safe_rps_per_instance * n * scaling_efficiency(params, n)
        if capacity >= demand_rps * (1 - 1e-12):
            return n, True
        if capacity > best_capacity:
            best_n, best_capacity = n, capacity
    return best_n, False


def read_fleet_scaling_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``instances,throughput_rps`` rows (throughput of the whole fleet) from a CSV file."""
    file = Path(path)
    try:
        table = pd.read_csv(file)
    except FileNotFoundError:
        raise InputDataError(f"scaling file {file} not found; give a CSV file with instances,throughput_rps rows") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputDataError(f"scaling file {file} is not a readable CSV table: {exc}") from exc
    columns = {str(name).strip().lower(): name for name in table.columns}
    size = columns.get("instances")
    throughput = columns.get("throughput_rps", columns.get("throughput"))
    if size is None or throughput is None:
        raise InputDataError(
            f"scaling file {file} has the columns {', '.join(map(str, table.columns))}; "
            "it needs instances and throughput_rps"
        )
    sizes = pd.to_numeric(table[size], errors="coerce").to_numpy(dtype=float)
    rates = pd.to_numeric(table[throughput], errors="coerce").to_numpy(dtype=float)
    if not (np.isfinite(sizes).all() and np.isfinite(rates).all()):
        raise InputDataError(f"scaling file {file} has empty or non-numeric values; every row needs two numbers")
    return sizes, rates


def _least_squares(n: np.ndarray, x: np.ndarray) -> optimize.OptimizeResult:
    """Return the best of several bounded starts; the objective has flat valleys between sigma and kappa."""
    lambda_start = float(np.max(x / n))

    def residuals(p: np.ndarray) -> np.ndarray:
        return p[2] * n / (1.0 + p[0] * (n - 1.0) + p[1] * n * (n - 1.0)) - x

    best: optimize.OptimizeResult | None = None
    lower = [0.0, 0.0, 0.0]
    upper = [1.0, np.inf, np.inf]
    for sigma0 in _SIGMA_STARTS:
        for kappa0 in _KAPPA_STARTS:
            result = optimize.least_squares(
                residuals,
                [sigma0, kappa0, lambda_start],
                bounds=(lower, upper),
                x_scale="jac",
                method="trf",
                xtol=1e-14,
                ftol=1e-14,
                gtol=1e-14,
                max_nfev=5000,
            )
            if best is None or result.cost < best.cost:
                best = result
    assert best is not None
    return best


def _intervals(
    jacobian: np.ndarray, ssr: float, count: int, estimate: np.ndarray, confidence: float
) -> dict[str, tuple[float | None, float | None]]:
    names = ("sigma", "kappa", "lambda")
    dof = count - len(estimate)
    if dof <= 0:
        return {name: (None, None) for name in names}
    try:
        covariance = np.linalg.inv(jacobian.T @ jacobian) * (ssr / dof)
    except np.linalg.LinAlgError:
        return {name: (None, None) for name in names}
    t = float(stats.t.ppf(0.5 + confidence / 2.0, dof))
    out: dict[str, tuple[float | None, float | None]] = {}
    for index, name in enumerate(names):
        variance = covariance[index, index]
        if not np.isfinite(variance) or variance < 0:
            out[name] = (None, None)
            continue
        half = t * math.sqrt(variance)
        low = float(estimate[index] - half)
        high = float(estimate[index] + half)
        # The coefficients are bounded below by 0, so an interval is cut there.
        out[name] = (max(low, 0.0), high)
    return out


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
