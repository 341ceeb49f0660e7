"""Seasonal ARIMA, fitted by conditional sum of squares (CSS) with a small order search.

The model is ``phi(B) Phi(B^m) (1 - B)^d (1 - B^m)^D y_t = c + theta(B) Theta(B^m) e_t``
on the log scale when every value is above zero. ``D`` is 1 when the
history has at least three primary seasons, because service traffic
repeats its daily or weekly shape. ``d`` is 1 when a KPSS test rejects
level stationarity of the (seasonally differenced) series at 5 %. The
(p, q)(P, Q) orders are the ones in ORDER_CANDIDATES with the lowest AICc;
AICc values are compared only between models with the same differencing.

CSS takes the errors before the first value as zero, so the residuals are
one ``scipy.signal.lfilter`` call on the differenced series. That makes a
fit take milliseconds where an exact Kalman-filter likelihood
(statsmodels' SARIMAX) takes seconds with a season of 24; with a few
thousand values the two estimates differ little.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.signal import lfilter
from statsmodels.tools.sm_exceptions import InterpolationWarning
from statsmodels.tsa.stattools import kpss

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

__all__ = ["Sarima", "ORDER_CANDIDATES"]

logger = logging.getLogger(__name__)

# (p, q, P, Q): the airline model (0,1)(0,1) first, then small AR and ARMA variants.
ORDER_CANDIDATES: tuple[tuple[int, int, int, int], ...] = (
    (0, 1, 0, 1),
    (1, 0, 0, 1),
    (1, 1, 0, 1),
    (2, 0, 0, 1),
    (1, 0, 1, 0),
)
COEFFICIENT_BOUND = 0.98          # |coefficient| limit, which keeps each first-order factor stationary and invertible
KPSS_ALPHA = 0.05
MIN_SEASONS_FOR_SEASONAL_DIFFERENCE = 3
FAILED_SSE = 1e300


class Sarima(Forecaster):
    """(S)ARIMA with the primary season, orders chosen by AICc among ORDER_CANDIDATES."""

    name = "sarima"

    def __init__(self, seasons: tuple[int, ...] = (), log_scale: bool = True) -> None:
        super().__init__(seasons)
        self.log_scale = log_scale

    def fit(self, y: pd.Series) -> Sarima:
        values = y.to_numpy(dtype=float)
        m = self.primary_season or 0
        require_observed(values, 2 * m + 4 if m else 8, self.name, "two whole seasons and a few more values" if m else "a few values")
        self._scale = LogScale(values, self.log_scale)
        z = self._scale.forward(fill_gaps(values))
        seasonal_difference = 1 if m and len(z) >= MIN_SEASONS_FOR_SEASONAL_DIFFERENCE * m else 0
        season = m if m else 0
        differenced = _difference(z, 0, seasonal_difference, season)
        d = 1 if _kpss_rejects(differenced) else 0
        w = _difference(z, d, seasonal_difference, season)
        mean = float(w.mean()) if d + seasonal_difference == 0 else 0.0

        # Without a season, the candidates keep their non-seasonal (p, q) part.
        orders = ORDER_CANDIDATES if season else tuple(dict.fromkeys((p, q, 0, 0) for p, q, _, _ in ORDER_CANDIDATES))
        best: tuple[float, tuple[int, int, int, int], np.ndarray, float] | None = None
        for order in orders:
            p, q, big_p, big_q = order
            coefficients, sse, used = _fit_css(w - mean, order, season)
            k = p + q + big_p + big_q + 1 + (mean != 0.0)
            if not np.isfinite(sse) or used <= k + 2:
                continue
            aicc = used * np.log(sse / used) + 2 * k + 2 * k * (k + 1) / (used - k - 1)
            if best is None or aicc < best[0]:
                best = (aicc, order, coefficients, sse / max(used - k, 1))
        if best is None:
            raise np.linalg.LinAlgError("no ARIMA order could be fitted")

        self._aicc, self._order, self._coefficients, self._sigma2 = best
        self._d, self._big_d, self._season, self._mean = d, seasonal_difference, season, mean
        self._z = z
        return self

    def predict(self, horizon: int, levels: tuple[float, ...] = LEVELS) -> Prediction:
        ar, ma = _polynomials(self._coefficients, self._order, self._season)
        full_ar = ar
        for _ in range(self._d):
            full_ar = np.convolve(full_ar, [1.0, -1.0])
        if self._big_d:
            full_ar = np.convolve(full_ar, np.r_[1.0, np.zeros(self._season - 1), -1.0])

        # Residuals of the whole history, then the forecast as the same filter run on zero future errors.
        w = _difference(self._z, self._d, self._big_d, self._season) - self._mean
        residuals = lfilter(ar, ma, w)
        centred = self._z - (self._mean if self._d + self._big_d == 0 else 0.0)
        order = max(len(full_ar), len(ma)) - 1
        past_y = centred[::-1][:order]
        past_e = np.r_[residuals[::-1], np.zeros(order)][:order]
        initial = filter_state(ma, full_ar, past_e, past_y)
        mean_path, _ = lfilter(ma, full_ar, np.zeros(horizon), zi=initial)
        mean_path = mean_path + (self._mean if self._d + self._big_d == 0 else 0.0)

        impulse = np.zeros(horizon)
        impulse[0] = 1.0
        psi = lfilter(ma, full_ar, impulse)
        sigma = np.sqrt(self._sigma2 * np.cumsum(psi**2))
        prediction = Prediction(mean=mean_path, bounds=normal_bounds(mean_path, sigma, levels))
        return self._scale.inverse_prediction(prediction)

    @property
    def label(self) -> str:
        if not hasattr(self, "_order"):
            return self.name
        p, q, big_p, big_q = self._order
        seasonal = f"({big_p},{self._big_d},{big_q})[{self._season}]" if self._season else ""
        return f"{self.name}({p},{self._d},{q}){seasonal}" + (" log" if self._scale.active else "")

    @property
    def params(self) -> dict[str, Any]:
        return {
            "order": list(self._order), "d": self._d, "seasonal_d": self._big_d, "season": self._season or None,
            "coefficients": [float(c) for c in self._coefficients], "mean": self._mean,
            "sigma2": self._sigma2, "aicc": float(self._aicc), "log_scale": self._scale.active,
        }


def _difference(z: np.ndarray, d: int, seasonal_d: int, season: int) -> np.ndarray:
    w = z
    for _ in range(seasonal_d):
        w = w[season:] - w[:-season]
    for _ in range(d):
        w = np.diff(w)
    return w


def _kpss_rejects(w: np.ndarray) -> bool:
    """Return True when KPSS rejects level stationarity, so one more difference is needed."""
    if len(w) < 10 or float(np.ptp(w)) == 0.0:
        return False
    with warnings.catch_warnings():
        # The p-value table only spans 0.01..0.1; beyond it the bound is returned, which is enough here.
        warnings.simplefilter("ignore", InterpolationWarning)
        # statsmodels 0.15 warns that kpss will return a result object; index 1 is the p-value in both forms.
        warnings.simplefilter("ignore", FutureWarning)
        p_value = kpss(w, regression="c", nlags="auto")[1]
    return bool(p_value < KPSS_ALPHA)


def _polynomials(coefficients: np.ndarray, order: tuple[int, int, int, int], season: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the AR and MA lag polynomials (coefficient of B^0 first), seasonal factors multiplied in."""
    p, q, big_p, big_q = order
    phi = coefficients[:p]
    theta = coefficients[p : p + q]
    big_phi = coefficients[p + q : p + q + big_p]
    big_theta = coefficients[p + q + big_p :]
    ar = np.r_[1.0, -phi]
    ma = np.r_[1.0, theta]
    if big_p:
        ar = np.convolve(ar, _seasonal(-big_phi, season))
    if big_q:
        ma = np.convolve(ma, _seasonal(big_theta, season))
    return ar, ma


