"""Median ensemble: the step-by-step median of several models' forecasts and bounds.

A median of three keeps the middle forecast at each step, so one model that
goes wrong on a series (a trend extrapolated too far, a season misread)
does not move the result, as it would move a mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forecasting.models.base import LEVELS, Forecaster, Prediction

__all__ = ["MedianEnsemble", "median_prediction"]


def median_prediction(predictions: list[Prediction]) -> Prediction:
    """Return the step-by-step median of the forecasts and of each bound."""
    mean = np.median(np.vstack([p.mean for p in predictions]), axis=0)
    bounds = {}
    for level in predictions[0].bounds:
        lower = np.median(np.vstack([p.bounds[level][0] for p in predictions]), axis=0)
        upper = np.median(np.vstack([p.bounds[level][1] for p in predictions]), axis=0)
        bounds[level] = (lower, upper)
    return Prediction(mean=mean, bounds=bounds)


class MedianEnsemble(Forecaster):
    """The median of its member forecasters, each fitted on the same history."""

    name = "median_ensemble"

    def __init__(self, members: list[Forecaster]) -> None:
        super().__init__(members[0].seasons if members else ())
        self.members = members

    def fit(self, y: pd.Series) -> MedianEnsemble:
        for member in self.members:
            member.fit(y)
        return self

    def predict(self, horizon: int, levels: tuple[float, ...] = LEVELS) -> Prediction:
        return median_prediction([member.predict(horizon, levels) for member in self.members])

    def clone(self) -> MedianEnsemble:
        return MedianEnsemble([member.clone() for member in self.members])

    @property
    def label(self) -> str:
        return f"median({', '.join(member.label for member in self.members)})"

    @property
    def params(self) -> dict[str, Any]:
        return {member.name: member.params for member in self.members}
