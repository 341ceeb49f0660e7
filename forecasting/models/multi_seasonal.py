"""Multi-seasonal model: seasonal profiles (such as daily and weekly) plus a damped trend.

The series (on the log scale when every value is above zero) is split into
one profile per season by :func:`decompose`. The seasonally adjusted rest
is forecast by damped-trend exponential smoothing without a season, and the
profiles continue unchanged into the future. The intervals are those of the
trend model, whose errors include what the profiles leave unexplained.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from capplan.errors import InputDataError
from forecasting.models.base import LEVELS, Forecaster, LogScale, Prediction, fill_gaps, require_observed
from forecasting.models.decomposition import SeasonalProfiles, decompose
from forecasting.models.ets import DampedEts

__all__ = ["MultiSeasonal"]


class MultiSeasonal(Forecaster):
    """Seasonal profiles for every season with two whole cycles in the history, and a damped trend."""

    name = "multi_seasonal"

    def __init__(self, seasons: tuple[int, ...] = (), log_scale: bool = True) -> None:
        super().__init__(seasons)
        self.log_scale = log_scale

    def fit(self, y: pd.Series) -> MultiSeasonal:
        values = y.to_numpy(dtype=float)
        if not self.seasons:
            raise InputDataError(f"{self.name} needs at least one season; use ets_damped for a series without one")
        require_observed(values, 2 * self.seasons[0], self.name, f"two whole cycles of the {self.seasons[0]}-step season")
        usable = tuple(m for m in self.seasons if 2 * m <= len(values))
        self._scale = LogScale(values, self.log_scale)
        z = self._scale.forward(fill_gaps(values))
        self._profiles: SeasonalProfiles = decompose(z, usable)
        adjusted = z - self._profiles.at(np.arange(len(z)))
        self._n = len(z)
        self._trend = DampedEts(log_scale=False).fit(pd.Series(adjusted, index=y.index))
        return self

    def predict(self, horizon: int, levels: tuple[float, ...] = LEVELS) -> Prediction:
        trend = self._trend.predict(horizon, levels)
        seasonal = self._profiles.at(np.arange(self._n, self._n + horizon))
        prediction = Prediction(
            mean=trend.mean + seasonal,
            bounds={level: (lo + seasonal, hi + seasonal) for level, (lo, hi) in trend.bounds.items()},
        )
        return self._scale.inverse_prediction(prediction)

    @property
    def label(self) -> str:
        if not hasattr(self, "_profiles"):
            return self.name
        seasons = ",".join(str(m) for m in self._profiles.profiles)
        return f"{self.name}[{seasons}]+damped trend" + (" log" if self._scale.active else "")

    @property
    def params(self) -> dict[str, Any]:
        return {
            "seasons": list(self._profiles.profiles),
            "log_scale": self._scale.active,
            "trend": self._trend.params,
        }