def _seasonal(coefficients: np.ndarray, season: int) -> np.ndarray:
    polynomial = np.zeros(len(coefficients) * season + 1)
    polynomial[0] = 1.0
    polynomial[season :: season] = coefficients
    return polynomial


def _css_residuals(w: np.ndarray, coefficients: np.ndarray, order: tuple[int, int, int, int], season: int) -> np.ndarray:
    """Return the CSS residuals, the same as ``lfilter(ar, ma, w)`` with the full polynomials.

    Filters that start from rest commute, so the four factors run one after
    another. A seasonal factor of order 1 is then a first-order recursion
    along the cycles (a reshape to cycles x season), which costs O(n)
    instead of the O(n * season) of one filter with the multiplied-out
    polynomial: 30 times faster with the 288-step day of 5-minute data.
    """
    p, q, big_p, big_q = order
    x = np.convolve(w, np.r_[1.0, -coefficients[:p]])[: len(w)] if p else w
    if big_p:
        x = _seasonal_difference_filter(x, coefficients[p + q], season)
    if q:
        x = lfilter([1.0], np.r_[1.0, coefficients[p : p + q]], x)
    if big_q:
        x = _seasonal_recursion(x, coefficients[p + q + big_p], season)
    return x


def _seasonal_difference_filter(x: np.ndarray, coefficient: float, season: int) -> np.ndarray:
    """Return ``x_t - coefficient * x_(t - season)``, with zeros before the start."""
    result = x.copy()
    result[season:] -= coefficient * x[:-season]
    return result


def _seasonal_recursion(x: np.ndarray, coefficient: float, season: int) -> np.ndarray:
    """Return ``e`` with ``e_t = x_t - coefficient * e_(t - season)``, starting from zeros."""
    n = len(x)
    cycles = -(-n // season)
    padded = np.zeros(cycles * season)
    padded[:n] = x
    filtered = lfilter([1.0], [1.0, coefficient], padded.reshape(cycles, season), axis=0)
    return filtered.ravel()[:n]


def _fit_css(w: np.ndarray, order: tuple[int, int, int, int], season: int) -> tuple[np.ndarray, float, int]:
    """Return the CSS coefficients, their sum of squares and the number of residuals it covers."""
    p, q, big_p, big_q = order
    count = p + q + big_p + big_q
    burn_in = p + big_p * season
    used = len(w) - burn_in

    def sse(coefficients: np.ndarray) -> float:
        if p == 2 and np.any(np.abs(np.roots(np.r_[1.0, -coefficients[:2]])) >= 1.0):
            return FAILED_SSE
        residuals = _css_residuals(w, coefficients, order, season)[burn_in:]
        total = float(np.dot(residuals, residuals))
        return total if np.isfinite(total) else FAILED_SSE

    if count == 0:
        return np.zeros(0), sse(np.zeros(0)), used
    # SLSQP rather than L-BFGS-B: with scipy 1.17 on this project's 2-core test machine, L-BFGS-B spent
    # milliseconds per iteration in BLAS thread start-up, which made fits 3 to 4 times slower.
    result = minimize(sse, np.full(count, 0.1), method="SLSQP", bounds=[(-COEFFICIENT_BOUND, COEFFICIENT_BOUND)] * count)
    return result.x, float(result.fun), used
