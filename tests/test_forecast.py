"""Daily and weekly peaks, stored forecasts at each resolution, the required input cases and ``capplan forecast``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capplan.cli import main
from capplan.cli.forecast_cmd import HELP_DEFAULT_FOLDS
from forecasting.backtest import DEFAULT_FOLDS
from capplan.demo_history import make_demo_history
from capplan.errors import ConfigError, InputDataError
from capplan.store import Store
from capplan.store.forecasts import backtest_scores, forecast_points, forecast_scenarios, get_forecast, latest_forecast_id
from capplan.store.series import write_samples
from capplan.units import parse_horizon
from loadprobe.csv_history import read_history_csv
from forecasting.forecast import forecast_and_store, forecast_series
from forecasting.peaks import daily_peaks, median_step, regularize, weekly_peaks

WEEKLY_FACTORS = np.array([1.0, 1.0, 1.0, 1.0, 0.97, 0.72, 0.66])  # Monday .. Sunday
DAY = pd.Timedelta(days=1)
FINITE_COLUMNS = ["yhat", "lower", "upper"]
ALL_BOUNDS = ["yhat", "lower", "upper", "lower_80", "upper_80", "lower_95", "upper_95"]


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


def test_forecast_cli_unknown_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    store_with_series(tmp_path, "web", make_demo_history(days=30, end="2026-04-30 23:00"))
    assert main(["forecast", "api", "--db", str(db)]) == 2
    assert "series 'api' not found" in capsys.readouterr().err


def test_forecast_cli_bad_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forecast", "web", "--level", "1", "--db", str(tmp_path / "s.duckdb")]) == 2
    assert "--level" in capsys.readouterr().err


def test_peaks_quantile_statistic() -> None:
    peaks = daily_peaks(hourly_frame(10), quantile=0.5)
    # The hourly values of day d are 100 d + 0..23, whose median is 100 d + 11.5.
    assert peaks.values.tolist() == [100.0 * day + 11.5 for day in range(10)]


def test_weekly_peaks_partial_week_dropped() -> None:
    index = pd.date_range("2024-01-01", periods=24, freq="D")  # Monday 1 January to Wednesday 24 January
    weekly = weekly_peaks(pd.Series(np.arange(24.0), index=index))
    assert list(weekly.index) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08"), pd.Timestamp("2024-01-15")]
    assert weekly.tolist() == [6.0, 13.0, 20.0]


def test_forecast_series_stored_selection(tmp_path: Path) -> None:
    store = store_with_series(tmp_path, "web", make_demo_history(days=120, end="2026-04-30 23:00"))
    forecast_id, result = forecast_series(store, "web", parse_horizon("30d"))
    row = get_forecast(store, forecast_id)
    scores = backtest_scores(store, forecast_id)
    assert row["backtest_mase"] == pytest.approx(result.mase)
    # 120 daily peaks: a fold covers 24 days (a fifth of the history), and six such folds would leave
    # too little to fit on, so plan_folds uses four.
    assert row["backtest_folds"] == 4
    assert 0.0 <= row["coverage_80"] <= 1.0
    assert row["interval_method"] in ("model", "conformal")
    assert set(scores["model"]) >= {"seasonal_naive", "ets_damped", "sarima", "multi_seasonal", "theta"}
    assert scores.loc[scores["selected"], "model"].nunique() == 1
    assert len(scores[scores["model"] == "seasonal_naive"]) == 4


def test_forecast_all_resolutions_stored(tmp_path: Path) -> None:
    store = store_with_series(tmp_path, "web", make_demo_history(days=70, end="2026-04-30 23:00"))
    stored = forecast_and_store(store, "web", parse_horizon("14d"))
    by_resolution = {result.resolution: (forecast_id, result) for forecast_id, result in stored}
    assert set(by_resolution) == {"native", "daily_peak", "weekly_peak"}
    native_points = forecast_points(store, by_resolution["native"][0])
    assert len(native_points) == 14 * 24
    assert native_points["ts"].iloc[0] == pd.Timestamp("2026-05-01 00:00")
    assert len(forecast_points(store, by_resolution["weekly_peak"][0])) == 2
    for forecast_id, _ in stored:
        points = forecast_points(store, forecast_id)
        assert np.isfinite(points[ALL_BOUNDS].to_numpy()).all()
        assert (points["lower_95"] <= points["lower_80"]).all()
        assert (points["upper_80"] <= points["upper_95"]).all()
    assert latest_forecast_id(store, "web") == by_resolution["daily_peak"][0]


def test_forecast_offset_timestamps_utc(tmp_path: Path) -> None:
    history = make_demo_history(days=20, end="2026-04-30 23:00")
    lines = ["timestamp,value"] + [
        f"{(ts + pd.Timedelta(hours=2)).strftime('%Y-%m-%dT%H:%M:%S')}+02:00,{value}"
        for ts, value in zip(history["ts"], history["value"])
    ]
    path = tmp_path / "offsets.csv"
    path.write_text("\n".join(lines) + "\n")
    store = Store(tmp_path / "store.duckdb")
    write_samples(store, "web", read_history_csv(path), source="csv")
    stored = forecast_and_store(store, "web", parse_horizon("1d"), resolutions=("native",))
    forecast_id, result = stored[0]
    assert result.history_end == pd.Timestamp("2026-04-30 23:00")
    assert forecast_points(store, forecast_id)["ts"].iloc[0] == pd.Timestamp("2026-05-01 00:00")
    with store.read() as con:
        last = con.execute("SELECT max(ts) FROM samples WHERE series_name = 'web'").fetchone()[0]
    assert pd.Timestamp(last) == pd.Timestamp("2026-04-30 23:00")


def test_forecast_irregular_gaps_stay_missing(tmp_path: Path) -> None:
    history = make_demo_history(days=21, end="2026-04-30 23:00")
    rng = np.random.default_rng(5)
    history = history.assign(ts=history["ts"] + pd.to_timedelta(rng.integers(0, 20, len(history)), unit="s"))
    gap = (history["ts"] >= "2026-04-20 00:00") & (history["ts"] < "2026-04-20 12:00")
    history = history[~gap]
    store = store_with_series(tmp_path, "web", history)
    (forecast_id, result), = forecast_and_store(store, "web", parse_horizon("2d"), resolutions=("native",))
    assert result.step == pd.Timedelta(hours=1)
    assert result.params["missing_steps"] == 12
    assert result.params["history_steps"] == 21 * 24
    assert np.isfinite(result.points[ALL_BOUNDS].to_numpy()).all()
    assert (result.points["yhat"] > 0).all()


def test_forecast_constant_series_flat(tmp_path: Path) -> None:
    samples = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=30 * 24, freq="h"), "value": 42.0})
    store = store_with_series(tmp_path, "flat", samples)
    for _, result in forecast_and_store(store, "flat", parse_horizon("10d")):
        assert result.model == "constant"
        assert (result.points["yhat"] == 42.0).all()
        assert (result.points["upper_95"] - result.points["lower_95"] == 0.0).all()


def test_forecast_idle_nights_finite(tmp_path: Path) -> None:
    history = make_demo_history(days=42, end="2026-04-30 23:00")
    history.loc[history["ts"].dt.hour < 6, "value"] = 0.0
    store = store_with_series(tmp_path, "web", history)
    for _, result in forecast_and_store(store, "web", parse_horizon("14d")):
        assert np.isfinite(result.points[ALL_BOUNDS].to_numpy()).all()
        assert (result.points["lower_95"] >= 0.0).all()


def test_forecast_cli_json_payload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    store_with_series(tmp_path, "web", make_demo_history(days=60, end="2026-04-30 23:00"))
    argv = ["forecast", "web", "--horizon", "30d", "--level", "90%", "--resolution", "daily_peak", "--db", str(db), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    forecast = payload["forecasts"][0]
    assert payload["level"] == 0.9
    assert forecast["resolution"] == "daily_peak"
    assert len(forecast["points"]) == 30
    assert forecast["points"][0]["timestamp"] == "2026-05-01T00:00:00"
    assert forecast["points"][0]["lower"] <= forecast["points"][0]["lower_80"]
    assert forecast["backtest"]["mase"] > 0
    assert forecast["backtest"]["folds"] == 3  # 60 daily peaks leave room for three folds of 12 days
    assert forecast["coverage"]["level"] is not None
    assert forecast["model"] == get_forecast(Store(db), forecast["forecast_id"])["model"]


def test_forecast_cli_scenarios_applied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    store_with_series(tmp_path, "web", make_demo_history(days=60, end="2026-04-30 23:00"))
    base = ["forecast", "web", "--horizon", "30d", "--resolution", "daily_peak", "--db", str(db), "--json"]
    assert main(base) == 0
    plain = json.loads(capsys.readouterr().out)["forecasts"][0]
    assert main([*base, "--step", "2026-05-10:+30%", "--event", "2026-05-20:2d:x3"]) == 0
    payload = json.loads(capsys.readouterr().out)
    with_scenarios = payload["forecasts"][0]
    ratios = [s["yhat"] / p["yhat"] for s, p in zip(with_scenarios["points"], plain["points"])]
    assert ratios[0] == pytest.approx(1.0, rel=0.02)      # 1 May: before the step
    assert ratios[9] == pytest.approx(1.3, rel=0.02)      # 10 May: the step
    assert ratios[19] == pytest.approx(3.9, rel=0.02)     # 20 May: step and event
    assert ratios[21] == pytest.approx(1.3, rel=0.02)     # 22 May: the event is over
    stored = forecast_scenarios(Store(db), with_scenarios["forecast_id"])
    assert [row["kind"] for row in stored] == ["step", "event"]


def test_forecast_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    store_with_series(tmp_path, "web", make_demo_history(days=60, end="2026-04-30 23:00"))
    assert main(["forecast", "web", "--horizon", "2mo", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "2026-06" in out
    assert "chosen" in out
    assert "stored as forecast 2" in out


def test_forecast_cli_bad_scenario_leaves_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    store = store_with_series(tmp_path, "web", make_demo_history(days=30, end="2026-04-30 23:00"))
    assert main(["forecast", "web", "--event", "2026-05-20:2d", "--db", str(db)]) == 2
    assert "DATE:DURATION:xFACTOR" in capsys.readouterr().err
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM forecasts").fetchone()[0] == 0


def test_forecast_users_to_requests(tmp_path: Path) -> None:
    users = make_demo_history(days=42, end="2026-04-30 23:00", peak_rps=5000.0)
    requests = users.assign(value=users["value"] * 0.02)
    store = Store(tmp_path / "store.duckdb")
    write_samples(store, "users", users, source="csv")
    write_samples(store, "api_rps", requests, source="csv")
    assert main(["forecast", "api_rps", "--users", "users", "--horizon", "14d", "--resolution", "daily_peak",
                 "--db", str(tmp_path / "store.duckdb"), "--json"]) == 0
    forecast_id = latest_forecast_id(store, "api_rps")
    row = get_forecast(store, forecast_id)
    assert json.loads(row["params"])["requests_per_user"] == pytest.approx(0.02, rel=1e-6)
    points = forecast_points(store, forecast_id)
    users_peak = users.groupby(users["ts"].dt.floor("D"))["value"].max().iloc[-7:].mean()
    assert points["yhat"].iloc[:7].mean() == pytest.approx(users_peak * 0.02, rel=0.15)


def test_forecast_help_names_default_folds() -> None:
    assert HELP_DEFAULT_FOLDS == DEFAULT_FOLDS
