"""Recalibration of prediction intervals from backtest errors (split conformal prediction over blocks).

A model's own intervals assume its error model is right, and on real traffic
they are often too narrow or too wide. The backtests show how often the
actual value fell inside. When that measured coverage misses the nominal
level by more than TOLERANCE, the interval is rescaled around the forecast,
provided the rescaled interval's cross-validated coverage (below) is closer
to the level:

- the score of a backtest value is the factor by which the interval's
  half-width on its side must grow (or may shrink) to reach it,
  ``(y - yhat) / (upper - yhat)`` above the forecast, ``(yhat - y) / (yhat - lower)`` below;
- the factor for level ``a`` is the empirical quantile of the pooled scores
  at a calibrated level ``a' >= a``, with the finite-sample rank
  ``ceil((N + 1) a')`` of N scores;
- the recalibrated bounds are ``yhat +/- factor * half-width``.

Why a calibrated level instead of ``a`` itself: the scores of one backtest
fold come from one block of consecutive steps, so they are strongly
correlated. A calm block and a busy one are two samples, not hundreds, and
the pooled ``a`` quantile then covers the next block less often than ``a``.
Treating folds as the exchangeable units, ``a'`` is the smallest level at
which leaving each fold out in turn and scoring it with the quantile of the
other folds covers at least ``a`` of the held-out values. When the folds
agree, ``a' = a``; the more they disagree, the wider the interval.

Scaling the model's own half-width keeps its shape: wider far ahead,
wider where the level (on the log scale) is higher. Intervals too wide are
narrowed as well, because an interval that covers 97 % when 80 % is asked
sizes the fleet for more demand than the planner chose. Narrowing needs
evidence, so it is skipped (the interval is only widened) when:

- only one fold has observed values, so no fold can be left out;
- there are fewer than ``a / (1 - a)`` scores (4 at 80 %, 19 at 95 %), so
  the finite-sample quantile does not exist and the largest score is used;
- a step lies beyond the backtest horizon, where no error was measured: the
  factor returns linearly to 1 over one more backtest horizon and stays at 1
  after that, while a widening factor is kept for the whole forecast.

The coverage stored with a forecast is measured honestly: with two or more
folds, each fold is scored with the factor computed from the other folds
alone, including the choice of ``a'``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from forecasting.models.base import Prediction

__all__ = ["TOLERANCE", "Calibration", "calibrate", "apply_calibration", "no_calibration", "step_factors"]

TOLERANCE = 0.05                  # accepted gap between measured and nominal coverage
HALF_WIDTH_FLOOR = 1e-9           # relative to the mean absolute value, so zero-width intervals still scale
LEVEL_SEARCH_STEPS = 30           # bisection steps for the calibrated level: a resolution of 2**-30, far below one rank


@dataclass(frozen=True)
class Calibration:
    """Per level: the half-width factor, the coverage of the model's own intervals and of the stored ones.

    ``method`` is ``conformal`` when any level was rescaled, else ``model``.
    ``in_sample`` is True when only one fold existed, so the stored coverage
    was measured on the same errors that set the factor (optimistic).
    ``quantile_levels`` holds the calibrated level ``a'`` each factor is the
    pooled quantile at, ``folds`` the backtest folds the scores came from,
    ``horizon`` the steps each fold forecast (the factor is measured only
    that far ahead) and ``notes`` contains, per level, why a factor was limited.
    """

    factors: dict[float, float]
    raw_coverage: dict[float, float]
    coverage: dict[float, float]
    method: str
    in_sample: bool = False
    quantile_levels: dict[float, float] = field(default_factory=dict)
    folds: int = 0
    horizon: int = 0
    notes: dict[float, str] = field(default_factory=dict)


def no_calibration(levels: tuple[float, ...], coverage: float = float("nan")) -> Calibration:
    """Return a calibration that leaves intervals as they are, with ``coverage`` for every level."""
    return Calibration(
        factors={level: 1.0 for level in levels},
        raw_coverage={level: coverage for level in levels},
        coverage={level: coverage for level in levels},
        method="model",
    )


def calibrate(actuals: list[np.ndarray], predictions: list[Prediction], levels: tuple[float, ...]) -> Calibration:
    """Measure the coverage of backtest ``predictions`` against ``actuals`` (one pair per fold) and rescale if needed.

    Every fold must forecast the same number of steps; that number is the
    horizon over which the factors were measured.
    """
    factors: dict[float, float] = {}
    raw: dict[float, float] = {}
    measured: dict[float, float] = {}
    quantile_levels: dict[float, float] = {}
    notes: dict[float, str] = {}
    floor = HALF_WIDTH_FLOOR * (1.0 + float(np.nanmean(np.abs(np.concatenate(actuals)))))
    in_sample = False
    for level in levels:
        fold_scores = [_scores(actual, prediction, level, floor) for actual, prediction in zip(actuals, predictions)]
        fold_scores = [scores for scores in fold_scores if scores.size]
        pooled = np.concatenate(fold_scores) if fold_scores else np.empty(0)
        raw_coverage = float(np.mean(pooled <= 1.0)) if pooled.size else float("nan")
        raw[level] = raw_coverage
        factors[level], measured[level], quantile_levels[level] = 1.0, raw_coverage, level
        if not pooled.size or abs(raw_coverage - level) <= TOLERANCE:
            continue

        if len(fold_scores) < 2:
            # No fold can be left out, so the coverage of a narrower interval could only be
            # measured on the errors that set it. Widening is the safe side of that doubt.
            factor = _conformal_quantile(pooled, level)
            if factor > 1.0:
                factors[level], measured[level], in_sample = factor, float(np.mean(pooled <= factor)), True
                notes[level] = "one backtest fold: widened, coverage measured on the errors that set the factor"
            else:
                notes[level] = "one backtest fold: too few to narrow the interval"
            continue

        quantile_level = _calibrated_level(fold_scores, level)
        factor = _conformal_quantile(pooled, quantile_level)
        if not _quantile_exists(pooled.size, level):
            factor = max(1.0, factor)
            notes[level] = (
                f"{pooled.size} backtest errors, fewer than the {_scores_needed(level)} a {level:.0%} conformal "
                "quantile needs: the largest error sets the factor and the interval is never narrowed"
            )
        cross_validated = _cross_validated_coverage(fold_scores, level)
        # Folds that disagree (a calm month, then a busy one) can make the recalibrated
        # intervals miss by more than the model's own did. Then the model's intervals stay.
        if factor != 1.0 and abs(cross_validated - level) < abs(raw_coverage - level):
            factors[level], measured[level], quantile_levels[level] = factor, cross_validated, quantile_level
    method = "conformal" if any(factor != 1.0 for factor in factors.values()) else "model"
    horizon = max((len(actual) for actual in actuals), default=0)
    return Calibration(
        factors, raw, measured, method, in_sample=in_sample,
        quantile_levels=quantile_levels, folds=len(actuals), horizon=horizon, notes=notes,
    )


def step_factors(factor: float, steps: int, measured_horizon: int) -> np.ndarray:
    """Return the half-width factor of each of ``steps`` steps ahead, given the horizon the backtests measured.

    A factor above 1 holds for every step: the model's own widening continues
    beyond the backtests, scaled. A factor below 1 (narrowing) holds up to
    ``measured_horizon``, returns linearly to 1 over the next
    ``measured_horizon`` steps and is 1 after that, because no backtest error
    shows that the model's intervals are too wide that far ahead. The ramp avoids
    a jump in the band at the end of the backtest horizon.
    """
    factors = np.full(steps, float(factor))
    if factor >= 1.0 or measured_horizon <= 0 or steps <= measured_horizon:
        return factors
    beyond = np.arange(1, steps - measured_horizon + 1) / measured_horizon
    factors[measured_horizon:] = factor + (1.0 - factor) * np.minimum(beyond, 1.0)
    return factors


def apply_calibration(prediction: Prediction, calibration: Calibration) -> Prediction:
    """Return ``prediction`` with each level's half-widths multiplied by its factor (see :func:`step_factors`)."""
    bounds = {}
    steps = len(prediction.mean)
    for level, (lower, upper) in prediction.bounds.items():
        factor = calibration.factors.get(level, 1.0)
        if factor == 1.0:
            bounds[level] = (lower, upper)
            continue
        scale = step_factors(factor, steps, calibration.horizon)
        mean = prediction.mean
        bounds[level] = (mean - scale * (mean - lower), mean + scale * (upper - mean))
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
    return _sorted_quantile(np.sort(scores), level)


