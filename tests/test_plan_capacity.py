"""Plan detail: demand quantiles, shortfall probability, cost, predicted p95, scaling and recorded inputs."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri

from capplan.cli import main
from capplan.demo_history import make_demo_history
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.store.forecasts import insert_forecast
from capplan.store.plans import get_plan, plan_months
from capplan.store.series import write_samples
from capplan.units import parse_horizon
from forecasting.plan import build_plan, daily_exceedance_probability, make_plan
from forecasting.scalability import UslParameters

from test_capacity import md1_step, store_run

SAFE_RPS = 50.0
LEVEL = 0.8
Z90 = float(ndtri(0.9))


def month7_points() -> pd.DataFrame:
    """2026 daily points whose upper bound (0.9 quantile) passes 400 rps on 2026-07-21; the spread is 60 rps."""
    ts = pd.date_range("2026-01-01", "2026-12-31", freq="D")
    upper = 300.0 + 0.5 * np.arange(len(ts))
    return pd.DataFrame({"ts": ts, "yhat": upper - 60.0, "lower": upper - 120.0, "upper": upper})


def test_plan_runway_month_seven_with_level() -> None:
    plan = build_plan(month7_points(), SAFE_RPS, 9, redundancy=1, start="2025-12-31", level=LEVEL)
    assert plan.demand_quantile == pytest.approx(0.9)
    assert plan.runway_date == date(2026, 7, 21)
    months = plan.months.set_index("months_ahead")
    assert months.loc[7, "month"] == date(2026, 7, 1)


def test_plan_milestones_cover_upper_with_redundancy() -> None:
    plan = build_plan(month7_points(), SAFE_RPS, 9, redundancy=1, start="2025-12-31", level=LEVEL)
    milestones = plan.milestones.set_index("months_ahead")
    for ahead in (9, 12):
        row = milestones.loc[ahead]
        serving = row["instances"] - 1
        assert serving * SAFE_RPS >= row["demand_rps"]
        assert (serving - 1) * SAFE_RPS < row["demand_rps"]


def test_plan_shortfall_probability_rises() -> None:
    plan = build_plan(month7_points(), SAFE_RPS, 9, redundancy=1, start="2025-12-31", level=LEVEL)
    months = plan.months.set_index("months_ahead")
    # July's last day has upper 405 > 400: its own exceedance is above 10 %, so the month's is too.
    assert months.loc[7, "shortfall_probability_peak_day"] > 0.10
    assert months.loc[7, "shortfall_probability"] >= months.loc[7, "shortfall_probability_peak_day"]
    # January peaks near 315 rps, 3 spreads below 400: about 0.1 % a day, 2 % over 31 days.
    assert months.loc[1, "shortfall_probability"] < 0.05
    assert months.loc[12, "shortfall_probability"] > 0.99
    assert months["shortfall_probability"].is_monotonic_increasing


def test_plan_exceedance_matches_interval() -> None:
    points = month7_points().iloc[:1]
    upper = float(points["upper"].iloc[0])
    lower = float(points["lower"].iloc[0])
    assert daily_exceedance_probability(points, upper, LEVEL)[0] == pytest.approx(0.1)
    assert daily_exceedance_probability(points, lower, LEVEL)[0] == pytest.approx(0.9)


def test_plan_higher_quantile_more_instances() -> None:
    base = build_plan(month7_points(), SAFE_RPS, 9, start="2025-12-31", level=LEVEL)
    higher = build_plan(month7_points(), SAFE_RPS, 9, start="2025-12-31", level=LEVEL, quantile=0.99)
    # 0.99 quantile: yhat + z99 / z90 * 60 rps, about 109 rps above yhat.
    december = higher.months.iloc[-1]
    assert december["demand_rps"] == pytest.approx(422.0 + float(ndtri(0.99)) / Z90 * 60.0)
    assert higher.months["instances"].iloc[-1] > base.months["instances"].iloc[-1]
    assert higher.runway_date < base.runway_date


def test_plan_cost_per_month() -> None:
    plan = build_plan(month7_points(), SAFE_RPS, 9, start="2025-12-31", level=LEVEL, price_per_instance_hour=0.5)
    january = plan.months.iloc[0]
    assert january["hours"] == 31 * 24
    assert january["cost"] == pytest.approx(january["instances"] * 31 * 24 * 0.5)
    assert plan.total_cost == pytest.approx(float(plan.months["cost"].sum()))


def test_plan_p95_at_per_instance_rate() -> None:
    plan = build_plan(
        month7_points(), SAFE_RPS, 9, start="2025-12-31", level=LEVEL, p95_at_rate=lambda rate: 2.0 * rate
    )
    row = plan.months.iloc[0]
    assert row["p95_ms"] == pytest.approx(2.0 * row["per_instance_rps"])
    assert row["per_instance_rps"] == pytest.approx(row["demand_rps"] / (row["instances"] - 1))


def test_plan_scaling_efficiency_adds_instances() -> None:
    scaling = UslParameters(sigma=0.02, kappa=0.0, lambda_=1.0)
    linear = build_plan(month7_points(), SAFE_RPS, 12, start="2025-12-31", level=LEVEL)
    scaled = build_plan(month7_points(), SAFE_RPS, 12, start="2025-12-31", level=LEVEL, scaling=scaling)
    december = scaled.months.iloc[-1]
    serving = december["instances"] - 1
    assert december["scaling_efficiency"] == pytest.approx(1 / (1 + 0.02 * (serving - 1)))
    assert serving * SAFE_RPS * december["scaling_efficiency"] >= december["demand_rps"]
    assert december["instances"] > linear.months["instances"].iloc[-1]
    assert scaled.fleet_capacity_rps < linear.fleet_capacity_rps


def test_plan_quantile_without_level_rejected() -> None:
    with pytest.raises(ConfigError, match="needs the forecast's interval level"):
        build_plan(month7_points(), SAFE_RPS, 9, quantile=0.95)


def make_store(tmp_path: Path) -> tuple[Store, int, int]:
    """A store with series 'web', a hand-made forecast of it and a run of M/D/1 steps (capacity 200 rps)."""
    store = Store(tmp_path / "capplan.duckdb")
    write_samples(store, "web", make_demo_history(days=30, end="2025-12-31 23:00"), source="csv")
    forecast_id = insert_forecast(
        store, series_name="web", created_at=datetime(2026, 1, 1), model="hand-made", resolution="daily_peak",
        level=LEVEL, history_start=datetime(2025, 12, 1), history_end=datetime(2025, 12, 31),
        points=month7_points(), params={},
    )
    run_id = store_run(store, [md1_step(i, rate) for i, rate in enumerate(range(20, 140, 20))])
    return store, run_id, forecast_id


def test_make_plan_records_inputs(tmp_path: Path) -> None:
    store, run_id, forecast_id = make_store(tmp_path)
    plan_id, plan = make_plan(
        store, run_id, "web", parse_horizon("12mo"), current_instances=4, forecast_id=forecast_id,
        price_per_instance_hour=0.25,
    )
    # No breaking point: the safe load is 80 % of the latency model's 200 rps capacity.
    assert plan.safe_rps_per_instance == pytest.approx(160.0, rel=0.01)
    row = get_plan(store, plan_id)
    inputs = json.loads(row["inputs"])
    assert inputs["run"]["run_id"] == run_id
    assert inputs["run"]["capacity_peak_source"] == "latency_model"
    assert inputs["forecast"]["forecast_id"] == forecast_id
    assert inputs["forecast"]["model"] == "hand-made"
    assert inputs["policy"]["redundancy"] == 1
    assert inputs["policy"]["scaling"]["model"] == "linear"
    assert row["price_per_instance_hour"] == 0.25
    months = plan_months(store, plan_id)
    assert months["cost"].notna().all()
    assert months["p95_ms"].notna().all()
    assert months["shortfall_probability"].between(0, 1).all()


def test_plan_cli_new_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id, forecast_id = make_store(tmp_path)
    scaling = tmp_path / "fleet.csv"
    scaling.write_text("instances,throughput_rps\n1,200\n2,390\n4,740\n8,1330\n")
    argv = [
        "plan", "--run", str(run_id), "--demand", "web", "--forecast", str(forecast_id), "--instances", "4",
        "--price-per-hour", "0.25", "--quantile", "0.95", "--scaling", str(scaling), "--json", "--db", str(store.path),
    ]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["demand_quantile"] == pytest.approx(0.95)
    assert payload["scaling"]["model"] == "usl over fleet sizes"
    assert payload["total_cost"] > 0
    month = payload["months"][0]
    assert set(month) >= {"p95_ms", "cost", "shortfall_probability", "per_instance_rps", "scaling_efficiency"}
    assert month["scaling_efficiency"] < 1.0
    assert [m["months_ahead"] for m in payload["milestones"]] == [3, 6, 9, 12]
    assert not math.isnan(payload["milestones"][0]["shortfall_probability"])


def test_plan_cli_bad_quantile_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id, forecast_id = make_store(tmp_path)
    base = ["plan", "--run", str(run_id), "--demand", "web", "--db", str(store.path)]
    assert main([*base, "--quantile", "1.5"]) == 2
    assert main([*base, "--price-per-hour", "-1"]) == 2
    assert main([*base, "--scaling", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert "--quantile: '1.5' is outside (0, 1)" in err
    assert "--price-per-hour: '-1' is below 0" in err
    assert "missing.csv not found" in err
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM plans").fetchone()[0] == 0
