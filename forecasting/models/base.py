"""The forecaster interface that every demand model implements, and helpers they share.

A forecaster is configured in ``__init__`` (its seasons and options), learns
from a history in :meth:`Forecaster.fit` and returns a :class:`Prediction`
from :meth:`Forecaster.predict`. Fitted state lives in attributes that
``fit`` sets, so one configured forecaster can be refitted on each backtest
fold. The history is a float Series on a regular DatetimeIndex, with NaN for
a missing value; the caller reindexes irregular data first.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from capplan.errors import InputDataError

__all__ = [
    "LEVELS",
    "Prediction",
    "Forecaster",
    "LogScale",
    "fill_gaps",
    "filter_state",
    "normal_bounds",
    "require_observed",
    "seasonal_index",
]

LEVELS: tuple[float, ...] = (0.8, 0.95)   # central interval probabilities every model predicts


@dataclass(frozen=True)
class Prediction:
    """Point forecasts and central prediction intervals for ``len(mean)`` steps after the history.

    ``bounds`` maps an interval probability, such as 0.8, to the lower and
    upper bound arrays, so the upper bound is the (1 + level) / 2 quantile.
    """

    mean: np.ndarray
    bounds: dict[float, tuple[np.ndarray, np.ndarray]]

    def is_finite(self) -> bool:
        """Return True when the forecast and every bound are finite numbers."""
        arrays = [self.mean, *(bound for pair in self.bounds.values() for bound in pair)]
        return all(bool(np.isfinite(array).all()) for array in arrays)

    def clipped(self, lower: float) -> Prediction:
        """Return the prediction with every value raised to at least ``lower``."""
        return Prediction(
            mean=np.maximum(self.mean, lower),
            bounds={level: (np.maximum(lo, lower), np.maximum(hi, lower)) for level, (lo, hi) in self.bounds.items()},
        )

    def head(self, steps: int) -> Prediction:
        """Return the first ``steps`` steps."""
        return Prediction(
            mean=self.mean[:steps],
            bounds={level: (lo[:steps], hi[:steps]) for level, (lo, hi) in self.bounds.items()},
        )


class Forecaster(abc.ABC):
    """A demand model with a name, ``fit`` on a regular series and ``predict`` of a horizon.

    ``seasons`` are season lengths in steps, shortest first, such as (24, 168)
    for hourly data with a daily and a weekly cycle. Each model uses the ones
    it can, and the first is the primary season.
    """

    name: str = "forecaster"

    def __init__(self, seasons: tuple[int, ...] = ()) -> None:
        self.seasons = tuple(int(m) for m in seasons if int(m) >= 2)

    @property
    def primary_season(self) -> int | None:
        return self.seasons[0] if self.seasons else None

    @abc.abstractmethod
    def fit(self, y: pd.Series) -> Forecaster:
        """Fit to ``y`` and return self. Raises InputDataError when ``y`` is too short for the model."""

    @abc.abstractmethod
    def predict(self, horizon: int, levels: tuple[float, ...] = LEVELS) -> Prediction:
        """Forecast ``horizon`` steps after the fitted history with intervals at each of ``levels``."""

    @property
    def label(self) -> str:
        """Name with the fitted specification, such as ``sarima(1,0,1)(0,1,1)[24]``; defaults to ``name``."""
        return self.name

    @property
    def params(self) -> dict[str, Any]:
        """Fitted parameters as plain values for storage."""
        return {}

    def clone(self) -> Forecaster:
        """Return an unfitted forecaster with the same configuration."""
        clone = object.__new__(type(self))
        clone.__dict__.update({key: value for key, value in self.__dict__.items() if not key.startswith("_")})
        return clone


class LogScale:
    """Log transform for series whose every observed value is above zero.

    Request rates grow by percentages and their daily swing grows with their
    level, which is additive on the log scale. A series with a zero or a
    negative value (idle nights) stays on its own scale, so no model takes
    the log of zero. Bounds are mapped back with exp, which keeps them
    quantiles, so a back-transformed mean is the median forecast.
    """

    def __init__(self, values: np.ndarray, enabled: bool = True) -> None:
        observed = values[np.isfinite(values)]
        self.active = bool(enabled and observed.size and (observed > 0).all())

    def forward(self, values: np.ndarray) -> np.ndarray:
        return np.log(values) if self.active else values

    def inverse(self, values: np.ndarray) -> np.ndarray:
        if not self.active:
            return values
        with np.errstate(over="ignore"):
            return np.exp(values)

    def inverse_prediction(self, prediction: Prediction) -> Prediction:
        return Prediction(
            mean=self.inverse(prediction.mean),
            bounds={level: (self.inverse(lo), self.inverse(hi)) for level, (lo, hi) in prediction.bounds.items()},
        )


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Return ``values`` with NaN replaced by linear interpolation, and the nearest value at either end.

    Models that need a complete series fit to the filled values. The gap is
    still missing in the stored history and in the backtest scores.
    """
    values = np.asarray(values, dtype=float)
    missing = ~np.isfinite(values)
    if not missing.any():
        return values
    positions = np.arange(len(values))
    filled = values.copy()
    filled[missing] = np.interp(positions[missing], positions[~missing], values[~missing])
    return filled


