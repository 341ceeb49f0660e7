"""Exponential smoothing with a damped trend: ETS(A,Ad,A), or ETS(A,Ad,N) without a season.

The model is fitted on the log scale when every value is above zero (see
:class:`LogScale`), so on the original scale the trend and the season are
multiplicative. Smoothing parameters minimise the sum of squared one-step
errors, with the initial states set from the first two seasons.

Speed: ETS is a linear innovations state-space model, so its one-step
errors follow from the observations through a rational filter,
``e = det(I - F z) / det(I - D z) * y`` with ``D = F - g w'``. The first
``k`` errors (``k`` states) come from the explicit recursion, and
``scipy.signal.lfilter`` runs the rest in C. One evaluation of the
objective costs well under a millisecond for a few thousand points, which
keeps the backtests inside the time of one Prophet fit.

Seasons longer than MAX_SEASON steps are rejected: the seasonal state has
one value per step, and a 288-step daily cycle of 5-minute data would make
the filter order too high to stay numerically stable. The multi-seasonal
model covers those series.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.signal import lfilter

from capplan.errors import InputDataError
from forecasting.models.base import (
    LEVELS,
    Forecaster,
    LogScale,
    Prediction,
    fill_gaps,
    filter_state,
    normal_bounds,
    require_observed,
)

__all__ = ["DampedEts", "MAX_SEASON"]

MAX_SEASON = 24                   # maximum season length in steps; R's forecast::ets has the same limit
PHI_BOUNDS = (0.80, 0.98)         # damping; below 0.8 the trend vanishes within days, above 0.98 it hardly damps
SMOOTHING_BOUNDS = (1e-4, 0.9999)
INITIAL_GUESS = (0.3, 0.1, 0.1, 0.95)  # alpha, beta / alpha, gamma / (1 - alpha), phi
FAILED_SSE = 1e300                # objective value for parameters whose filter diverges


class DampedEts(Forecaster):
    """Additive damped-trend exponential smoothing on the log scale, with the primary season if it has one."""

    name = "ets_damped"

    def __init__(self, seasons: tuple[int, ...] = (), log_scale: bool = True) -> None:
        super().__init__(seasons)
        self.log_scale = log_scale

    def fit(self, y: pd.Series) -> DampedEts:
        values = y.to_numpy(dtype=float)
        m = self.primary_season
        if m is not None and m > MAX_SEASON:
            raise InputDataError(
                f"{self.name} supports seasons of up to {MAX_SEASON} steps, got {m}; the multi_seasonal "
                "model handles longer seasons"
            )
        require_observed(values, 2 * m + 2 if m else 6, self.name, "two whole seasons and two more values" if m else "a trend")
        self._scale = LogScale(values, self.log_scale)
        z = self._scale.forward(fill_gaps(values))
        self._m = m or 0
        self._x0 = _initial_state(z, self._m)

        def sse(theta: np.ndarray) -> float:
            errors = _errors(z, _smoothing(theta, self._m), self._m, self._x0)
            total = float(np.dot(errors, errors))
            return total if np.isfinite(total) else FAILED_SSE

        guess = np.array(INITIAL_GUESS if self._m else INITIAL_GUESS[:2] + INITIAL_GUESS[3:])
        bounds = [SMOOTHING_BOUNDS] * (len(guess) - 1) + [PHI_BOUNDS]
        # SLSQP rather than L-BFGS-B: with scipy 1.17 on this project's 2-core test machine, L-BFGS-B spent
        # milliseconds per iteration in BLAS thread start-up, which made fits 3 to 4 times slower.
        result = minimize(sse, guess, method="SLSQP", bounds=bounds)
        self._theta = result.x
        self._smoothing_params = _smoothing(result.x, self._m)
        errors = _errors(z, self._smoothing_params, self._m, self._x0)
        parameter_count = len(guess)
        self._sigma2 = float(np.dot(errors, errors)) / max(len(z) - parameter_count, 1)
        self._final = _final_state(errors, self._smoothing_params, self._m, self._x0)
        return self

    def predict(self, horizon: int, levels: tuple[float, ...] = LEVELS) -> Prediction:
        alpha, beta, gamma, phi = self._smoothing_params
        level, trend, season_by_phase, n = self._final
        steps = np.arange(1, horizon + 1)
        damped_sum = phi * (1.0 - phi**steps) / (1.0 - phi)
        mean = level + damped_sum * trend
        if self._m:
            mean = mean + season_by_phase[(n + steps - 1) % self._m]

        # Variance h steps ahead: sigma^2 * (1 + sum of c_j^2 for j < h), with
        # c_j = alpha + beta * (phi + ... + phi^j) + gamma when j is a whole number of seasons.
        c = alpha + beta * damped_sum
        if self._m:
            c = c + gamma * (steps % self._m == 0)
        cumulative = np.concatenate([[0.0], np.cumsum(c[:-1] ** 2)])
        sigma = np.sqrt(self._sigma2 * (1.0 + cumulative))
        prediction = Prediction(mean=mean, bounds=normal_bounds(mean, sigma, levels))
        return self._scale.inverse_prediction(prediction)

    @property
    def label(self) -> str:
        season = f",A[{self._m}]" if getattr(self, "_m", 0) else ",N"
        return f"{self.name}(A,Ad{season})" + (" log" if getattr(self, "_scale", None) and self._scale.active else "")

    @property
    def params(self) -> dict[str, Any]:
        alpha, beta, gamma, phi = self._smoothing_params
        return {
            "alpha": alpha, "beta": beta, "gamma": gamma, "phi": phi,
            "season": self._m or None, "log_scale": self._scale.active, "sigma2": self._sigma2,
        }


def _smoothing(theta: np.ndarray, m: int) -> tuple[float, float, float, float]:
    """Map the optimiser's box-bounded values to (alpha, beta, gamma, phi) with beta < alpha and gamma < 1 - alpha."""
    alpha = float(theta[0])
    beta = alpha * float(theta[1])
    gamma = (1.0 - alpha) * float(theta[2]) if m else 0.0
    phi = float(theta[-1])
    return alpha, beta, gamma, phi


