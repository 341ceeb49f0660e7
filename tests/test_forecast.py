"""Daily peaks, the ETS forecaster, stored forecasts and ``capplan forecast``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capplan.cli import main
from capplan.demo_history import make_demo_history
from capplan.errors import ConfigError, InputDataError
from capplan.store import Store
from capplan.store.forecasts import forecast_points, get_forecast
from capplan.store.series import write_samples
from capplan.units import parse_horizon
from forecasting.ets_model import EtsForecaster
from forecasting.forecast import forecast_series
from forecasting.peaks import daily_peaks, median_step, regularize

WEEKLY_FACTORS = np.array([1.0, 1.0, 1.0, 1.0, 0.97, 0.72, 0.66])  # Monday .. Sunday
DAY = pd.Timedelta(days=1)
FINITE_COLUMNS = ["yhat", "lower", "upper"]


def hourly_frame(days: int, start: str = "2024-01-01") -> pd.DataFrame:
    """Hourly samples whose value is 100 * day index + hour, so each day's peak is 100 * day + 23."""
    ts = pd.date_range(start, periods=days * 24, freq="h")
    day_index = np.arange(days * 24) // 24
    return pd.DataFrame({"ts": ts, "value": (100.0 * day_index + ts.hour).astype(float)})


def daily_truth(days: int, level: float = 200.0, growth_per_year: float = 0.30) -> pd.Series:
    """Noiseless daily peaks: compound growth times a weekly pattern."""
    index = pd.date_range("2025-01-06", periods=days, freq="D")
    trend = level * (1.0 + growth_per_year) ** (np.arange(days) / 365.25)
    return pd.Series(trend * WEEKLY_FACTORS[index.day_of_week], index=index)


def store_with_series(tmp_path: Path, name: str, samples: pd.DataFrame) -> Store:
    store = Store(tmp_path / "store.duckdb")
    write_samples(store, name, samples, source="csv")
    return store


def test_peaks_hourly_known_maxima() -> None:
    peaks = daily_peaks(hourly_frame(10))
    assert peaks.sub_daily
    assert peaks.sample_step == pd.Timedelta(hours=1)
    assert list(peaks.values.index) == list(pd.date_range("2024-01-01", periods=10, freq="D"))
    assert peaks.values.tolist() == [100.0 * day + 23 for day in range(10)]


def test_peaks_sparse_day_dropped(caplog: pytest.LogCaptureFixture) -> None:
    samples = hourly_frame(10)
    sparse_day = samples["ts"].dt.floor("D") == pd.Timestamp("2024-01-04")
    keep_hours = samples["ts"].dt.hour < 11  # 11 of 24 samples, under half
    samples = samples[~sparse_day | keep_hours]
    caplog.set_level(logging.INFO, logger="forecasting.peaks")
    peaks = daily_peaks(samples)
    assert np.isnan(peaks.values.loc["2024-01-04"])
    assert peaks.dropped_days == (pd.Timestamp("2024-01-04"),)
    assert "left out 1 of 10 days" in caplog.text
    assert "2024-01-04" in caplog.text


def test_peaks_half_day_kept() -> None:
    samples = hourly_frame(10)
    day = samples["ts"].dt.floor("D") == pd.Timestamp("2024-01-04")
    samples = samples[~day | (samples["ts"].dt.hour < 12)]  # exactly half
    peaks = daily_peaks(samples)
    assert peaks.values.loc["2024-01-04"] == 300.0 + 11


def test_peaks_gap_stays_missing() -> None:
    samples = hourly_frame(10)
    samples = samples[samples["ts"].dt.floor("D") != pd.Timestamp("2024-01-05")]
    peaks = daily_peaks(samples)
    assert len(peaks.values) == 10
    assert np.isnan(peaks.values.loc["2024-01-05"])
    assert peaks.missing_days == 1
    assert (peaks.values.dropna() > 0).all()


def test_peaks_partial_edges_trimmed() -> None:
    samples = hourly_frame(10).iloc[20:-20]  # 4 samples on the first day, 4 on the last
    peaks = daily_peaks(samples)
    assert peaks.values.index[0] == pd.Timestamp("2024-01-02")
    assert peaks.values.index[-1] == pd.Timestamp("2024-01-09")
    assert not peaks.values.isna().any()