def filter_state(b: np.ndarray, a: np.ndarray, past_inputs: np.ndarray, past_outputs: np.ndarray) -> np.ndarray:
    """Return the ``zi`` state of ``lfilter(b, a, ...)`` after the given inputs and outputs, most recent first.

    The same values as ``scipy.signal.lfiltic(b, a, past_outputs, past_inputs)`` for ``a[0] == 1``, but each
    sum over past values is one ``np.convolve``. lfiltic loops in Python over the filter order: at order 26
    (ETS on hourly data with a daily season) it took 0.31 ms per call against 6 us for this, most of an
    ETS fit's time (scipy 1.17 on the 2-core machine of docs/benchmarks.md).
    """
    input_order, output_order = len(b) - 1, len(a) - 1
    inputs = np.zeros(input_order)
    inputs[: min(input_order, len(past_inputs))] = past_inputs[:input_order]
    outputs = np.zeros(output_order)
    outputs[: min(output_order, len(past_outputs))] = past_outputs[:output_order]
    # state[k] = sum_j b[k + 1 + j] * inputs[j] - sum_j a[k + 1 + j] * outputs[j]
    state = np.zeros(max(input_order, output_order))
    if input_order:
        state[:input_order] += np.convolve(b[1:], inputs[::-1])[input_order - 1 : 2 * input_order - 1]
    if output_order:
        state[:output_order] -= np.convolve(a[1:], outputs[::-1])[output_order - 1 : 2 * output_order - 1]
    return state


def normal_bounds(mean: np.ndarray, sigma: np.ndarray, levels: tuple[float, ...]) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Return Gaussian central intervals around ``mean`` with per-step standard deviation ``sigma``."""
    bounds = {}
    for level in levels:
        z = float(norm.ppf((1.0 + level) / 2.0))
        bounds[level] = (mean - z * sigma, mean + z * sigma)
    return bounds


def require_observed(values: np.ndarray, needed: int, model: str, why: str) -> None:
    """Raise InputDataError unless ``values`` has at least ``needed`` observed values."""
    observed = int(np.isfinite(values).sum())
    if observed < needed:
        raise InputDataError(
            f"{model} needs at least {needed} observed values ({why}), but the history has {observed}; "
            "collect a longer history or use a shorter season"
        )


def seasonal_index(n_history: int, horizon: int, season: int) -> np.ndarray:
    """Return, for each step ahead, the history position one or more whole seasons earlier in the last cycle."""
    steps = np.arange(1, horizon + 1)
    return n_history - season + (steps - 1) % season
