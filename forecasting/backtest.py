"""Rolling-origin backtests: refit each model on the history up to an origin and score the next steps.

The folds' test windows are the last ``folds`` blocks of ``horizon`` steps,
so every fold forecasts as far ahead as the others, and the latest fold ends
at the last value. Each model is refitted from scratch at each origin.

Scores per fold:

- MASE: the mean absolute error over the test window divided by the mean
  absolute seasonal difference (lag = primary season, 1 without one) of the
  fold's training history. Seasonal naive therefore scores about 1, and a
  model below 1 beats it. A training history without seasonal change falls
  back to lag-1 differences, then to the mean absolute value, then to 1.
- coverage at each level: the fraction of test values inside the interval.

Missing test values (NaN) are left out of every score.

Interval calibration (:mod:`forecasting.conformal`) needs more blocks than
model choice does, so :func:`calibration_origins` adds older blocks of the
same horizon, up to CALIBRATION_FOLDS in all, on which only the chosen model
is refitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capplan.errors import InputDataError
from forecasting.models.base import LEVELS, Forecaster, Prediction

__all__ = [
    "DEFAULT_FOLDS",
    "FoldPlan",
    "FoldScore",
    "ModelBacktest",
    "ProgressCallback",
    "CALIBRATION_FOLDS",
    "calibration_origins",
    "plan_folds",
    "mase_scale",
    "score_fold",
    "run_backtests",
]

logger = logging.getLogger(__name__)

# Six folds: on the real series of bench/forecast_accuracy.py they chose models with a mean MASE 6 %
# lower than three folds did, for about 1.3 times the time. A short history gets fewer (plan_folds).
DEFAULT_FOLDS = 6
HORIZON_SHARE = 5                 # a fold forecasts at most 1/5 of the history; plan_folds uses fewer folds to leave some to train on
# Folds that calibrate the chosen model's intervals, the model-choice folds included. The errors
# within one fold are one block of consecutive steps and move together, so the number of folds,
# not of errors, limits how well the next block's spread is known. Six lets each fold be left out
# while five others remain; with fewer model-choice folds the winner alone is fitted on older blocks.
CALIBRATION_FOLDS = 6

ProgressCallback = Callable[[int, int, str], None]   # (fits done, fits in total, model being fitted)
FIT_ERRORS = (InputDataError, ArithmeticError, ValueError, np.linalg.LinAlgError, RuntimeError)


@dataclass(frozen=True)
class FoldPlan:
    """Training lengths (origins) of each fold, oldest first, and the steps each fold forecasts."""

    origins: tuple[int, ...]
    horizon: int


@dataclass(frozen=True)
class FoldScore:
    """Scores of one model on one fold."""

    model: str
    fold: int
    origin: pd.Timestamp          # timestamp of the first forecast step
    train_points: int
    test_points: int              # non-missing values in the test window
    mae: float
    mase: float
    coverage: dict[float, float]


@dataclass
class ModelBacktest:
    """One model's fold forecasts and scores, or the reason it was rejected."""

    name: str
    label: str
    predictions: list[Prediction] = field(default_factory=list)
    scores: list[FoldScore] = field(default_factory=list)
    rejected: str | None = None
    members: tuple[str, ...] = ()  # the models an ensemble takes the median of

    @property
    def mean_mase(self) -> float:
        return float(np.mean([score.mase for score in self.scores])) if self.scores else float("nan")

    def mean_coverage(self, level: float) -> float:
        inside = sum(score.coverage[level] * score.test_points for score in self.scores)
        points = sum(score.test_points for score in self.scores)
        return inside / points if points else float("nan")


