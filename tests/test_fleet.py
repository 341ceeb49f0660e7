"""Fleet forecasts: many stored series through a real process pool and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capplan.cli import main
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.store.series import write_samples
from forecasting.fleet import forecast_fleet, select_series
from forecasting.forecast import ForecastOptions

HORIZON = pd.DateOffset(days=14)
FAST = ForecastOptions(candidates=("seasonal_naive", "ets_damped"), folds=2)


def _hourly(days: int, seed: int) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=24 * days, freq="h")
    hours = np.arange(len(ts))
    values = 100 + 20 * np.sin(2 * np.pi * hours / 24) + np.random.default_rng(seed).normal(0, 2, len(ts))
    return pd.DataFrame({"ts": ts, "value": values})


def _fleet_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "fleet.duckdb")
    write_samples(store, "api_a", _hourly(42, 1), source="csv", labels={"team": "pay"})
    write_samples(store, "api_b", _hourly(42, 2), source="csv", labels={"team": "search"})
    write_samples(store, "web_c", _hourly(42, 3), source="csv", labels={"team": "pay"})
    write_samples(store, "api_short", _hourly(2, 4), source="csv", labels={"team": "pay"})  # too short for daily peaks
    return store


def test_select_series_glob_and_label(tmp_path: Path) -> None:
    store = _fleet_store(tmp_path)

    assert select_series(store) == ["api_a", "api_b", "api_short", "web_c"]
    assert select_series(store, "api_*") == ["api_a", "api_b", "api_short"]
    assert select_series(store, None, ["team=pay"]) == ["api_a", "api_short", "web_c"]
    assert select_series(store, "api_*", ["team=pay"]) == ["api_a", "api_short"]


def test_select_series_rejects_label_without_value(tmp_path: Path) -> None:
    store = _fleet_store(tmp_path)

    with pytest.raises(ConfigError, match="KEY=VALUE"):
        select_series(store, None, ["team"])


def test_fleet_pool_stores_and_reports_failure(tmp_path: Path) -> None:
    store = _fleet_store(tmp_path)
    progress: list[tuple[int, int]] = []

    report = forecast_fleet(
        store, select_series(store), HORIZON, 0.8, ("daily_peak",), FAST, workers=2,
        progress=lambda done, total: progress.append((done, total)),
    )

    assert sorted(report.stored) == ["api_a", "api_b", "web_c"]
    assert [failure.series_name for failure in report.failures] == ["api_short"]
    assert "InputDataError" in report.failures[0].error
    assert progress[-1] == (4, 4)
    with store.read() as con:
        rows = con.execute("SELECT series_name, count(*) FROM forecasts GROUP BY ALL ORDER BY ALL").fetchall()
        points = con.execute("SELECT count(*) FROM forecast_points").fetchone()
    assert rows == [("api_a", 1), ("api_b", 1), ("web_c", 1)]
    assert points == (3 * 14,)


def test_fleet_pool_matches_sequential(tmp_path: Path) -> None:
    store = _fleet_store(tmp_path)
    names = ["api_a", "api_b"]

    sequential = forecast_fleet(store, names, HORIZON, 0.8, ("daily_peak",), FAST, workers=1)
    parallel = forecast_fleet(store, names, HORIZON, 0.8, ("daily_peak",), FAST, workers=2)

    with store.read() as con:
        for name in names:
            (first_id, _, first_model), = sequential.stored[name]
            (second_id, _, second_model), = parallel.stored[name]
            assert first_model == second_model
            first = con.execute("SELECT yhat FROM forecast_points WHERE forecast_id = ? ORDER BY ts", [first_id]).fetchall()
            second = con.execute("SELECT yhat FROM forecast_points WHERE forecast_id = ? ORDER BY ts", [second_id]).fetchall()
            assert first == second


def test_cli_forecast_all_json_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _fleet_store(tmp_path)

    code = main([
        "forecast", "--all", "--db", str(store.path), "--horizon", "14d", "--resolution", "daily_peak",
        "--models", "seasonal_naive", "--folds", "2", "--workers", "2", "--json",
    ])

    payload = json.loads(capsys.readouterr().out)
    assert code == 1
    assert payload["succeeded"] == 3
    assert [row["series"] for row in payload["failed"]] == ["api_short"]
    assert sorted({row["series"] for row in payload["forecasts"]}) == ["api_a", "api_b", "web_c"]


def test_cli_forecast_label_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _fleet_store(tmp_path)

    code = main([
        "forecast", "--label", "team=search", "--db", str(store.path), "--horizon", "14d",
        "--resolution", "daily_peak", "--models", "seasonal_naive", "--workers", "1", "--json",
    ])

    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [row["series"] for row in payload["forecasts"]] == ["api_b"]


def test_cli_forecast_name_and_all_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _fleet_store(tmp_path)

    code = main(["forecast", "api_a", "--all", "--db", str(store.path)])

    assert code == 2
    assert "exclude each other" in capsys.readouterr().err
