"""Model selection by rolling-origin backtests, and the final forecast of the chosen model.

Every candidate is backtested on the series' own history
(:mod:`forecasting.backtest`). The winner has the lowest mean MASE; the
median of the best ENSEMBLE_SIZE models competes as one more candidate,
scored on the same folds from its members' fold forecasts. The winner is
refitted on the whole history, its intervals are recalibrated when the
backtests show they miss their coverage (:mod:`forecasting.conformal`), and
every output value is checked to be finite. The calibration uses the
model-choice folds plus older blocks, up to CALIBRATION_FOLDS in all, on
which only the winner is refitted. A winner's errors on the folds that
chose it tend to be smaller than on new data, and more blocks show better
how much the errors vary from one block to the next.

Special cases, each logged:

- a constant history gives a constant forecast with zero-width intervals;
- a season with fewer than two cycles in the history is dropped (WARNING
  when it is the primary season, such as six values with a season of six);
- a history too short for even one backtest fold gets the naive forecast
  (the last value repeated) with a WARNING.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from capplan.errors import InputDataError
from forecasting.backtest import (
    DEFAULT_FOLDS,
    FIT_ERRORS,
    FoldPlan,
    FoldScore,
    ModelBacktest,
    ProgressCallback,
    calibration_origins,
    mase_scale,
    plan_folds,
    run_backtests,
    score_fold,
)
from forecasting.conformal import Calibration, apply_calibration, calibrate, no_calibration
from forecasting.models import DEFAULT_CANDIDATES, LEVELS, Forecaster, MedianEnsemble, Prediction, make_forecaster
from forecasting.models.ensemble import median_prediction
from forecasting.models.ets import MAX_SEASON as ETS_MAX_SEASON
from forecasting.models.seasonal_naive import SeasonalNaive

__all__ = ["ENSEMBLE_SIZE", "Selection", "select_and_forecast"]

logger = logging.getLogger(__name__)

ENSEMBLE_SIZE = 3
MIN_TRAIN_EXTRA = 4               # values beyond two primary seasons that the shortest backtest fold fits on
MIN_TRAIN_WITHOUT_SEASON = 8


@dataclass(frozen=True)
class Selection:
    """The chosen model's forecast, the backtest evidence behind the choice, and the interval calibration.

    ``scores`` has one row per model and fold (model, fold, origin,
    train_points, test_points, mae, mase, coverage_80, coverage_95, selected).
    ``summary`` has one row per model with its mean MASE and coverage, or
    the reason it was rejected.
    """

    model: str
    winner: str
    prediction: Prediction
    calibration: Calibration
    scores: pd.DataFrame
    summary: pd.DataFrame
    mase: float | None
    reason: str
    backtest_horizon: int
    folds: int
    params: dict[str, Any] = field(default_factory=dict)


def select_and_forecast(
    y: pd.Series,
    seasons: tuple[int, ...],
    horizon: int,
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES,
    levels: tuple[float, ...] = LEVELS,
    folds: int = DEFAULT_FOLDS,
    model_options: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    context: str = "",
) -> Selection:
    """Choose a model for ``y`` by backtests and forecast ``horizon`` steps with it.

    ``y`` is a float series on a regular DatetimeIndex (NaN for gaps) and
    ``seasons`` are season lengths in steps, shortest first. ``context``
    (such as ``daily peaks of 'web'``) prefixes log lines. Every value of the
    returned prediction is finite. Raises InputDataError when ``y`` has no
    observed value.
    """
    values = y.to_numpy(dtype=float)
    observed = values[np.isfinite(values)]
    prefix = f"{context}: " if context else ""
    if observed.size == 0:
        raise InputDataError(f"{prefix}the series has no observed values; every sample is missing")
    nonnegative = bool((observed >= 0).all())

    if float(np.ptp(observed)) == 0.0:
        logger.info("%sthe history is constant at %g; forecasting that value with zero-width intervals", prefix, observed[0])
        return _constant(float(observed[0]), horizon, levels)

    seasons = _seasons_with_two_cycles(seasons, len(values), prefix)
    primary = seasons[0] if seasons else None
    min_train = 2 * primary + MIN_TRAIN_EXTRA if primary else MIN_TRAIN_WITHOUT_SEASON
    plan = plan_folds(len(values), horizon, min_train, folds)
    if plan is None:
        logger.warning(
            "%sthe history of %d values is too short to backtest any model (a fold needs %d values to fit and 1 to "
            "score); forecasting with the naive method (the last value repeated)",
            prefix, len(values), min_train,
        )
        return _naive(y, horizon, levels, nonnegative)

    forecasters = _candidates(candidates, seasons, model_options or {}, prefix)
    results = run_backtests(y, forecasters, plan, primary, levels, progress)
    valid = [result for result in results.values() if not result.rejected and result.scores]
    if not valid:
        logger.warning("%severy model failed in the backtests; forecasting with the naive method", prefix)
        return _naive(y, horizon, levels, nonnegative)

    ranked = sorted(valid, key=lambda result: result.mean_mase)
    if len(ranked) >= ENSEMBLE_SIZE:
        ensemble = _ensemble_backtest(ranked[:ENSEMBLE_SIZE], values, plan, primary)
        results[ensemble.name] = ensemble
        ranked = sorted([*ranked, ensemble], key=lambda result: result.mean_mase)

    for position, chosen in enumerate(ranked):
        forecaster = _final_forecaster(chosen, forecasters)
        try:
            prediction = forecaster.fit(y).predict(horizon, levels)
        except FIT_ERRORS as exc:
            logger.warning("%sthe final fit of %s failed (%s); trying the next best model", prefix, chosen.name, exc)
            continue
        if not prediction.is_finite():
            logger.warning("%s%s returned NaN or infinite values on the whole history; trying the next best model", prefix, chosen.name)
            continue
        actuals, fold_predictions = _calibration_folds(y, chosen, forecasters, plan, min_train, levels, prefix)
        calibration = calibrate(actuals, fold_predictions, levels)
        prediction = apply_calibration(prediction, calibration)
        if nonnegative:
            prediction = prediction.clipped(0.0)
        reason = _reason(chosen, ranked, position, forecaster, calibration, levels)
        logger.info("%s%s", prefix, reason)
        return Selection(
            model=forecaster.label,
            winner=chosen.name,
            prediction=prediction,
            calibration=calibration,
            scores=_scores_frame(results, chosen.name, levels),
            summary=_summary_frame(results, chosen.name, levels),
            mase=chosen.mean_mase,
            reason=reason,
            backtest_horizon=plan.horizon,
            folds=len(plan.origins),
            params={"seasons": list(seasons), **forecaster.params},
        )
    logger.warning("%sno model could forecast the whole history; forecasting with the naive method", prefix)
    return _naive(y, horizon, levels, nonnegative)


def _seasons_with_two_cycles(seasons: tuple[int, ...], n: int, prefix: str) -> tuple[int, ...]:
    kept = tuple(m for m in seasons if n >= 2 * m)
    for m in seasons:
        if m in kept:
            continue
        log = logger.warning if m == seasons[0] else logger.info
        log(
            "%sa season of %d steps needs at least %d values (two cycles) to be estimated, but the history has %d; "
            "the season is left out",
            prefix, m, 2 * m, n,
        )
    return kept


def _candidates(names: tuple[str, ...], seasons: tuple[int, ...], options: dict[str, Any], prefix: str) -> dict[str, Forecaster]:
    forecasters: dict[str, Forecaster] = {}
    for name in names:
        if name == "ets_damped" and seasons and seasons[0] > ETS_MAX_SEASON:
            logger.info(
                "%sets_damped left out: its season is limited to %d steps and the primary season has %d",
                prefix, ETS_MAX_SEASON, seasons[0],
            )
            continue
        if name == "multi_seasonal" and not seasons:
            logger.info("%smulti_seasonal left out: the history supports no season", prefix)
            continue
        forecasters[name] = make_forecaster(name, seasons, **options)
    return forecasters


def _ensemble_backtest(members: list[ModelBacktest], values: np.ndarray, plan: FoldPlan, season: int | None) -> ModelBacktest:
    ensemble = ModelBacktest(
        name="median_ensemble",
        label=f"median({', '.join(m.label for m in members)})",
        members=tuple(member.name for member in members),
    )
    for fold, origin in enumerate(plan.origins):
        prediction = median_prediction([member.predictions[fold] for member in members])
        actual = values[origin : origin + plan.horizon]
        count, mae, mase, coverage = score_fold(actual, prediction, mase_scale(values[:origin], season))
        ensemble.predictions.append(prediction)
        origin_ts = members[0].scores[fold].origin
        ensemble.scores.append(FoldScore(ensemble.name, fold + 1, origin_ts, origin, count, mae, mase, coverage))
    return ensemble


def _calibration_folds(
    y: pd.Series,
    chosen: ModelBacktest,
    forecasters: dict[str, Forecaster],
    plan: FoldPlan,
    min_train: int,
    levels: tuple[float, ...],
    prefix: str,
) -> tuple[list[np.ndarray], list[Prediction]]:
    """Return the actual values and the chosen model's forecasts of every calibration fold, oldest first.

    The model-choice folds come from the backtests; each older block
    (:func:`forecasting.backtest.calibration_origins`) costs one more fit of
    the chosen model. An older block the model cannot fit or forecast with
    finite values is skipped, because the model already passed the
    model-choice folds and the whole history.
    """
    values = y.to_numpy(dtype=float)
    actuals = [values[origin : origin + plan.horizon] for origin in plan.origins]
    predictions = list(chosen.predictions)
    for origin in reversed(calibration_origins(plan, min_train)):
        forecaster = _final_forecaster(chosen, forecasters)
        try:
            prediction = forecaster.fit(y.iloc[:origin]).predict(plan.horizon, levels)
        except FIT_ERRORS as exc:
            logger.info("%s%s skipped the calibration fold at %d values: %s", prefix, chosen.name, origin, exc)
            continue
        if not prediction.is_finite():
            logger.info("%s%s returned NaN or infinite values on the calibration fold at %d values", prefix, chosen.name, origin)
            continue
        actuals.insert(0, values[origin : origin + plan.horizon])
        predictions.insert(0, prediction)
    return actuals, predictions


def _final_forecaster(chosen: ModelBacktest, forecasters: dict[str, Forecaster]) -> Forecaster:
    if chosen.name == "median_ensemble":
        return MedianEnsemble([forecasters[name].clone() for name in chosen.members])
    return forecasters[chosen.name].clone()


def _reason(
    chosen: ModelBacktest,
    ranked: list[ModelBacktest],
    position: int,
    forecaster: Forecaster,
    calibration: Calibration,
    levels: tuple[float, ...],
) -> str:
    others = [f"{result.name} {result.mean_mase:.3f}" for result in ranked if result is not chosen][:3]
    folds = len(chosen.scores)
    text = f"chose {forecaster.label}: mean MASE {chosen.mean_mase:.3f} over {folds} backtest fold{'s' if folds != 1 else ''}"
    if others:
        text += f", ahead of {', '.join(others)}"
    if position:
        text += f" (the {position} better-scored model(s) failed on the whole history)"
    coverage = ", ".join(
        f"the {round(level * 100)} % interval covered {calibration.raw_coverage[level]:.0%}"
        + (f", {calibration.coverage[level]:.0%} after recalibration" if calibration.factors[level] != 1.0 else "")
        + (f" ({calibration.notes[level]})" if level in calibration.notes else "")
        for level in levels
    )
    return f"{text}; over {calibration.folds} calibration fold{'s' if calibration.folds != 1 else ''}, {coverage}"


def _scores_frame(results: dict[str, ModelBacktest], winner: str, levels: tuple[float, ...]) -> pd.DataFrame:
    rows = []
    for result in results.values():
        for score in result.scores:
            row = {
                "model": result.name, "fold": score.fold, "origin": score.origin, "train_points": score.train_points,
                "test_points": score.test_points, "mae": score.mae, "mase": score.mase, "selected": result.name == winner,
            }
            for level in levels:
                row[f"coverage_{round(level * 100)}"] = score.coverage[level]
            rows.append(row)
    return pd.DataFrame(rows)


def _summary_frame(results: dict[str, ModelBacktest], winner: str, levels: tuple[float, ...]) -> pd.DataFrame:
    rows = []
    for result in results.values():
        row: dict[str, Any] = {"model": result.name, "label": result.label, "mase": result.mean_mase, "selected": result.name == winner}
        for level in levels:
            row[f"coverage_{round(level * 100)}"] = result.mean_coverage(level)
        row["rejected"] = result.rejected
        rows.append(row)
    return pd.DataFrame(rows).sort_values("mase", na_position="last").reset_index(drop=True)


def _constant(value: float, horizon: int, levels: tuple[float, ...]) -> Selection:
    mean = np.full(horizon, value)
    prediction = Prediction(mean=mean, bounds={level: (mean.copy(), mean.copy()) for level in levels})
    return Selection(
        model="constant", winner="constant", prediction=prediction, calibration=no_calibration(levels, 1.0),
        scores=pd.DataFrame(), summary=pd.DataFrame(), mase=None,
        reason=f"the history is constant at {value:g}", backtest_horizon=0, folds=0, params={"value": value},
    )


def _naive(y: pd.Series, horizon: int, levels: tuple[float, ...], nonnegative: bool) -> Selection:
    forecaster = SeasonalNaive(())
    prediction = forecaster.fit(y).predict(horizon, levels)
    if nonnegative:
        prediction = prediction.clipped(0.0)
    return Selection(
        model="naive", winner="naive", prediction=prediction, calibration=no_calibration(levels),
        scores=pd.DataFrame(), summary=pd.DataFrame(), mase=None,
        reason="the history is too short to backtest; the last value is repeated", backtest_horizon=0, folds=0,
        params=forecaster.params,
    )