def _sorted_quantile(sorted_scores: np.ndarray, level: float) -> float:
    """Return the finite-sample conformal quantile, rank ceil((N + 1) level), capped at the largest of N scores."""
    count = len(sorted_scores)
    rank = min(count, max(1, math.ceil((count + 1) * level)))
    return float(sorted_scores[rank - 1])


def _scores_needed(level: float) -> int:
    """Return the fewest scores N for which rank ceil((N + 1) level) is at most N, about level / (1 - level)."""
    count = max(1, math.floor(level / (1.0 - level)) - 1)   # start below the bound, so rounding cannot skip it
    while not _quantile_exists(count, level):
        count += 1
    return count


def _quantile_exists(count: int, level: float) -> bool:
    return math.ceil((count + 1) * level) <= count


def _calibrated_level(fold_scores: list[np.ndarray], level: float) -> float:
    """Return the smallest level a' >= ``level`` whose leave-one-fold-out coverage is at least ``level``.

    The coverage counts the held-out values at or below the other folds'
    pooled quantile at a'. It cannot fall as a' grows, so bisection finds a'.
    With fewer than two folds nothing can be left out and ``level`` is returned.
    When even the largest score of the other folds misses, a' is 1 (the
    largest pooled score).
    """
    if len(fold_scores) < 2:
        return level
    held_out = [np.sort(scores) for scores in fold_scores]
    others = [np.sort(np.concatenate(fold_scores[:k] + fold_scores[k + 1 :])) for k in range(len(fold_scores))]
    total = sum(len(scores) for scores in held_out)

    def coverage(candidate: float) -> float:
        inside = 0
        for scores, rest in zip(held_out, others):
            inside += int(np.searchsorted(scores, _sorted_quantile(rest, candidate), side="right"))
        return inside / total

    if coverage(level) >= level:
        return level
    if coverage(1.0) < level:
        return 1.0
    low, high = level, 1.0
    for _ in range(LEVEL_SEARCH_STEPS):
        middle = (low + high) / 2.0
        if coverage(middle) >= level:
            high = middle
        else:
            low = middle
    return high