def plan_folds(n: int, horizon: int, min_train: int, folds: int = DEFAULT_FOLDS) -> FoldPlan | None:
    """Return the fold plan for ``n`` values, or None when not even one fold leaves ``min_train`` values to fit.

    The fold horizon is ``horizon`` capped at n / HORIZON_SHARE. When the
    folds would leave too little history, fewer folds are used, then a
    shorter horizon.
    """
    step_count = max(1, min(horizon, n // HORIZON_SHARE))
    for count in range(folds, 0, -1):
        if n - count * step_count >= min_train:
            return FoldPlan(tuple(n - k * step_count for k in range(count, 0, -1)), step_count)
    step_count = n - min_train
    if step_count >= 1:
        return FoldPlan((min_train,), step_count)
    return None


def calibration_origins(plan: FoldPlan, min_train: int, total: int = CALIBRATION_FOLDS) -> tuple[int, ...]:
    """Return the origins of older blocks of ``plan.horizon`` steps right before the plan's folds, oldest first.

    Together with the plan's folds they make at most ``total`` folds; each
    still leaves ``min_train`` values to fit on, so a short history gets
    fewer or none.
    """
    extra = []
    origin = plan.origins[0] - plan.horizon
    while len(plan.origins) + len(extra) < total and origin >= min_train:
        extra.append(origin)
        origin -= plan.horizon
    return tuple(reversed(extra))


def mase_scale(train: np.ndarray, season: int | None) -> float:
    """Return the MASE denominator of a training history (see the module docstring)."""
    for lag in (season or 1, 1):
        if len(train) > lag:
            differences = np.abs(train[lag:] - train[:-lag])
            differences = differences[np.isfinite(differences)]
            if differences.size and differences.mean() > 0:
                return float(differences.mean())
    observed = np.abs(train[np.isfinite(train)])
    if observed.size and observed.mean() > 0:
        return float(observed.mean())
    return 1.0


def score_fold(actual: np.ndarray, prediction: Prediction, scale: float) -> tuple[int, float, float, dict[float, float]]:
    """Return (test points, MAE, MASE, coverage per level) of a prediction against ``actual``."""
    observed = np.isfinite(actual)
    count = int(observed.sum())
    if count == 0:
        return 0, float("nan"), float("nan"), {level: float("nan") for level in prediction.bounds}
    errors = np.abs(actual[observed] - prediction.mean[observed])
    mae = float(errors.mean())
    coverage = {}
    for level, (lower, upper) in prediction.bounds.items():
        inside = (actual[observed] >= lower[observed]) & (actual[observed] <= upper[observed])
        coverage[level] = float(inside.mean())
    return count, mae, mae / scale, coverage


def run_backtests(
    y: pd.Series,
    forecasters: dict[str, Forecaster],
    plan: FoldPlan,
    scale_season: int | None,
    levels: tuple[float, ...] = LEVELS,
    progress: ProgressCallback | None = None,
) -> dict[str, ModelBacktest]:
    """Backtest each forecaster on each fold of ``plan`` and return the results by model name.

    A model whose fit raises a fitting error on any fold is rejected with the
    reason (logged at INFO). A model that returns NaN or infinite values is
    rejected too, with a WARNING, because it would do the same on the real
    forecast.
    """
    values = y.to_numpy(dtype=float)
    results: dict[str, ModelBacktest] = {}
    total = len(forecasters) * len(plan.origins)
    done = 0
    for name, prototype in forecasters.items():
        result = ModelBacktest(name=name, label=prototype.label)
        results[name] = result
        for fold, origin in enumerate(plan.origins):
            if progress is not None:
                progress(done, total, name)
            done += 1
            if result.rejected:
                continue
            forecaster = prototype.clone()
            try:
                prediction = forecaster.fit(y.iloc[:origin]).predict(plan.horizon, levels)
            except FIT_ERRORS as exc:
                result.rejected = f"fit failed on fold {fold + 1}: {exc}"
                logger.info("rejected %s: %s", name, result.rejected)
                continue
            if not prediction.is_finite():
                result.rejected = f"returned NaN or infinite values on fold {fold + 1}"
                logger.warning("rejected %s: it %s", name, result.rejected)
                continue
            result.label = forecaster.label
            actual = values[origin : origin + plan.horizon]
            scale = mase_scale(values[:origin], scale_season)
            count, mae, mase, coverage = score_fold(actual, prediction, scale)
            result.predictions.append(prediction)
            result.scores.append(
                FoldScore(name, fold + 1, pd.Timestamp(y.index[origin]), origin, count, mae, mase, coverage)
            )
    if progress is not None:
        progress(total, total, "")
    return results
