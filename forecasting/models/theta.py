"""The Theta method: simple exponential smoothing with a drift of half the linear trend.

This is the standard Theta method (Assimakopoulos and Nikolopoulos, 2000),
in the form Hyndman and Billah (2003) showed equivalent to simple
exponential smoothing with drift: the forecast h steps ahead is
``level + b * (h - 1 + 1/alpha - (1 - alpha)^n / alpha)``, where ``b`` is half
the slope of a least-squares line through the history. The series is first
seasonally adjusted with every season that has two whole cycles (see
:func:`decompose`), on the log scale when every value is above zero, and the
seasons are added back to the forecast. Intervals are those of simple
exponential smoothing: variance ``sigma^2 * (1 + (h - 1) * alpha^2)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.signal import lfilter

from forecasting.models.base import LEVELS, Forecaster, LogScale, Prediction, fill_gaps, normal_bounds, require_observed
from forecasting.models.decomposition import decompose

__all__ = ["Theta"]

ALPHA_BOUNDS = (1e-3, 0.999)


class Theta(Forecaster):
    """Theta method on the seasonally adjusted series."""

    name = "theta"

    def __init__(self, seasons: tuple[int, ...] = (), log_scale: bool = True) -> None:
        super().__init__(seasons)
        self.log_scale = log_scale

    def fit(self, y: pd.Series) -> Theta:
        values = y.to_numpy(dtype=float)
        require_observed(values, 4, self.name, "a level and a trend")
        self._scale = LogScale(values, self.log_scale)
        z = self._scale.forward(fill_gaps(values))
        usable = tuple(m for m in self.seasons if 2 * m <= len(z))
        self._profiles = decompose(z, usable)
        n = len(z)
        x = z - self._profiles.at(np.arange(n))

        def one_step_errors(alpha: float) -> np.ndarray:
            # SES level l_t = alpha * x_t + (1 - alpha) * l_(t-1), started at x_0; the forecast of x_t is l_(t-1).
            levels, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], x[1:], zi=[(1.0 - alpha) * x[0]])
            return x[1:] - np.r_[x[0], levels[:-1]]

        result = minimize_scalar(lambda a: float(np.sum(one_step_errors(a) ** 2)), bounds=ALPHA_BOUNDS, method="bounded")
        alpha = float(result.x)
        errors = one_step_errors(alpha)
        levels, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], x[1:], zi=[(1.0 - alpha) * x[0]])
        slope = float(np.polyfit(np.arange(n), x, 1)[0])
        self._alpha, self._level, self._drift, self._n = alpha, float(levels[-1]), slope / 2.0, n
        self._sigma2 = float(np.dot(errors, errors)) / max(len(errors) - 2, 1)
        return self

    def predict(self, horizon: int, levels: tuple[float, ...] = LEVELS) -> Prediction:
        steps = np.arange(1, horizon + 1)
        alpha, n = self._alpha, self._n
        mean = self._level + self._drift * (steps - 1 + 1.0 / alpha - (1.0 - alpha) ** n / alpha)
        mean = mean + self._profiles.at(np.arange(n, n + horizon))
        sigma = np.sqrt(self._sigma2 * (1.0 + (steps - 1) * alpha**2))
        return self._scale.inverse_prediction(Prediction(mean=mean, bounds=normal_bounds(mean, sigma, levels)))

    @property
    def label(self) -> str:
        if not hasattr(self, "_profiles"):
            return self.name
        seasons = ",".join(str(m) for m in self._profiles.profiles)
        return f"{self.name}[{seasons}]" if seasons else self.name

    @property
    def params(self) -> dict[str, Any]:
        return {
            "alpha": self._alpha, "drift_per_step": self._drift, "seasons": list(self._profiles.profiles),
            "log_scale": self._scale.active, "sigma2": self._sigma2,
        }
