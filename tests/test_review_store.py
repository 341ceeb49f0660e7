"""A store built for the quarterly review, and the analyst views checked on it.

The store contains nine months of hourly demand whose daily peak grows by
exactly 2 rps per day. A forecast made three months before the data ends
expects only 1.5 rps per day, and a newer one follows the data. There are two
stepped runs (one per quarter) and a plan from each quarter. Every number the
tests expect follows from the formulas below, so each view is checked against
plain pandas arithmetic.

Other review test modules import ``build_review_store`` from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capplan.store import Store
from capplan.store.forecasts import insert_forecast
from capplan.store.plans import insert_plan
from capplan.store.runs import add_step, create_run, finish_run
from capplan.store.series import write_samples
from forecasting.plan import build_plan

QUARTER = "2026Q4"
SERIES = "checkout_rps"
DAILY_SERIES = "search_rps"
FIRST_DAY = pd.Timestamp("2026-03-01")
LAST_DAY = pd.Timestamp("2026-11-30")
PEAK_START_RPS = 900.0
PEAK_SLOPE_RPS_PER_DAY = 2.0
PEAK_HOUR = 15
SPARSE_DAY = pd.Timestamp("2026-10-10")      # only hours 0..5 observed: an incomplete day

OLD_HISTORY_END = pd.Timestamp("2026-08-31")
OLD_CREATED_AT = datetime(2026, 9, 1, 6, 0)
OLD_SLOPE_RPS_PER_DAY = 1.5                  # last quarter's forecast expected slower growth
OLD_SPREAD = 0.08                            # interval: yhat * (1 -/+ 0.08)
NEW_CREATED_AT = datetime(2026, 12, 1, 6, 0)
NEW_SPREAD = 0.10
FORECAST_DAYS = 365

SLO_P95_MS = 200.0
OLD_RUN_STARTED = datetime(2026, 8, 20, 10, 0)
NEW_RUN_STARTED = datetime(2026, 11, 20, 10, 0)
OLD_BREAKING_RPS = 300.0
NEW_BREAKING_RPS = 250.0
SAFE_FRACTION = 0.8
RECOMMENDED_FRACTION = 0.6
OLD_FLEET = 7
NEW_FLEET = 10
REDUNDANCY = 1


@dataclass(frozen=True)
class ReviewStore:
    """The built store and the ids of what it holds."""

    store: Store
    old_forecast_id: int
    new_forecast_id: int
    old_run_id: int
    new_run_id: int
    old_plan_id: int
    new_plan_id: int
    new_runway: date | None


def peak_rps(day: pd.Timestamp) -> float:
    """Return the true daily peak of SERIES on ``day``."""
    return PEAK_START_RPS + PEAK_SLOPE_RPS_PER_DAY * (day - FIRST_DAY).days


def hourly_demand() -> pd.DataFrame:
    """Hourly samples whose maximum each day is peak_rps(day), at PEAK_HOUR."""
    ts = pd.date_range(FIRST_DAY, LAST_DAY + pd.Timedelta(hours=23), freq="h")
    days = ts.normalize()
    peaks = PEAK_START_RPS + PEAK_SLOPE_RPS_PER_DAY * (days - FIRST_DAY).days.to_numpy()
    shape = 1.0 - 0.03 * np.abs(ts.hour.to_numpy() - PEAK_HOUR)
    frame = pd.DataFrame({"ts": ts, "value": peaks * shape})
    sparse = (frame["ts"].dt.normalize() == SPARSE_DAY) & (frame["ts"].dt.hour > 5)
    return frame[~sparse].reset_index(drop=True)


def forecast_frame(history_end: pd.Timestamp, slope: float, spread: float) -> pd.DataFrame:
    days = pd.date_range(history_end + pd.Timedelta(days=1), periods=FORECAST_DAYS, freq="D")
    yhat = PEAK_START_RPS + slope * (days - FIRST_DAY).days.to_numpy()
    return pd.DataFrame({"ts": days, "yhat": yhat, "lower": yhat * (1 - spread), "upper": yhat * (1 + spread)})


def add_run(store: Store, started_at: datetime, breaking_rps: float, saturated_rps: float | None = None) -> int:
    """Write a finished stepped run of 50 rps steps that breaks the SLO at ``breaking_rps``."""
    run_id = create_run(
        store, kind="step", target_url="http://127.0.0.1:8080/checkout", started_at=started_at,
        slo_p95_ms=SLO_P95_MS, max_error_rate=0.01, config={"step_rps": 50},
    )
    offered_levels = [50.0 * n for n in range(1, int(breaking_rps // 50) + 1)]
    if saturated_rps is not None:
        offered_levels.append(saturated_rps)
    for index, offered in enumerate(offered_levels):
        broken = offered >= breaking_rps and offered != saturated_rps
        saturated = offered == saturated_rps
        # p95 rises with the rate and jumps past the SLO at the breaking step.
        p95 = 400.0 if broken else 40.0 + 0.4 * offered
        add_step(
            store,
            run_id,
            {
                "step_index": index,
                "started_at": started_at + timedelta(seconds=30 * index),
                "duration_s": 30.0,
                "offered_rps": offered,
                "achieved_rps": offered * (0.95 if broken else 1.0),
                "requests": int(offered * 30),
                "ok_requests": int(offered * 30),
                "errors": 0,
                "dropped": 0,
                "error_rate": 0.0,
                "errors_by_kind": {},
                "mean_ms": p95 / 2,
                "p50_ms": p95 / 2.5,
                "p90_ms": p95 * 0.9,
                "p95_ms": p95,
                "p99_ms": p95 * 1.5,
                "max_ms": p95 * 2,
                "service_p95_ms": p95,
                "send_lag_p99_ms": 45.0 if saturated else 1.0,
                "generator_cpu": 0.95 if saturated else 0.3,
                "generator_saturated": saturated,
                "passed": not broken and not saturated,
                "fail_reason": f"p95 {p95:.0f} ms > SLO {SLO_P95_MS:.0f} ms" if broken else None,
                "latency_hdr": None,
            },
        )
    finish_run(
        store, run_id, status="finished", finished_at=started_at + timedelta(minutes=10),
        stop_reason="slo broken", breaking_point_rps=breaking_rps, safe_rps=breaking_rps * SAFE_FRACTION,
        recommended_rps=breaking_rps * RECOMMENDED_FRACTION,
    )
    return run_id


def add_plan(
    store: Store, created_at: datetime, run_id: int, forecast_id: int, points: pd.DataFrame,
    history_end: pd.Timestamp, safe_rps: float, fleet: int,
) -> tuple[int, date | None]:
    plan = build_plan(points, safe_rps, fleet, REDUNDANCY, start=history_end)
    plan_id = insert_plan(
        store, created_at=created_at, run_id=run_id, forecast_id=forecast_id, series_name=SERIES,
        safe_rps_per_instance=safe_rps, redundancy=REDUNDANCY, current_instances=fleet, demand_quantile=0.9,
        runway_date=plan.runway_date, policy={"horizon": "12 months", "level": 0.8}, months=plan.months,
    )
    return plan_id, plan.runway_date


def build_review_store(path: Path) -> ReviewStore:
    """Write the review store described in the module docstring to ``path``."""
    store = Store(path)
    write_samples(store, SERIES, hourly_demand(), source="csv", unit="rps")
    daily_days = pd.date_range("2026-06-01", LAST_DAY, freq="D")
    write_samples(
        store, DAILY_SERIES, pd.DataFrame({"ts": daily_days + pd.Timedelta(hours=12), "value": 50.0}),
        source="csv", unit="rps",
    )

    old_points = forecast_frame(OLD_HISTORY_END, OLD_SLOPE_RPS_PER_DAY, OLD_SPREAD)
    new_points = forecast_frame(LAST_DAY, PEAK_SLOPE_RPS_PER_DAY, NEW_SPREAD)
    forecast_ids = []
    for created_at, history_end, points in ((OLD_CREATED_AT, OLD_HISTORY_END, old_points), (NEW_CREATED_AT, LAST_DAY, new_points)):
        forecast_ids.append(
            insert_forecast(
                store, series_name=SERIES, created_at=created_at, model="linear-test", resolution="daily_peak",
                level=0.8, history_start=FIRST_DAY.to_pydatetime(), history_end=history_end.to_pydatetime(),
                points=points, params={},
            )
        )
    old_run = add_run(store, OLD_RUN_STARTED, OLD_BREAKING_RPS)
    new_run = add_run(store, NEW_RUN_STARTED, NEW_BREAKING_RPS, saturated_rps=300.0)
    old_plan, _ = add_plan(
        store, datetime(2026, 9, 1, 7, 0), old_run, forecast_ids[0], old_points, OLD_HISTORY_END,
        OLD_BREAKING_RPS * SAFE_FRACTION, OLD_FLEET,
    )
    new_plan, new_runway = add_plan(
        store, datetime(2026, 12, 1, 7, 0), new_run, forecast_ids[1], new_points, LAST_DAY,
        NEW_BREAKING_RPS * SAFE_FRACTION, NEW_FLEET,
    )
    return ReviewStore(store, forecast_ids[0], forecast_ids[1], old_run, new_run, old_plan, new_plan, new_runway)


def expected_old_forecast_errors() -> pd.DataFrame:
    """Daily errors of the old forecast on the complete days after its history, by plain arithmetic."""
    days = pd.date_range(OLD_HISTORY_END + pd.Timedelta(days=1), LAST_DAY, freq="D")
    days = days[days != SPARSE_DAY]
    actual = np.array([peak_rps(day) for day in days])
    yhat = PEAK_START_RPS + OLD_SLOPE_RPS_PER_DAY * (days - FIRST_DAY).days.to_numpy()
    frame = pd.DataFrame({"day": days, "actual": actual, "yhat": yhat})
    frame["ape_pct"] = 100 * (frame["actual"] - frame["yhat"]).abs() / frame["actual"]
    frame["inside"] = (frame["actual"] >= frame["yhat"] * (1 - OLD_SPREAD)) & (frame["actual"] <= frame["yhat"] * (1 + OLD_SPREAD))
    frame["month"] = frame["day"].dt.to_period("M").dt.start_time
    return frame


@pytest.fixture(scope="module")
def review_store(tmp_path_factory: pytest.TempPathFactory) -> ReviewStore:
    return build_review_store(tmp_path_factory.mktemp("review") / "review.duckdb")


def query(store: Store, sql: str, params: list | None = None) -> pd.DataFrame:
    with store.read() as con:
        return con.execute(sql, params or []).df()


def test_daily_peaks_exact_and_sparse_day(review_store: ReviewStore) -> None:
    peaks = query(review_store.store, "SELECT * FROM daily_peaks WHERE series_name = ? ORDER BY day", [SERIES])
    by_day = peaks.set_index(pd.to_datetime(peaks["day"]))
    assert len(peaks) == (LAST_DAY - FIRST_DAY).days + 1
    assert by_day.loc[LAST_DAY, "peak_value"] == pytest.approx(peak_rps(LAST_DAY))
    assert by_day.loc[LAST_DAY, "samples"] == 24
    assert by_day.loc[LAST_DAY, "sample_step_s"] == 3600
    assert bool(by_day.loc[LAST_DAY, "complete"])
    assert by_day.loc[SPARSE_DAY, "samples"] == 6
    assert not bool(by_day.loc[SPARSE_DAY, "complete"])
    assert by_day["unit"].unique().tolist() == ["rps"]


def test_daily_peaks_daily_series_complete(review_store: ReviewStore) -> None:
    peaks = query(review_store.store, "SELECT * FROM daily_peaks WHERE series_name = ?", [DAILY_SERIES])
    assert peaks["expected_samples"].unique().tolist() == [1.0]
    assert peaks["complete"].all()


def test_forecast_vs_actual_old_forecast(review_store: ReviewStore) -> None:
    rows = query(
        review_store.store, "SELECT * FROM forecast_vs_actual WHERE forecast_id = ? ORDER BY day", [review_store.old_forecast_id]
    )
    expected = expected_old_forecast_errors()
    assert len(rows) == len(expected) == 90
    assert pd.Timestamp(rows["day"].iloc[0]) == pd.Timestamp("2026-09-01")
    assert rows["days_ahead"].iloc[0] == 1
    assert SPARSE_DAY not in set(pd.to_datetime(rows["day"]))
    assert rows["error"].to_numpy() == pytest.approx((expected["actual"] - expected["yhat"]).to_numpy())
    assert rows["abs_pct_error"].to_numpy() == pytest.approx(expected["ape_pct"].to_numpy())
    assert rows["within_interval"].tolist() == expected["inside"].tolist()


def test_forecast_accuracy_monthly_matches_pandas(review_store: ReviewStore) -> None:
    monthly = query(
        review_store.store,
        "SELECT * FROM forecast_accuracy_monthly WHERE forecast_id = ? ORDER BY month",
        [review_store.old_forecast_id],
    )
    expected = expected_old_forecast_errors().groupby("month").agg(
        days=("day", "count"), mape=("ape_pct", "mean"), coverage=("inside", "mean"), peak=("actual", "max")
    )
    assert [pd.Timestamp(m) for m in monthly["month"]] == list(expected.index)
    assert monthly["days"].tolist() == [30, 30, 30]
    assert monthly["mape_pct"].to_numpy() == pytest.approx(expected["mape"].to_numpy())
    assert monthly["interval_coverage"].to_numpy() == pytest.approx(expected["coverage"].to_numpy())
    assert monthly["max_actual_peak"].to_numpy() == pytest.approx(expected["peak"].to_numpy())


def test_forecast_accuracy_whole_window(review_store: ReviewStore) -> None:
    overall = query(review_store.store, "SELECT * FROM forecast_accuracy WHERE forecast_id = ?", [review_store.old_forecast_id])
    expected = expected_old_forecast_errors()
    assert overall["days"].iloc[0] == 90
    assert overall["mape_pct"].iloc[0] == pytest.approx(expected["ape_pct"].mean())
    assert overall["days_above_upper"].iloc[0] == int((~expected["inside"]).sum())


def test_plan_vs_actual_november_short(review_store: ReviewStore) -> None:
    rows = query(
        review_store.store, "SELECT * FROM plan_vs_actual WHERE plan_id = ? ORDER BY month", [review_store.old_plan_id]
    )
    november = rows[pd.to_datetime(rows["month"]) == pd.Timestamp("2026-11-01")].iloc[0]
    safe_rps = OLD_BREAKING_RPS * SAFE_FRACTION
    assert november["actual_peak_rps"] == pytest.approx(peak_rps(LAST_DAY))
    assert november["instances_needed_for_actual"] == math.ceil(peak_rps(LAST_DAY) / safe_rps) + REDUNDANCY == 8
    assert november["planned_instances"] == 7
    assert bool(november["actual_above_plan"])
    assert rows["observed_days"].tolist() == [30, 30, 30]


def test_latest_plan_is_newest(review_store: ReviewStore) -> None:
    rows = query(review_store.store, "SELECT * FROM latest_plan ORDER BY month")
    assert rows["plan_id"].unique().tolist() == [review_store.new_plan_id]
    march = rows[pd.to_datetime(rows["month"]) == pd.Timestamp("2027-03-01")].iloc[0]
    # 2027-03-31 is day 395: upper 1.1 * (900 + 790) = 1859 rps, / 200 rps = 9.3 -> 10 serving + 1 spare.
    assert march["instances"] == 11
    assert march["instances_to_add"] == 1
    assert march["capacity_rps"] == 2000.0


def test_plan_summary_runway_days(review_store: ReviewStore) -> None:
    rows = query(review_store.store, "SELECT * FROM plan_summary ORDER BY plan_id")
    newest = rows[rows["plan_id"] == review_store.new_plan_id].iloc[0]
    assert pd.Timestamp(newest["runway_date"]).date() == review_store.new_runway
    assert newest["runway_days"] == (pd.Timestamp(review_store.new_runway) - LAST_DAY).days
    assert newest["fleet_capacity_rps"] == (NEW_FLEET - REDUNDANCY) * 200.0


def test_run_summary_and_step_status(review_store: ReviewStore) -> None:
    run = query(review_store.store, "SELECT * FROM run_summary WHERE run_id = ?", [review_store.new_run_id]).iloc[0]
    assert run["steps"] == 6
    assert run["passed_steps"] == 4
    assert run["saturated_steps"] == 1
    assert run["max_passed_rps"] == 200.0
    assert run["p95_ms_at_max_passed"] == pytest.approx(120.0)
    steps = query(review_store.store, "SELECT status FROM step_summary WHERE run_id = ? ORDER BY step_index", [review_store.new_run_id])
    assert steps["status"].tolist() == ["passed"] * 4 + ["failed", "generator saturated"]


def test_latest_forecast_newest_points(review_store: ReviewStore) -> None:
    rows = query(review_store.store, "SELECT forecast_id, min(day) AS first_day, count(*) AS days FROM latest_forecast GROUP BY ALL")
    assert rows["forecast_id"].tolist() == [review_store.new_forecast_id]
    assert pd.Timestamp(rows["first_day"].iloc[0]) == pd.Timestamp("2026-12-01")
    assert rows["days"].iloc[0] == FORECAST_DAYS
