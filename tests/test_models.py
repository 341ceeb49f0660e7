"""Each demand model on generated series: accuracy on known shapes, intervals, and the hard inputs."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from capplan.errors import ConfigError, InputDataError
from forecasting.models import DEFAULT_CANDIDATES, MODEL_NAMES, Forecaster, Prediction, make_forecaster
from forecasting.models.base import filter_state
from forecasting.models.ets import DampedEts, _errors, _initial_state
from forecasting.models.seasonal_naive import SeasonalNaive
from forecasting.selection import select_and_forecast

WEEKLY_FACTORS = np.array([1.0, 1.0, 1.0, 1.0, 0.97, 0.72, 0.66])  # Monday .. Sunday


def hourly_traffic(days: int, seed: int = 1, noise: float = 0.05) -> pd.Series:
    """Hourly demand with growth, a daily and a weekly cycle, and multiplicative noise."""
    index = pd.date_range("2025-01-06", periods=days * 24, freq="h")
    hours = np.arange(len(index))
    rng = np.random.default_rng(seed)
    daily = 1.0 + 0.5 * np.sin(2 * np.pi * (hours % 24 - 9) / 24)
    values = 100.0 * (1.3 ** (hours / 8766)) * daily * WEEKLY_FACTORS[index.day_of_week] * np.exp(rng.normal(0, noise, len(index)))
    return pd.Series(values, index=index)


def daily_peaks_truth(days: int) -> pd.Series:
    index = pd.date_range("2025-01-06", periods=days, freq="D")
    return pd.Series(200.0 * 1.3 ** (np.arange(days) / 365.25) * WEEKLY_FACTORS[index.day_of_week], index=index)


@pytest.mark.parametrize("name", DEFAULT_CANDIDATES)
def test_model_beats_naive_on_hourly_traffic(name: str) -> None:
    series = hourly_traffic(42)
    train, test = series.iloc[:-168], series.iloc[-168:].to_numpy()
    prediction = make_forecaster(name, (24, 168)).fit(train).predict(168)
    flat_error = np.mean(np.abs(test - train.iloc[-1]))
    assert prediction.is_finite()
    assert np.mean(np.abs(test - prediction.mean)) < flat_error
    lower, upper = prediction.bounds[0.8]
    assert (lower <= prediction.mean).all()
    assert (prediction.mean <= upper).all()


def test_ets_filter_matches_recursion() -> None:
    rng = np.random.default_rng(0)
    z = np.log(100 + 10 * np.sin(2 * np.pi * np.arange(500) / 24) + rng.normal(0, 1, 500))
    smoothing = (0.3, 0.05, 0.1, 0.95)
    x0 = _initial_state(z, 24)
    level, trend, first_season = x0
    season = list(first_season)
    expected = []
    for t, value in enumerate(z):
        error = value - (level + 0.95 * trend + season[t])
        expected.append(error)
        level, trend = level + 0.95 * trend + 0.3 * error, 0.95 * trend + 0.05 * error
        season.append(season[t] + 0.1 * error)
    assert np.max(np.abs(_errors(z, smoothing, 24, x0) - np.array(expected))) < 1e-9


def test_filter_state_matches_lfiltic() -> None:
    from scipy.signal import lfiltic

    rng = np.random.default_rng(1)
    for input_order, output_order in [(26, 26), (3, 7), (9, 2), (1, 1), (0, 290), (4, 0)]:
        b = np.r_[1.0, rng.normal(size=input_order)]
        a = np.r_[1.0, rng.normal(size=output_order)]
        past_inputs = rng.normal(size=max(input_order, output_order))
        past_outputs = rng.normal(size=max(input_order, output_order))
        expected = lfiltic(b, a, past_outputs, past_inputs)
        assert np.max(np.abs(filter_state(b, a, past_inputs, past_outputs) - expected)) < 1e-12


def test_ets_daily_peaks_trend_and_coverage() -> None:
    truth = daily_peaks_truth(420)
    rng = np.random.default_rng(3)
    noisy = truth * np.exp(rng.normal(0.0, 0.05, len(truth)))
    prediction = DampedEts((7,)).fit(noisy.iloc[:364]).predict(56)
    mape = np.mean(np.abs(prediction.mean - truth.iloc[364:].to_numpy()) / truth.iloc[364:].to_numpy())
    lower, upper = prediction.bounds[0.8]
    inside = (noisy.iloc[364:].to_numpy() >= lower) & (noisy.iloc[364:].to_numpy() <= upper)
    assert mape < 0.10
    assert 0.60 <= inside.mean() <= 0.97


def test_ets_long_season_rejected() -> None:
    with pytest.raises(InputDataError, match="seasons of up to 24 steps, got 288"):
        DampedEts((288,)).fit(hourly_traffic(3))


def test_seasonal_naive_repeats_last_season() -> None:
    series = pd.Series(np.arange(48.0), index=pd.date_range("2025-01-01", periods=48, freq="h"))
    prediction = SeasonalNaive((24,)).fit(series).predict(30)
    assert prediction.mean[:24].tolist() == list(range(24, 48))
    assert prediction.mean[24:].tolist() == list(range(24, 30))


def test_six_points_season_six_naive(caplog: pytest.LogCaptureFixture) -> None:
    series = pd.Series([5.0, 7.0, 9.0, 6.0, 4.0, 8.0], index=pd.date_range("2025-01-01", periods=6, freq="h"))
    selection = select_and_forecast(series, (6,), 6)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("a season of 6 steps needs at least 12 values" in message for message in warnings)
    assert any("naive method" in message for message in warnings)
    assert selection.model == "naive"
    assert selection.prediction.mean.tolist() == [8.0] * 6
    assert selection.prediction.is_finite()


@pytest.mark.parametrize("name", ["ets_damped", "sarima", "multi_seasonal"])
def test_six_points_season_six_model_error(name: str) -> None:
    series = pd.Series([5.0, 7.0, 9.0, 6.0, 4.0, 8.0], index=pd.date_range("2025-01-01", periods=6, freq="h"))
    with pytest.raises(InputDataError, match="needs at least 1[0-9] observed values"):
        make_forecaster(name, (6,)).fit(series)


@pytest.mark.parametrize("name", DEFAULT_CANDIDATES)
def test_model_zeros_finite(name: str) -> None:
    series = hourly_traffic(28)
    series[series.index.hour < 6] = 0.0
    prediction = make_forecaster(name, (24, 168)).fit(series).predict(48)
    assert prediction.is_finite()


@pytest.mark.parametrize("name", DEFAULT_CANDIDATES)
def test_model_gaps_finite(name: str) -> None:
    series = hourly_traffic(28)
    series.iloc[100:130] = np.nan
    prediction = make_forecaster(name, (24, 168)).fit(series).predict(48)
    assert prediction.is_finite()


class _BrokenForecaster(Forecaster):
    name = "broken"

    def fit(self, y: pd.Series) -> _BrokenForecaster:
        return self

    def predict(self, horizon: int, levels: tuple[float, ...] = (0.8, 0.95)) -> Prediction:
        nan = np.full(horizon, np.nan)
        return Prediction(mean=nan, bounds={level: (nan, nan) for level in levels})


def test_selection_rejects_nonfinite_model(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import forecasting.selection as selection_module

    real = selection_module.make_forecaster

    def with_broken(name: str, seasons: tuple[int, ...] = (), **options: object) -> Forecaster:
        return _BrokenForecaster(seasons) if name == "broken" else real(name, seasons, **options)

    monkeypatch.setattr(selection_module, "make_forecaster", with_broken)
    selection = select_and_forecast(hourly_traffic(28), (24, 168), 48, candidates=("broken", "seasonal_naive", "theta"))
    assert "rejected broken: it returned NaN or infinite values" in caplog.text
    assert selection.winner != "broken"
    assert selection.summary.set_index("model").loc["broken", "rejected"].startswith("returned NaN")
    assert selection.prediction.is_finite()


def test_make_forecaster_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown model 'lstm'"):
        make_forecaster("lstm")
    assert "prophet" in MODEL_NAMES


@pytest.mark.slow
def test_prophet_logistic_stays_under_cap() -> None:
    series = hourly_traffic(28)
    forecaster = make_forecaster("prophet", (24, 168), cap=400.0)
    prediction = forecaster.fit(series).predict(24 * 14)
    assert forecaster.label == "prophet(logistic)"
    assert prediction.is_finite()
    assert prediction.mean.max() < 400.0
    assert (prediction.bounds[0.95][0] <= prediction.bounds[0.8][0]).all()


def test_prophet_cap_below_history_rejected() -> None:
    with pytest.raises(ConfigError, match="cap 50 is not above the highest value"):
        make_forecaster("prophet", (24,), cap=50.0).fit(hourly_traffic(14))
