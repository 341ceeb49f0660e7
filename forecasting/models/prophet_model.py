"""Prophet (Meta's additive regression model) behind the common forecaster interface.

Growth is linear, or logistic between ``floor`` and ``cap`` when a cap is
given, such as the number of users a market can have. Daily seasonality is
on for sub-daily data with two days of history, weekly with two weeks and
yearly with two years, and off otherwise. Intervals come from Prophet's
predictive samples, so one fit gives every level.

Prophet ships its compiled Stan model in the wheel (prophet 1.1.5 and
later), so fitting needs no compiler and no download. Importing it takes
about a second, so it is imported on first use.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from capplan.errors import ConfigError
from forecasting.models.base import LEVELS, Forecaster, Prediction, require_observed

__all__ = ["ProphetForecaster"]

logger = logging.getLogger(__name__)

UNCERTAINTY_SAMPLES = 300         # predictive samples per forecast; the 95 % bounds rest on about 8 samples beyond each
ONE_DAY = pd.Timedelta(days=1)


class ProphetForecaster(Forecaster):
    """Prophet with linear or logistic growth, on the series' own scale."""

    name = "prophet"

    def __init__(
        self,
        seasons: tuple[int, ...] = (),
        cap: float | None = None,
        floor: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seasons)
        if cap is not None and floor is not None and not cap > floor:
            raise ConfigError(f"prophet: cap {cap!r} must be above floor {floor!r}; give a cap above the floor")
        if floor is not None and cap is None:
            raise ConfigError("prophet: a floor needs a cap as well, because only logistic growth uses them; pass --cap")
        self.cap = cap
        self.floor = floor
        self.seed = seed

    @property
    def growth(self) -> str:
        return "logistic" if self.cap is not None else "linear"

    def fit(self, y: pd.Series) -> ProphetForecaster:
        from prophet import Prophet

        values = y.to_numpy(dtype=float)
        require_observed(values, 3, self.name, "a trend")
        index = pd.DatetimeIndex(y.index)
        span = index[-1] - index[0]
        step = index[1] - index[0]
        if self.cap is not None:
            highest = float(np.nanmax(values))
            if highest >= self.cap:
                raise ConfigError(
                    f"prophet: cap {self.cap:g} is not above the highest value in the history ({highest:g}); "
                    "give a cap above every observed value"
                )
        model = Prophet(
            growth=self.growth,
            daily_seasonality=bool(step < ONE_DAY and span >= 2 * ONE_DAY),
            weekly_seasonality=bool(span >= 14 * ONE_DAY),
            yearly_seasonality=bool(span >= 730 * ONE_DAY),
            uncertainty_samples=UNCERTAINTY_SAMPLES,
        )
        frame = pd.DataFrame({"ds": index, "y": values}).dropna()
        self._add_bounds(frame)
        np.random.seed(self.seed)  # Prophet draws its predictive samples from numpy's global generator
        model.fit(frame)
        self._model, self._last, self._step = model, index[-1], step
        return self

    def predict(self, horizon: int, levels: tuple[float, ...] = LEVELS) -> Prediction:
        future = pd.DataFrame({"ds": pd.date_range(self._last + self._step, periods=horizon, freq=self._step)})
        self._add_bounds(future)
        # The point forecast needs no samples; switching them off for it halves the prediction time.
        self._model.uncertainty_samples = 0
        mean = self._model.predict(future)["yhat"].to_numpy(dtype=float)
        self._model.uncertainty_samples = UNCERTAINTY_SAMPLES
        np.random.seed(self.seed)
        samples = self._model.predictive_samples(future)["yhat"]  # shape (horizon, samples)
        bounds = {}
        for level in levels:
            tail = (1.0 - level) / 2.0
            bounds[level] = (np.quantile(samples, tail, axis=1), np.quantile(samples, 1.0 - tail, axis=1))
        return Prediction(mean=mean, bounds=bounds)

    def _add_bounds(self, frame: pd.DataFrame) -> None:
        if self.cap is not None:
            frame["cap"] = self.cap
            frame["floor"] = 0.0 if self.floor is None else self.floor

    @property
    def label(self) -> str:
        return f"{self.name}({self.growth})"

    @property
    def params(self) -> dict[str, Any]:
        return {"growth": self.growth, "cap": self.cap, "floor": self.floor}