def test_peaks_irregular_timestamps_regularized() -> None:
    samples = hourly_frame(3)
    jitter = pd.to_timedelta(np.tile([0, 7, 13, 2], len(samples) // 4), unit="s")
    samples = samples.assign(ts=samples["ts"] + jitter).drop(index=[5, 6])
    assert median_step(samples["ts"]) == pd.Timedelta(hours=1)
    grid = regularize(samples)
    assert len(grid) == 72
    assert grid.isna().sum() == 2
    assert np.isnan(grid.iloc[5])


def test_peaks_daily_values_passed_through() -> None:
    index = pd.date_range("2024-01-01 12:00", periods=20, freq="D")
    samples = pd.DataFrame({"ts": index, "value": np.arange(20.0)}).drop(index=[7])
    peaks = daily_peaks(samples)
    assert not peaks.sub_daily
    assert peaks.values.index[0] == pd.Timestamp("2024-01-01")
    assert np.isnan(peaks.values.iloc[7])
    assert peaks.values.iloc[8] == 8.0


def test_peaks_weekly_data_rejected() -> None:
    samples = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=10, freq="7D"), "value": 1.0})
    with pytest.raises(InputDataError, match="median step of 7 days"):
        daily_peaks(samples)


def test_ets_recovers_trend_and_season() -> None:
    train_days, test_days = 364, 56
    truth = daily_truth(train_days + test_days)
    rng = np.random.default_rng(3)
    noisy = truth * np.exp(rng.normal(0.0, 0.05, len(truth)))
    forecaster = EtsForecaster().fit(noisy.iloc[:train_days])
    points = forecaster.predict(test_days, level=0.8)

    held_out_truth = truth.iloc[train_days:].to_numpy()
    held_out_noisy = noisy.iloc[train_days:].to_numpy()
    mape = np.mean(np.abs(points["yhat"].to_numpy() - held_out_truth) / held_out_truth)
    inside = (held_out_noisy >= points["lower"].to_numpy()) & (held_out_noisy <= points["upper"].to_numpy())
    assert list(points["ts"]) == list(truth.index[train_days:])
    assert mape < 0.10
    assert 0.60 <= inside.mean() <= 0.95


def test_ets_missing_values_interpolated(caplog: pytest.LogCaptureFixture) -> None:
    series = daily_truth(120)
    series.iloc[[30, 31, 32, 90]] = np.nan
    caplog.set_level(logging.INFO, logger="forecasting.ets_model")
    forecaster = EtsForecaster().fit(series)
    points = forecaster.predict(14, 0.8)
    assert forecaster.params["interpolated_points"] == 4
    assert "filled 4 missing values" in caplog.text
    assert np.isfinite(points[FINITE_COLUMNS].to_numpy()).all()


def test_ets_constant_series_flat() -> None:
    series = pd.Series(42.0, index=pd.date_range("2025-01-01", periods=60, freq="D"))
    forecaster = EtsForecaster().fit(series)
    points = forecaster.predict(30, 0.8)
    assert forecaster.method == "constant"
    assert (points["yhat"] == 42.0).all()
    assert (points["upper"] - points["lower"] == 0.0).all()


def test_ets_zeros_finite_and_nonnegative() -> None:
    index = pd.date_range("2025-01-01", periods=90, freq="D")
    values = np.where(index.day_of_week >= 5, 0.0, 50.0 + np.arange(90) * 0.5)
    forecaster = EtsForecaster().fit(pd.Series(values, index=index))
    points = forecaster.predict(60, 0.9)
    assert forecaster.params["log_scale"] is False
    assert np.isfinite(points[FINITE_COLUMNS].to_numpy()).all()
    assert (points["lower"] >= 0.0).all()
    assert (points["lower"] <= points["yhat"]).all()
    assert (points["yhat"] <= points["upper"]).all()


def test_ets_all_zero_series_flat() -> None:
    series = pd.Series(0.0, index=pd.date_range("2025-01-01", periods=30, freq="D"))
    points = EtsForecaster().fit(series).predict(10, 0.8)
    assert (points[FINITE_COLUMNS].to_numpy() == 0.0).all()