def _cross_validated_coverage(fold_scores: list[np.ndarray], level: float) -> float:
    """Return the share of backtest values inside the interval recalibrated from the other folds only.

    For each fold, a' is chosen on the other folds (when two or more remain)
    and the fold is scored with their pooled quantile at a', so the estimate
    does not reuse the held-out fold in any step.
    """
    inside = 0
    total = 0
    for k, scores in enumerate(fold_scores):
        rest = fold_scores[:k] + fold_scores[k + 1 :]
        factor = _conformal_quantile(np.concatenate(rest), _calibrated_level(rest, level))
        # The same limits as in calibrate: with one fold left, or too few scores, intervals only widen.
        if len(rest) < 2 or not _quantile_exists(sum(len(scores) for scores in rest), level):
            factor = max(1.0, factor)
        inside += int(np.sum(scores <= factor))
        total += len(scores)
    return inside / total


def _nested(bounds: dict[float, tuple[np.ndarray, np.ndarray]]) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Widen wider levels where needed so that each level's interval contains the narrower ones."""
    ordered = sorted(bounds)
    for narrow, wide in zip(ordered, ordered[1:]):
        lower = np.minimum(bounds[wide][0], bounds[narrow][0])
        upper = np.maximum(bounds[wide][1], bounds[narrow][1])
        bounds[wide] = (lower, upper)
    return bounds
