"""Capacity plan arithmetic, stored plans and ``capplan plan``."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capplan.cli import main
from capplan.demo_history import make_demo_history
from capplan.errors import ConfigError, InputDataError
from capplan.store import Store
from capplan.store.forecasts import insert_forecast
from capplan.store.plans import get_plan, latest_plan_id, plan_months
from capplan.store.runs import create_run, finish_run
from capplan.store.series import write_samples
from capplan.units import parse_horizon
from forecasting.plan import build_plan, instances_needed, make_plan

HISTORY_END = pd.Timestamp("2025-12-31")
SAFE_RPS = 50.0
CURRENT_INSTANCES = 9  # 8 serving + 1 spare: 400 rps of fleet capacity


def ramp_points() -> pd.DataFrame:
    """Daily points for 2026 whose upper bound is 300 + 0.5 * day index, so it passes 400 rps on day 201."""
    ts = pd.date_range("2026-01-01", "2026-12-31", freq="D")
    upper = 300.0 + 0.5 * np.arange(len(ts))
    return pd.DataFrame({"ts": ts, "yhat": upper - 30.0, "lower": upper - 60.0, "upper": upper})


def make_store(tmp_path: Path, safe_rps: float | None = 80.0, days: int = 60) -> tuple[Store, int]:
    """Return a store with a demo series 'web' and one finished run with the given safe load."""
    store = Store(tmp_path / "store.duckdb")
    write_samples(store, "web", make_demo_history(days=days, end="2026-04-30 23:00"), source="csv")
    run_id = create_run(
        store,
        kind="step",
        target_url="http://127.0.0.1:8080/",
        started_at=datetime(2026, 5, 1, 9, 0),
        slo_p95_ms=500.0,
        max_error_rate=0.01,
        config={},
    )
    finish_run(
        store,
        run_id,
        status="finished",
        finished_at=datetime(2026, 5, 1, 9, 30),
        stop_reason="slo broken",
        breaking_point_rps=None if safe_rps is None else safe_rps / 0.8,
        safe_rps=safe_rps,
        recommended_rps=None if safe_rps is None else safe_rps * 0.75,
    )
    return store, run_id


def test_plan_runway_in_month_seven() -> None:
    plan = build_plan(ramp_points(), SAFE_RPS, CURRENT_INSTANCES, redundancy=1, start=HISTORY_END)
    # Day index 200 is 2026-07-20 with upper exactly 400, which does not exceed the capacity.
    assert plan.fleet_capacity_rps == 400.0
    assert plan.runway_date == date(2026, 7, 21)
    july = plan.months[plan.months["month"] == date(2026, 7, 1)].iloc[0]
    assert july["months_ahead"] == 7


def test_plan_milestones_cover_upper() -> None:
    plan = build_plan(ramp_points(), SAFE_RPS, CURRENT_INSTANCES, redundancy=1, start=HISTORY_END)
    milestones = plan.milestones.set_index("months_ahead")
    assert list(milestones.index) == [3, 6, 9, 12]

    # September 30 is day index 272: upper 436 rps, 436 / 50 = 8.72 -> 9 serving + 1 spare.
    september = milestones.loc[9]
    assert september["month"] == date(2026, 9, 1)
    assert september["demand_rps"] == 436.0
    assert september["instances"] == 10
    # December 31 is day index 364: upper 482 rps, 482 / 50 = 9.64 -> 10 serving + 1 spare.
    december = milestones.loc[12]
    assert december["demand_rps"] == 482.0
    assert december["demand_yhat_rps"] == 452.0
    assert december["instances"] == 11
    assert december["utilisation"] == pytest.approx(482.0 / 500.0)
    for row in (september, december):
        assert (row["instances"] - 1) * SAFE_RPS >= row["demand_rps"]


def test_plan_months_numbered_from_history_end() -> None:
    plan = build_plan(ramp_points(), SAFE_RPS, CURRENT_INSTANCES, start=HISTORY_END)
    assert plan.months["months_ahead"].tolist() == list(range(1, 13))
    assert plan.months["month"].iloc[0] == date(2026, 1, 1)
    assert (plan.months["utilisation"] > 0).all()
    assert (plan.months["utilisation"] <= 1).all()


def test_plan_partial_first_month_is_zero() -> None:
    points = ramp_points()
    points = points[points["ts"] >= "2026-01-15"]
    plan = build_plan(points, SAFE_RPS, CURRENT_INSTANCES, start=pd.Timestamp("2026-01-14"))
    assert plan.months["months_ahead"].iloc[0] == 0
    assert plan.months["month"].iloc[0] == date(2026, 1, 1)


def test_plan_runway_none_when_fleet_suffices() -> None:
    plan = build_plan(ramp_points(), SAFE_RPS, current_instances=12, redundancy=1)
    assert plan.fleet_capacity_rps == 550.0
    assert plan.runway_date is None


def test_plan_redundancy_zero() -> None:
    plan = build_plan(ramp_points(), SAFE_RPS, current_instances=9, redundancy=0)
    assert plan.fleet_capacity_rps == 450.0
    # upper exceeds 450 from day index 301: 2026-10-29.
    assert plan.runway_date == date(2026, 10, 29)
    assert plan.months["instances"].iloc[-1] == 10


def test_plan_exact_multiple_not_rounded_up() -> None:
    assert instances_needed(300.0, 100.0, 1) == 4
    assert instances_needed(1.1, 0.1, 0) == 11
    assert instances_needed(300.01, 100.0, 1) == 5


def test_plan_zero_demand_one_instance() -> None:
    points = ramp_points().assign(yhat=0.0, lower=0.0, upper=0.0)
    plan = build_plan(points, SAFE_RPS, current_instances=2)
    assert (plan.months["instances"] == 2).all()
    assert (plan.months["utilisation"] == 0.0).all()
    assert plan.runway_date is None


@pytest.mark.parametrize(
    "safe_rps,current,redundancy,expected",
    [
        (0.0, 5, 1, "safe load per instance 0.0 rps is invalid"),
        (-3.0, 5, 1, "safe load per instance -3.0 rps is invalid"),
        (float("nan"), 5, 1, "safe load per instance nan rps is invalid"),
        (50.0, 0, 1, "current instances 0 is invalid"),
        (50.0, 5, -1, "redundancy -1 is invalid"),
        (50.0, 2.5, 1, "current instances 2.5 is invalid"),
    ],
)
def test_plan_invalid_fleet_rejected(safe_rps: float, current: int, redundancy: int, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_plan(ramp_points(), safe_rps, current, redundancy)
    assert expected in str(raised.value)


def test_plan_nonfinite_points_rejected() -> None:
    points = ramp_points()
    points.loc[3, "upper"] = np.nan
    with pytest.raises(InputDataError, match="NaN or infinite"):
        build_plan(points, SAFE_RPS, CURRENT_INSTANCES)


def test_make_plan_stores_months(tmp_path: Path) -> None:
    store, run_id = make_store(tmp_path)
    forecast_id = insert_forecast(
        store,
        series_name="web",
        created_at=datetime(2026, 1, 1),
        model="hand-made",
        resolution="daily_peak",
        level=0.8,
        history_start=datetime(2025, 1, 1),
        history_end=HISTORY_END.to_pydatetime(),
        points=ramp_points(),
        params={},
    )
    plan_id, plan = make_plan(
        store, run_id, "web", parse_horizon("12mo"), current_instances=6, redundancy=1, forecast_id=forecast_id
    )
    row = get_plan(store, plan_id)
    months = plan_months(store, plan_id)
    # Safe load 80 rps, 5 serving instances: 400 rps, passed on 2026-07-21 as in the ramp.
    assert row["runway_date"] == pd.Timestamp("2026-07-21")
    assert row["demand_quantile"] == pytest.approx(0.9)
    assert row["current_instances"] == 6
    assert len(months) == 12
    assert months["instances"].iloc[-1] == math.ceil(482.0 / 80.0) + 1
    assert plan.forecast_id == forecast_id


def test_make_plan_default_fleet_from_recent_peaks(tmp_path: Path) -> None:
    store, run_id = make_store(tmp_path)
    history = make_demo_history(days=60, end="2026-04-30 23:00")
    last_week = history[history["ts"] >= pd.Timestamp("2026-04-24")]
    expected = math.ceil(last_week["value"].max() / 80.0) + 1
    _, plan = make_plan(store, run_id, "web", parse_horizon("3mo"))
    assert plan.current_instances == expected


def test_make_plan_without_safe_load_rejected(tmp_path: Path) -> None:
    store, run_id = make_store(tmp_path, safe_rps=None)
    with pytest.raises(InputDataError, match=f"run {run_id} has no safe load"):
        make_plan(store, run_id, "web", parse_horizon("3mo"))


def test_make_plan_wrong_series_forecast_rejected(tmp_path: Path) -> None:
    store, run_id = make_store(tmp_path)
    write_samples(store, "api", make_demo_history(days=30, end="2026-04-30 23:00"), source="csv")
    forecast_id = make_plan(store, run_id, "api", parse_horizon("1mo"))[1].forecast_id
    with pytest.raises(ConfigError, match="is of series 'api', not 'web'"):
        make_plan(store, run_id, "web", parse_horizon("1mo"), forecast_id=forecast_id)


def test_plan_cli_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = make_store(tmp_path)
    argv = ["plan", "--run", str(run_id), "--demand", "web", "--horizon", "6mo", "--instances", "4"]
    assert main([*argv, "--db", str(store.path), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    payload = json.loads(out)
    assert set(payload) >= {
        "plan_id", "run_id", "forecast_id", "series", "safe_rps_per_instance", "current_instances",
        "redundancy", "demand_quantile", "runway_date", "months", "milestones",
    }
    assert payload["run_id"] == run_id
    assert payload["series"] == "web"
    assert payload["safe_rps_per_instance"] == 80.0
    assert payload["current_instances"] == 4
    assert payload["redundancy"] == 1
    assert payload["demand_quantile"] == pytest.approx(0.9)
    assert payload["months"][0]["month"] == "2026-05"
    assert set(payload["months"][0]) >= {"month", "demand", "instances", "utilisation"}
    assert payload["months"][-1]["month"] == "2026-10"
    assert [m["months_ahead"] for m in payload["milestones"]] == [3, 6]
    assert set(payload["milestones"][0]) >= {"months_ahead", "month", "demand", "instances"}
    runway = payload["runway_date"]
    assert runway is None or date.fromisoformat(runway) >= date(2026, 5, 1)


def test_plan_cli_makes_forecast_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = make_store(tmp_path)
    assert main(["plan", "--run", str(run_id), "--demand", "web", "--horizon", "1mo", "--db", str(store.path), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["plan", "--run", str(run_id), "--demand", "web", "--horizon", "1mo", "--db", str(store.path), "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert main(["plan", "--run", str(run_id), "--demand", "web", "--horizon", "3mo", "--db", str(store.path), "--json"]) == 0
    longer = json.loads(capsys.readouterr().out)
    assert second["forecast_id"] == first["forecast_id"]
    assert longer["forecast_id"] != first["forecast_id"]


def test_plan_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = make_store(tmp_path)
    assert main(["plan", "--run", str(run_id), "--demand", "web", "--horizon", "3mo", "--db", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "2026-07" in out
    assert "runway:" in out


def test_plan_cli_unknown_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = make_store(tmp_path)
    assert main(["plan", "--run", "42", "--demand", "web", "--db", str(store.path)]) == 2
    err = capsys.readouterr().err
    assert "run 42 not found" in err
    assert f"known runs: {run_id}" in err


def test_plan_cli_bad_input_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = make_store(tmp_path)
    base = ["plan", "--demand", "web", "--db", str(store.path)]
    assert main([*base, "--run", "42"]) == 2
    assert main([*base, "--run", str(run_id), "--redundancy", "-1"]) == 2
    assert main([*base, "--run", str(run_id), "--instances", "0"]) == 2
    assert main([*base, "--run", "x"]) == 2
    err = capsys.readouterr().err
    assert "--redundancy: -1 is below 0" in err
    assert "--instances: 0 is below 1" in err
    assert "--run: invalid value 'x'" in err
    assert latest_plan_id(store) is None
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM forecasts").fetchone()[0] == 0


def test_plan_cli_missing_run_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--demand", "web", "--db", str(tmp_path / "s.duckdb")]) == 2
    assert "give --run RUN" in capsys.readouterr().err


def test_plan_cli_short_horizon_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = make_store(tmp_path)
    assert main(["plan", "--run", str(run_id), "--demand", "web", "--horizon", "6h", "--db", str(store.path)]) == 2
    assert "horizon 6 hours is shorter than one day" in capsys.readouterr().err
    assert latest_plan_id(store) is None


def test_make_plan_zero_safe_load_rejected(tmp_path: Path) -> None:
    store, run_id = make_store(tmp_path, safe_rps=0.0)
    with pytest.raises(InputDataError, match=f"run {run_id} has an invalid safe load of 0.0 rps"):
        make_plan(store, run_id, "web", parse_horizon("3mo"))
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM forecasts").fetchone()[0] == 0
