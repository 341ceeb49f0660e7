"""Scenario overlays: the pure function, parsing, validation and the stored SQL view agreeing with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capplan.errors import ConfigError
from capplan.store import Store
from capplan.store.forecasts import forecast_scenarios, insert_forecast
from forecasting.scenarios import Scenario, apply_scenarios, parse_event, parse_step, scenario_factors


def daily_points(days: int = 60, start: str = "2027-01-01") -> pd.DataFrame:
    ts = pd.date_range(start, periods=days, freq="D")
    yhat = np.full(days, 100.0)
    return pd.DataFrame({"ts": ts, "yhat": yhat, "lower": yhat * 0.8, "upper": yhat * 1.2})


def test_growth_compounds_per_year() -> None:
    points = pd.DataFrame({"ts": pd.to_datetime(["2027-01-01 00:00", "2028-01-01 06:00", "2029-01-01 12:00"], format="ISO8601"), "yhat": 100.0})
    result = apply_scenarios(points, [Scenario.growth(0.2)])
    assert result["yhat"].tolist() == pytest.approx([100.0, 120.0, 144.0], rel=1e-3)


def test_step_applies_from_its_day() -> None:
    result = apply_scenarios(daily_points(), [Scenario.step("2027-01-10 15:00", 0.3)])
    assert result.loc[8, "yhat"] == 100.0   # 9 January
    assert result.loc[9, "yhat"] == pytest.approx(130.0)   # 10 January: the launch happens during the day
    assert result.loc[9, "upper"] == pytest.approx(156.0)


def test_event_covers_its_days_only() -> None:
    result = apply_scenarios(daily_points(), [Scenario.event("2027-02-01", "2027-02-03", 3.0)])
    by_day = result.set_index("ts")["yhat"]
    assert by_day["2027-01-31"] == 100.0
    assert by_day["2027-02-01"] == 300.0
    assert by_day["2027-02-02"] == 300.0
    assert by_day["2027-02-03"] == 100.0


def test_scenarios_multiply_and_keep_input() -> None:
    points = daily_points()
    scenarios = [Scenario.step("2027-01-10", 0.3), Scenario.event("2027-01-20", "2027-01-21", 2.0)]
    result = apply_scenarios(points, scenarios)
    assert result.set_index("ts").loc["2027-01-20", "yhat"] == pytest.approx(260.0)
    assert (points["yhat"] == 100.0).all()
    assert "scenario_factor" in result.columns


def test_hourly_points_event_hours() -> None:
    ts = pd.date_range("2027-06-01", periods=48, freq="h")
    factors = scenario_factors(ts, [Scenario.event("2027-06-01 10:30", "2027-06-01 12:00", 2.0)])
    assert np.flatnonzero(factors == 2.0).tolist() == [10, 11]


def test_parse_step_and_event() -> None:
    step = parse_step("2027-03-01:+30%")
    event = parse_event("2027-06-01:2d:x3")
    assert step.kind == "step"
    assert step.factor == pytest.approx(1.3)
    assert step.start == pd.Timestamp("2027-03-01")
    assert event.end == pd.Timestamp("2027-06-03")
    assert event.factor == 3.0


@pytest.mark.parametrize(
    "text, message",
    [("2027-03-01", "DATE:CHANGE"), ("2027-03-01:-100%", "remove all demand"), ("tomorrow:+10%", "invalid date")],
)
def test_parse_step_invalid(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_step(text)


def test_scenario_validation_messages() -> None:
    with pytest.raises(ConfigError, match="above -1"):
        Scenario.growth(-1.5)
    with pytest.raises(ConfigError, match="must be after start"):
        Scenario.event("2027-06-02", "2027-06-01", 2.0)


def test_scenario_offset_start_to_utc() -> None:
    scenario = Scenario.step("2027-03-01T02:00:00+02:00", 0.1)
    assert scenario.start == pd.Timestamp("2027-03-01 00:00")


def test_scenario_view_matches_function(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.duckdb")
    points = daily_points(400, start="2027-01-01")
    scenarios = [
        Scenario.growth(0.25, start="2027-01-01"),
        Scenario.step("2027-03-01 12:00", 0.3),
        Scenario.event("2027-06-01", "2027-06-03", 3.0),
    ]
    forecast_id = insert_forecast(
        store, series_name="web", created_at=pd.Timestamp("2026-12-31").to_pydatetime(), model="test",
        resolution="daily_peak", level=0.8, history_start=pd.Timestamp("2026-01-01").to_pydatetime(),
        history_end=pd.Timestamp("2026-12-31").to_pydatetime(), points=points, params={},
        selection={"step_s": 86400.0}, scenarios=[scenario.to_row() for scenario in scenarios],
    )
    with store.read() as con:
        view = con.execute(
            "SELECT ts, yhat, upper FROM scenario_forecast_points WHERE forecast_id = ? ORDER BY ts", [forecast_id]
        ).df()
    expected = apply_scenarios(points, scenarios)
    assert np.allclose(view["yhat"].to_numpy(), expected["yhat"].to_numpy(), rtol=1e-9)
    assert np.allclose(view["upper"].to_numpy(), expected["upper"].to_numpy(), rtol=1e-9)
    stored = [Scenario.from_row(row) for row in forecast_scenarios(store, forecast_id)]
    assert stored == scenarios
