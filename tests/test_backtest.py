"""Rolling-origin folds, MASE, conformal recalibration and the model choice."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from forecasting.backtest import DEFAULT_FOLDS, mase_scale, plan_folds, score_fold
from forecasting.conformal import apply_calibration, calibrate
from forecasting.models import Prediction
from forecasting.selection import select_and_forecast


def test_plan_folds_tile_history_end() -> None:
    plan = plan_folds(n=1000, horizon=50, min_train=100, folds=3)
    assert plan is not None
    assert plan.origins == (850, 900, 950)
    assert plan.horizon == 50


def test_plan_folds_horizon_capped() -> None:
    plan = plan_folds(n=365, horizon=365, min_train=18, folds=3)
    assert plan is not None
    assert plan.horizon == 73
    assert plan.origins == (146, 219, 292)


def test_plan_folds_fewer_when_short() -> None:
    plan = plan_folds(n=40, horizon=8, min_train=28, folds=3)
    assert plan is not None
    assert plan.origins == (32,)


def test_plan_folds_none_when_too_short() -> None:
    assert plan_folds(n=6, horizon=6, min_train=8) is None


def test_mase_scale_seasonal_then_fallbacks() -> None:
    assert mase_scale(np.array([1.0, 2.0, 1.0, 2.0, 1.0, 4.0]), 2) == pytest.approx(0.5)
    assert mase_scale(np.array([1.0, 2.0, 1.0, 2.0]), 2) == pytest.approx(1.0)  # no seasonal change: lag 1
    assert mase_scale(np.array([3.0, 3.0, 3.0]), 2) == pytest.approx(3.0)  # constant: mean absolute value
    assert mase_scale(np.zeros(4), 2) == 1.0


def test_score_fold_skips_missing() -> None:
    actual = np.array([10.0, np.nan, 14.0, 20.0])
    mean = np.array([11.0, 11.0, 12.0, 12.0])
    prediction = Prediction(mean=mean, bounds={0.8: (mean - 3.0, mean + 3.0)})
    count, mae, mase, coverage = score_fold(actual, prediction, scale=2.0)
    assert count == 3
    assert mae == pytest.approx(11.0 / 3)
    assert mase == pytest.approx(11.0 / 6)
    assert coverage[0.8] == pytest.approx(2 / 3)


def _too_narrow_folds(seed: int, folds: int = 3) -> tuple[list[np.ndarray], list[Prediction]]:
    """Folds whose actual errors have sd 1 while the model's 80 % half-width assumes sd 0.5."""
    rng = np.random.default_rng(seed)
    actuals, predictions = [], []
    for _ in range(folds):
        mean = np.full(400, 100.0)
        actuals.append(mean + rng.normal(0.0, 1.0, 400))
        half_80, half_95 = 1.2816 * 0.5, 1.96 * 0.5
        predictions.append(Prediction(mean=mean, bounds={0.8: (mean - half_80, mean + half_80), 0.95: (mean - half_95, mean + half_95)}))
    return actuals, predictions


def test_conformal_widens_narrow_intervals() -> None:
    actuals, predictions = _too_narrow_folds(seed=1)
    calibration = calibrate(actuals, predictions, (0.8, 0.95))
    assert calibration.raw_coverage[0.8] < 0.6
    assert calibration.method == "conformal"
    assert calibration.factors[0.8] == pytest.approx(2.0, rel=0.1)
    assert 0.75 <= calibration.coverage[0.8] <= 0.85
    assert 0.92 <= calibration.coverage[0.95] <= 0.98

    fresh_actual, fresh_prediction = (part[0] for part in _too_narrow_folds(seed=2, folds=1))
    recalibrated = apply_calibration(fresh_prediction, calibration)
    lower, upper = recalibrated.bounds[0.8]
    assert 0.75 <= np.mean((fresh_actual >= lower) & (fresh_actual <= upper)) <= 0.85


def test_conformal_keeps_good_intervals() -> None:
    rng = np.random.default_rng(4)
    mean = np.full(600, 50.0)
    actual = mean + rng.normal(0.0, 2.0, 600)
    prediction = Prediction(mean=mean, bounds={0.8: (mean - 1.2816 * 2.0, mean + 1.2816 * 2.0)})
    calibration = calibrate([actual[:300], actual[300:]], [prediction.head(300), prediction.head(300)], (0.8,))
    assert calibration.method == "model"
    assert calibration.factors[0.8] == 1.0
    assert calibration.coverage[0.8] == calibration.raw_coverage[0.8]


def test_selection_picks_seasonal_model_and_logs_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="forecasting.selection")
    index = pd.date_range("2025-01-06", periods=42 * 24, freq="h")
    rng = np.random.default_rng(7)
    hours = np.arange(len(index))
    values = 100 + 40 * np.sin(2 * np.pi * hours / 24) + 0.05 * hours + rng.normal(0, 2, len(index))
    selection = select_and_forecast(pd.Series(values, index=index), (24, 168), 48)
    assert selection.winner != "seasonal_naive"
    assert selection.mase is not None and selection.mase < 1.0
    assert selection.folds == DEFAULT_FOLDS
    assert set(selection.scores["fold"]) == set(range(1, DEFAULT_FOLDS + 1))
    assert selection.scores.loc[selection.scores["selected"], "model"].unique().tolist() == [selection.winner]
    assert f"chose {selection.model}: mean MASE" in caplog.text


def test_selection_constant_zero_width(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="forecasting.selection")
    series = pd.Series(7.0, index=pd.date_range("2025-01-01", periods=100, freq="h"))
    selection = select_and_forecast(series, (24,), 12)
    assert selection.model == "constant"
    assert selection.prediction.mean.tolist() == [7.0] * 12
    for lower, upper in selection.prediction.bounds.values():
        assert (upper - lower == 0.0).all()
    assert "the history is constant at 7" in caplog.text