def test_ets_nonfinite_falls_back(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken_prediction(self, state, ts, level):
        return pd.DataFrame({"ts": ts, "yhat": np.nan, "lower": -np.inf, "upper": np.inf})

    monkeypatch.setattr(EtsForecaster, "_predict_ets", broken_prediction)
    series = daily_truth(70)
    forecaster = EtsForecaster().fit(series)
    points = forecaster.predict(21, 0.8)
    assert "using seasonal naive" in caplog.text
    assert forecaster.model_name == "seasonal_naive"
    assert np.isfinite(points[FINITE_COLUMNS].to_numpy()).all()
    assert points["yhat"].iloc[:7].tolist() == series.iloc[-7:].tolist()
    assert points["yhat"].iloc[7:14].tolist() == series.iloc[-7:].tolist()


def test_ets_fit_errors_fall_back(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def failing_fit(self, *args, **kwargs):
        raise np.linalg.LinAlgError("singular matrix")

    monkeypatch.setattr("forecasting.ets_model.ETSModel.fit", failing_fit)
    forecaster = EtsForecaster().fit(daily_truth(40))
    points = forecaster.predict(10, 0.8)
    assert forecaster.method == "seasonal_naive"
    assert "every ETS fit failed" in caplog.text
    assert (points["upper"] > points["lower"]).all()


def test_ets_too_few_values_rejected() -> None:
    with pytest.raises(InputDataError, match="needs at least 14"):
        EtsForecaster().fit(daily_truth(10))


def test_forecast_series_stored(tmp_path: Path) -> None:
    history = make_demo_history(days=120, end="2026-04-30 23:00")
    store = store_with_series(tmp_path, "web", history)
    forecast_id, result = forecast_series(store, "web", parse_horizon("90d"), level=0.8)

    row = get_forecast(store, forecast_id)
    points = forecast_points(store, forecast_id)
    assert row["resolution"] == "daily_peak"
    assert row["model"] == result.model
    assert row["level"] == 0.8
    assert row["history_end"] == pd.Timestamp("2026-04-30")
    assert row["horizon_end"] == pd.Timestamp("2026-07-29")
    assert len(points) == 90
    assert points["ts"].iloc[0] == pd.Timestamp("2026-05-01")
    assert json.loads(row["params"])["history_days"] == 120
    assert np.isfinite(points[FINITE_COLUMNS].to_numpy()).all()
    assert (points["lower"] >= 0).all()


def test_forecast_long_horizon_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = store_with_series(tmp_path, "web", make_demo_history(days=30, end="2026-04-30 23:00"))
    forecast_series(store, "web", parse_horizon("12mo"))
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert any("from 30 days of history" in record.getMessage() for record in warnings)


def test_forecast_short_series_rejected(tmp_path: Path) -> None:
    store = store_with_series(tmp_path, "web", make_demo_history(days=5, end="2026-04-30 23:00"))
    with pytest.raises(InputDataError, match="covers 5 days with 120 values"):
        forecast_series(store, "web", parse_horizon("30d"))


def test_forecast_bad_level_rejected(tmp_path: Path) -> None:
    store = store_with_series(tmp_path, "web", make_demo_history(days=30, end="2026-04-30 23:00"))
    with pytest.raises(ConfigError, match="level 1.0"):
        forecast_series(store, "web", parse_horizon("30d"), level=1.0)


def test_forecast_cli_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    store_with_series(tmp_path, "web", make_demo_history(days=60, end="2026-04-30 23:00"))
    assert main(["forecast", "web", "--horizon", "30d", "--level", "90%", "--db", str(db), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) == {"forecast_id", "series", "model", "level", "resolution", "points"}
    assert payload["series"] == "web"
    assert payload["level"] == 0.9
    assert payload["resolution"] == "daily_peak"
    assert len(payload["points"]) == 30
    assert set(payload["points"][0]) == {"timestamp", "yhat", "lower", "upper"}
    assert payload["points"][0]["timestamp"] == "2026-05-01T00:00:00"


def test_forecast_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    store_with_series(tmp_path, "web", make_demo_history(days=60, end="2026-04-30 23:00"))
    assert main(["forecast", "web", "--horizon", "2mo", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "2026-06" in out
    assert "stored as forecast 1" in out


def test_forecast_cli_unknown_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    store_with_series(tmp_path, "web", make_demo_history(days=30, end="2026-04-30 23:00"))
    assert main(["forecast", "api", "--db", str(db)]) == 2
    assert "series 'api' not found" in capsys.readouterr().err


def test_forecast_cli_bad_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forecast", "web", "--level", "1", "--db", str(tmp_path / "s.duckdb")]) == 2
    assert "--level" in capsys.readouterr().err