def _initial_state(z: np.ndarray, m: int) -> tuple[float, float, np.ndarray]:
    """Return the level and trend before the first value, and the first season in time order (mean 0)."""
    if m:
        first, second = z[:m], z[m : 2 * m]
        trend = (second.mean() - first.mean()) / m
        centre = (m - 1) / 2.0
        season = first - (first.mean() + trend * (np.arange(m) - centre))
        season = season - season.mean()
        level = first.mean() - trend * (centre + 1.0)
        return float(level), float(trend), season
    span = min(5, len(z) // 2)
    trend = (z[span : 2 * span].mean() - z[:span].mean()) / span
    return float(z[0] - trend), float(trend), np.zeros(0)


def _errors(z: np.ndarray, smoothing: tuple[float, float, float, float], m: int, x0: tuple[float, float, np.ndarray]) -> np.ndarray:
    """Return the one-step errors of the model on ``z``."""
    alpha, beta, gamma, phi = smoothing
    order = m + 2 if m else 2
    head = min(order, len(z))

    # Explicit recursion for the first `order` steps, which fixes the filter's initial conditions.
    # Python floats rather than numpy scalars: the objective runs this loop thousands of times per fit.
    level, trend, first_season = x0
    season = first_season.tolist()
    errors = []
    for t, value in enumerate(z[:head].tolist()):
        seasonal = season[t] if m else 0.0
        error = value - (level + phi * trend + seasonal)
        errors.append(error)
        level = level + phi * trend + alpha * error
        trend = phi * trend + beta * error
        if m:
            season.append(seasonal + gamma * error)
    head_errors = np.array(errors)
    if head == len(z):
        return head_errors

    # det(I - F z): (1 - z)(1 - phi z), times (1 - z^m) with a season.
    numerator = np.convolve([1.0, -1.0], [1.0, -phi])
    if m:
        seasonal_difference = np.zeros(m + 1)
        seasonal_difference[0], seasonal_difference[m] = 1.0, -1.0
        numerator = np.convolve(numerator, seasonal_difference)
    # det(I - D z) = det(I - F z) * (1 + sum_j c_j z^j), truncated to the state dimension.
    steps = np.arange(1, order + 1)
    c = alpha + beta * phi * (1.0 - phi**steps) / (1.0 - phi)
    if m:
        c = c + gamma * (steps % m == 0)
    denominator = np.convolve(numerator, np.concatenate(([1.0], c)))[: order + 1]
    initial = filter_state(numerator, denominator, z[:head][::-1], head_errors[::-1])
    tail, _ = lfilter(numerator, denominator, z[head:], zi=initial)
    return np.concatenate([head_errors, tail])


def _final_state(
    errors: np.ndarray, smoothing: tuple[float, float, float, float], m: int, x0: tuple[float, float, np.ndarray]
) -> tuple[float, float, np.ndarray, int]:
    """Return the level, trend and seasonal value per phase after the last value, and the history length.

    The state equations are linear in the errors, so the end state is a sum
    over the errors. The trend is a first-order filter of them. The level
    adds the damped trend and alpha times each error, and each seasonal
    phase adds gamma times the errors of its own steps.
    """
    alpha, beta, gamma, phi = smoothing
    level0, trend0, first_season = x0
    n = len(errors)
    trends, _ = lfilter([beta], [1.0, -phi], errors, zi=[phi * trend0])
    level = level0 + phi * (trend0 + trends[:-1].sum()) + alpha * errors.sum()
    season_by_phase = np.zeros(m)
    if m:
        sums = np.bincount(np.arange(n) % m, weights=errors, minlength=m)
        season_by_phase = first_season + gamma * sums
    return float(level), float(trends[-1]), season_by_phase, n
