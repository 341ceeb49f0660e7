"""Seasonal naive: each step ahead repeats the value one season earlier.

It is the baseline that every backtest score is scaled by (MASE), so a model
earns its place only by beating it. Without a season it is the naive
forecast (the last value repeated).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forecasting.models.base import LEVELS, Forecaster, Prediction, fill_gaps, normal_bounds, require_observed, seasonal_index

__all__ = ["SeasonalNaive"]


class SeasonalNaive(Forecaster):
    """Repeat the last observed season; intervals widen with each further season ahead.

    The spread is the standard deviation of the seasonal differences
    y[t] - y[t - m], and k whole seasons ahead it grows with sqrt(k), as for a
    seasonal random walk.
    """

    name = "seasonal_naive"

    def fit(self, y: pd.Series) -> SeasonalNaive:
        values = y.to_numpy(dtype=float)
        m = self.primary_season or 1
        require_observed(values, m, self.name, f"one whole season of {m} steps")
        self._history = fill_gaps(values)
        differences = values[m:] - values[:-m]
        differences = differences[np.isfinite(differences)]
        self._sigma = float(np.std(differences, ddof=1)) if len(differences) > 1 else 0.0
        return self

    def predict(self, horizon: int, levels: tuple[float, ...] = LEVELS) -> Prediction:
        m = self.primary_season or 1
        positions = seasonal_index(len(self._history), horizon, m)
        mean = self._history[positions]
        seasons_ahead = (np.arange(horizon) // m) + 1
        sigma = self._sigma * np.sqrt(seasons_ahead)
        return Prediction(mean=mean, bounds=normal_bounds(mean, sigma, levels))

    @property
    def label(self) -> str:
        m = self.primary_season
        return f"{self.name}[{m}]" if m else "naive"

    @property
    def params(self) -> dict[str, Any]:
        return {"season": self.primary_season, "sigma": self._sigma}
