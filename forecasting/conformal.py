"""Recalibration of prediction intervals from backtest errors (split conformal prediction).

A model's own intervals assume its error model is right, and on real traffic
they often are too narrow. The backtests show how often the actual value
fell inside. When that measured coverage misses the nominal level by more
than TOLERANCE, the interval is rescaled around the forecast, provided the
rescaled interval's cross-validated coverage (below) is closer to the level:

- the score of a backtest value is the factor by which the interval's
  half-width on its side must grow (or may shrink) to reach it,
  ``(y - yhat) / (upper - yhat)`` above the forecast, ``(yhat - y) / (yhat - lower)`` below;
- the factor for level ``a`` is the ``ceil((N + 1) a) / N`` empirical quantile
  of the N scores, which covers at least ``a`` of exchangeable new values;
- the recalibrated bounds are ``yhat +/- factor * half-width``.

Scaling the model's own half-width keeps its shape: wider far ahead,
wider where the level (on the log scale) is higher. Intervals too wide are
narrowed as well, because an interval that covers 97 % when 80 % is asked
sizes the fleet for more demand than the planner chose.

The coverage stored with a forecast is measured honestly: with two or more
folds, each fold is scored with the factor computed from the other folds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from forecasting.models.base import Prediction

__all__ = ["TOLERANCE", "Calibration", "calibrate", "apply_calibration", "no_calibration"]

TOLERANCE = 0.05                  # accepted gap between measured and nominal coverage
HALF_WIDTH_FLOOR = 1e-9           # relative to the mean absolute value, so zero-width intervals still scale


@dataclass(frozen=True)
class Calibration:
    """Per level: the half-width factor, the coverage of the model's own intervals and of the stored ones.

    ``method`` is ``conformal`` when any level was rescaled, else ``model``.
    ``in_sample`` is True when only one fold existed, so the stored coverage
    was measured on the same errors that set the factor (optimistic).
    """

    factors: dict[float, float]
    raw_coverage: dict[float, float]
    coverage: dict[float, float]
    method: str
    in_sample: bool = False


def no_calibration(levels: tuple[float, ...], coverage: float = float("nan")) -> Calibration:
    """Return a calibration that leaves intervals as they are, with ``coverage`` for every level."""
    return Calibration(
        factors={level: 1.0 for level in levels},
        raw_coverage={level: coverage for level in levels},
        coverage={level: coverage for level in levels},
        method="model",
    )


def calibrate(actuals: list[np.ndarray], predictions: list[Prediction], levels: tuple[float, ...]) -> Calibration:
    """Measure the coverage of backtest ``predictions`` against ``actuals`` (one pair per fold) and rescale if needed."""
    factors: dict[float, float] = {}
    raw: dict[float, float] = {}
    measured: dict[float, float] = {}
    floor = HALF_WIDTH_FLOOR * (1.0 + float(np.nanmean(np.abs(np.concatenate(actuals)))))
    in_sample = len(actuals) < 2
    for level in levels:
        fold_scores = [_scores(actual, prediction, level, floor) for actual, prediction in zip(actuals, predictions)]
        pooled = np.concatenate(fold_scores)
        raw_coverage = float(np.mean(pooled <= 1.0)) if pooled.size else float("nan")
        raw[level] = raw_coverage
        if not pooled.size or abs(raw_coverage - level) <= TOLERANCE:
            factors[level] = 1.0
            measured[level] = raw_coverage
            continue
        factor = _conformal_quantile(pooled, level)
        if in_sample:
            factors[level] = factor
            measured[level] = float(np.mean(pooled <= factor))
            continue
        inside = 0
        for k, scores in enumerate(fold_scores):
            others = np.concatenate([s for j, s in enumerate(fold_scores) if j != k])
            inside += int(np.sum(scores <= _conformal_quantile(others, level)))
        cross_validated = inside / pooled.size
        # Folds that disagree (a calm month, then a busy one) can make the recalibrated
        # intervals miss by more than the model's own did. Then the model's intervals stay.
        if abs(cross_validated - level) < abs(raw_coverage - level):
            factors[level] = factor
            measured[level] = cross_validated
        else:
            factors[level] = 1.0
            measured[level] = raw_coverage
    method = "conformal" if any(factor != 1.0 for factor in factors.values()) else "model"
    return Calibration(factors, raw, measured, method, in_sample=in_sample and method == "conformal")


def apply_calibration(prediction: Prediction, calibration: Calibration) -> Prediction:
    """Return ``prediction`` with each level's half-widths multiplied by its factor."""
    bounds = {}
    for level, (lower, upper) in prediction.bounds.items():
        factor = calibration.factors.get(level, 1.0)
        if factor == 1.0:
            bounds[level] = (lower, upper)
            continue
        mean = prediction.mean
        bounds[level] = (mean - factor * (mean - lower), mean + factor * (upper - mean))
    return Prediction(mean=prediction.mean, bounds=_nested(bounds))


def _scores(actual: np.ndarray, prediction: Prediction, level: float, floor: float) -> np.ndarray:
    observed = np.isfinite(actual)
    y = actual[observed]
    mean = prediction.mean[observed]
    lower, upper = (bound[observed] for bound in prediction.bounds[level])
    above = y >= mean
    half_width = np.where(above, upper - mean, mean - lower)
    return np.abs(y - mean) / np.maximum(half_width, floor)


def _conformal_quantile(scores: np.ndarray, level: float) -> float:
    count = len(scores)
    rank = min(count, math.ceil((count + 1) * level))
    return float(np.sort(scores)[rank - 1])


def _nested(bounds: dict[float, tuple[np.ndarray, np.ndarray]]) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Widen wider levels where needed so that each level's interval contains the narrower ones."""
    ordered = sorted(bounds)
    for narrow, wide in zip(ordered, ordered[1:]):
        lower = np.minimum(bounds[wide][0], bounds[narrow][0])
        upper = np.maximum(bounds[wide][1], bounds[narrow][1])
        bounds[wide] = (lower, upper)
    return bounds
