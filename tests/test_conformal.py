"""Interval recalibration when backtest errors move together within a fold, and its limits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capplan.units import parse_horizon
from forecasting.backtest import FoldPlan, calibration_origins
from forecasting.conformal import apply_calibration, calibrate, step_factors
from forecasting.forecast import NATIVE, ForecastOptions, forecast_values
from forecasting.models import Prediction
from forecasting.selection import select_and_forecast

BLOCK = 48                        # steps per backtest fold in the synthetic folds


def _flat_prediction(steps: int, sigma: float) -> Prediction:
    """A forecast of 100 with the Gaussian 80 % and 95 % intervals of errors with standard deviation ``sigma``."""
    mean = np.full(steps, 100.0)
    return Prediction(
        mean=mean,
        bounds={0.8: (mean - 1.2816 * sigma, mean + 1.2816 * sigma), 0.95: (mean - 1.96 * sigma, mean + 1.96 * sigma)},
    )


def _shifted_block(rng: np.random.Generator, shift_sd: float, noise_sd: float) -> np.ndarray:
    """One fold of actual values: a shift shared by the whole block plus independent noise per step."""
    return 100.0 + rng.normal(0.0, shift_sd) + rng.normal(0.0, noise_sd, BLOCK)


def test_calibration_covers_next_correlated_block() -> None:
    # Each block's errors share one shift (sd 4) and the model assumes sd 1, so its intervals are far
    # too narrow and three folds are three samples of the shift, not 144. Pooling the errors as if
    # independent covered about 74 % of the next block. 1000 seeded trials put the standard error near 0.01.
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(1000):
        blocks = [_shifted_block(rng, shift_sd=4.0, noise_sd=1.0) for _ in range(4)]
        calibration = calibrate(blocks[:3], [_flat_prediction(BLOCK, 1.0)] * 3, (0.8, 0.95))
        lower, upper = apply_calibration(_flat_prediction(BLOCK, 1.0), calibration).bounds[0.8]
        covered.append(np.mean((blocks[3] >= lower) & (blocks[3] <= upper)))
    assert abs(np.mean(covered) - 0.8) <= 0.035


def test_selection_covers_busy_and_calm_days() -> None:
    # Hourly demand with a daily cycle, days that are busier or calmer as a whole (sd 5) and hourly
    # noise (sd 1). Forecasting each next day from 21 to 41 days of history, 12 seeded series.
    covered = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        days = 42
        hours = np.arange(days * 24)
        day_level = np.repeat(rng.normal(0.0, 5.0, days), 24)
        values = 100 + 30 * np.sin(2 * np.pi * hours / 24) + day_level + rng.normal(0.0, 1.0, len(hours))
        y = pd.Series(values, index=pd.date_range("2025-01-06", periods=len(values), freq="h"))
        for origin_day in range(21, days):
            origin = origin_day * 24
            selection = select_and_forecast(y.iloc[:origin], (24,), 24, candidates=("theta",))
            lower, upper = selection.prediction.bounds[0.8]
            actual = y.iloc[origin : origin + 24].to_numpy()
            covered.append(np.mean((actual >= lower) & (actual <= upper)))
    assert len(covered) == 252
    assert 0.75 <= np.mean(covered) <= 0.85


def test_calibration_one_fold_only_widens() -> None:
    rng = np.random.default_rng(3)
    actual = 100.0 + rng.normal(0.0, 0.1, 200)
    wide = _flat_prediction(200, 5.0)
    calibration = calibrate([actual], [wide], (0.8,))
    assert calibration.raw_coverage[0.8] == 1.0
    assert calibration.factors[0.8] == 1.0
    assert calibration.method == "model"
    assert "one backtest fold" in calibration.notes[0.8]

    narrow = _flat_prediction(200, 0.02)
    calibration = calibrate([actual], [narrow], (0.8,))
    assert calibration.factors[0.8] > 1.0
    assert calibration.in_sample


def test_calibration_few_errors_never_narrows() -> None:
    # Two folds of two values: 4 errors, and a 95 % conformal quantile needs 19.
    actuals = [np.array([100.1, 99.9]), np.array([100.05, 99.95])]
    predictions = [_flat_prediction(2, 5.0)] * 2
    calibration = calibrate(actuals, predictions, (0.8, 0.95))
    assert calibration.factors[0.95] == 1.0
    assert "fewer than the 19" in calibration.notes[0.95]
    assert 0.8 not in calibration.notes             # 4 errors are enough for an 80 % quantile

    calibration = calibrate([actuals[0], actuals[1][:1]], [predictions[0], predictions[1].head(1)], (0.8,))
    assert calibration.factors[0.8] == 1.0
    assert "3 backtest errors, fewer than the 4" in calibration.notes[0.8]


def test_calibration_narrows_agreeing_folds() -> None:
    rng = np.random.default_rng(5)
    actuals = [100.0 + rng.normal(0.0, 1.0, BLOCK) for _ in range(6)]
    calibration = calibrate(actuals, [_flat_prediction(BLOCK, 3.0)] * 6, (0.8,))
    assert calibration.raw_coverage[0.8] > 0.95
    assert calibration.factors[0.8] == pytest.approx(1.0 / 3.0, rel=0.2)
    assert calibration.quantile_levels[0.8] == pytest.approx(0.8, abs=0.05)
    assert 0.75 <= calibration.coverage[0.8] <= 0.85
    assert calibration.folds == 6
    assert calibration.horizon == BLOCK


def test_step_factors_beyond_backtest_horizon() -> None:
    narrowing = step_factors(0.5, steps=40, measured_horizon=10)
    assert narrowing[:10].tolist() == [0.5] * 10
    assert narrowing[14] == pytest.approx(0.75)
    assert narrowing[19:].tolist() == [1.0] * 21
    assert np.all(np.diff(narrowing) >= 0.0)

    widening = step_factors(1.5, steps=40, measured_horizon=10)
    assert widening.tolist() == [1.5] * 40


def test_apply_calibration_narrowing_fades() -> None:
    rng = np.random.default_rng(6)
    actuals = [100.0 + rng.normal(0.0, 1.0, 10) for _ in range(6)]
    calibration = calibrate(actuals, [_flat_prediction(10, 3.0)] * 6, (0.8,))
    assert calibration.factors[0.8] < 0.6
    lower, upper = apply_calibration(_flat_prediction(30, 3.0), calibration).bounds[0.8]
    half_width = upper - 100.0
    assert half_width[0] == pytest.approx(calibration.factors[0.8] * 1.2816 * 3.0)
    assert half_width[-1] == pytest.approx(1.2816 * 3.0)


def test_calibration_origins_older_blocks() -> None:
    plan = FoldPlan(origins=(150, 175, 200), horizon=25)
    assert calibration_origins(plan, min_train=52) == (75, 100, 125)
    assert calibration_origins(plan, min_train=110) == (125,)
    assert calibration_origins(plan, min_train=52, total=3) == ()


def test_forecast_params_record_calibration() -> None:
    rng = np.random.default_rng(8)
    hours = np.arange(30 * 24)
    values = 100 + 30 * np.sin(2 * np.pi * hours / 24) + np.repeat(rng.normal(0.0, 5.0, 30), 24) + rng.normal(0.0, 1.0, len(hours))
    y = pd.Series(values, index=pd.date_range("2025-01-06", periods=len(values), freq="h"))
    result = forecast_values(y, NATIVE, parse_horizon("2d"), options=ForecastOptions(candidates=("theta",)))
    params = result.params
    assert params["backtest_horizon_steps"] == 48
    assert params["calibration_folds"] == 6
    assert set(params["calibration_quantile_levels"]) == {"0.8", "0.95"}
    assert params["calibration_quantile_levels"]["0.8"] >= 0.8
    assert isinstance(params["interval_notes"], dict)
    assert "over 6 calibration folds, the 80 % interval covered" in result.selection.reason
