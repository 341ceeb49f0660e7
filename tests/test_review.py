"""The quarterly review's numbers: quarters, forecast against actual, capacity, plan, scenarios and risks."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from test_review_store import (
    DAILY_SERIES,
    FIRST_DAY,
    LAST_DAY,
    NEW_FLEET,
    QUARTER,
    REDUNDANCY,
    SERIES,
    ReviewStore,
    build_review_store,
    expected_old_forecast_errors,
    peak_rps,
)

from capplan.errors import ConfigError, NotFoundError
from capplan.review import build_review, build_sections, parse_quarter, render_report
from capplan.review.capacity import judge_steps
from capplan.review.quarters import Quarter, current_quarter, quarter_of
from capplan.review.scenarios import DEFAULT_SCENARIOS, parse_scenarios
from capplan.review.store_reads import read_bottlenecks
from capplan.store import Store
from capplan.store.series import write_samples

GENERATED_AT = datetime(2026, 12, 4, 9, 0)


@pytest.fixture(scope="module")
def review_store(tmp_path_factory: pytest.TempPathFactory) -> ReviewStore:
    return build_review_store(tmp_path_factory.mktemp("review") / "review.duckdb")


@pytest.fixture(scope="module")
def review(review_store: ReviewStore):
    return build_review(review_store.store, QUARTER, now=GENERATED_AT)


@pytest.mark.parametrize("text", ["2026Q4", "2026q4", "2026-Q4", " 2026 Q4 "])
def test_quarter_parse_spellings(text: str) -> None:
    assert parse_quarter(text) == Quarter(2026, 4)


@pytest.mark.parametrize("text", ["2026Q5", "2026Q0", "Q4 2026", "2026-10", "", "26Q4"])
def test_quarter_parse_rejects_invalid(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_quarter(text)
    assert repr(text) in str(raised.value)
    assert "such as 2026Q4" in str(raised.value)


def test_quarter_bounds_and_neighbours() -> None:
    quarter = Quarter(2026, 4)
    assert quarter.start == pd.Timestamp("2026-10-01")
    assert quarter.end == pd.Timestamp("2027-01-01")
    assert quarter.last_day == date(2026, 12, 31)
    assert quarter.previous() == Quarter(2026, 3)
    assert quarter.next() == Quarter(2027, 1)
    assert Quarter(2027, 1).previous() == quarter
    assert [month.month for month in quarter.months()] == [10, 11, 12]
    assert quarter.contains(pd.Timestamp("2026-12-31 23:59"))
    assert not quarter.contains(pd.Timestamp("2027-01-01"))


def test_quarter_of_dates() -> None:
    assert quarter_of(date(2026, 3, 31)) == Quarter(2026, 1)
    assert quarter_of(pd.Timestamp("2026-04-01")) == Quarter(2026, 2)
    assert current_quarter(datetime(2026, 12, 4)) == Quarter(2026, 4)


def test_review_chooses_plans_and_runs(review, review_store: ReviewStore) -> None:
    assert [service.series_name for service in review.services] == [SERIES]
    service = review.service(SERIES)
    assert service.as_of == LAST_DAY
    assert service.plan.plan_id == review_store.new_plan_id
    assert service.previous_plan.plan_id == review_store.old_plan_id
    assert service.run.run_id == review_store.new_run_id
    assert service.previous_run.run_id == review_store.old_run_id
    assert service.forecast.forecast_id == review_store.new_forecast_id
    assert service.accuracy.forecast.forecast_id == review_store.old_forecast_id


def test_review_summary_numbers(review, review_store: ReviewStore) -> None:
    service = review.service(SERIES)
    assert service.plan.runway_date == review_store.new_runway
    assert service.runway_days == (pd.Timestamp(review_store.new_runway) - LAST_DAY).days
    # December 2026 needs ceil(1.1 * (900 + 2 * 305) / 200) + 1 = 10, March 2027 needs 11.
    assert service.instances_this_quarter == 10
    assert service.instances_next_quarter == 11
    assert service.instances_to_add == 11 - NEW_FLEET
    assert service.capacity_change == pytest.approx(200.0 / 240.0 - 1.0)
    assert service.quarter_peak == peak_rps(LAST_DAY)
    assert service.previous_quarter_peak == peak_rps(pd.Timestamp("2026-09-30"))
    assert service.plan.fleet_capacity_rps == (NEW_FLEET - REDUNDANCY) * 200.0


def test_review_accuracy_matches_arithmetic(review) -> None:
    accuracy = review.service(SERIES).accuracy
    expected = expected_old_forecast_errors()
    assert accuracy.days == len(expected) == 90
    assert accuracy.mape_pct == pytest.approx(expected["ape_pct"].mean())
    assert accuracy.mean_error == pytest.approx((expected["actual"] - expected["yhat"]).mean())
    assert accuracy.interval_coverage == pytest.approx(expected["inside"].mean())
    monthly = expected.groupby("month")["ape_pct"].mean()
    assert accuracy.monthly["mape_pct"].to_numpy() == pytest.approx(monthly.to_numpy())
    november = accuracy.plan_check[accuracy.plan_check["month"] == pd.Timestamp("2026-11-01")].iloc[0]
    assert november["instances_needed_for_actual"] == 8
    assert november["planned_instances"] == 7


def test_review_stops_at_quarter_end(review_store: ReviewStore) -> None:
    review = build_review(review_store.store, "2026Q3", now=GENERATED_AT)
    service = review.service(SERIES)
    assert service.as_of == pd.Timestamp("2026-09-30")
    assert service.plan.plan_id == review_store.old_plan_id
    assert service.previous_plan is None
    assert service.run.run_id == review_store.old_run_id
    assert service.previous_run is None
    # Forecast 1 was made in 2026Q3 itself, so no forecast is old enough to check.
    assert service.accuracy is None
    assert service.quarter_peak == peak_rps(pd.Timestamp("2026-09-30"))


def test_review_growth_zero_reproduces_plan(review) -> None:
    service = review.service(SERIES)
    forecast = next(s for s in service.scenarios if s.name == "forecast")
    assert forecast.months["instances"].tolist() == service.plan.months["instances"].tolist()
    assert forecast.runway_date == service.plan.runway_date


def test_review_faster_growth_earlier_runway(review) -> None:
    service = review.service(SERIES)
    by_name = {scenario.name: scenario for scenario in service.scenarios}
    assert set(by_name) == set(DEFAULT_SCENARIOS)
    assert by_name["faster growth"].runway_date < service.plan.runway_date < by_name["slower growth"].runway_date
    assert by_name["faster growth"].instances_max > service.instances_max


def test_review_risks_found(review) -> None:
    titles = [risk.title for risk in review.risks]
    assert "demand above the forecast's upper bound in 3 of 3 months" in titles
    assert "last quarter's plan short in 2026-11" in titles
    assert f"runway of {review.service(SERIES).runway_days} days" in titles
    assert "forecast intervals too narrow" in titles
    assert "capacity per instance down 17%" in titles
    assert "generator saturated in 1 of 6 steps of run 2" in titles
    severities = [risk.severity for risk in review.risks]
    assert severities == sorted(severities, key=["high", "medium", "low"].index)


def test_review_slo_override_recomputes_capacity(review_store: ReviewStore) -> None:
    review = build_review(review_store.store, QUARTER, slo_p95_ms="110ms", now=GENERATED_AT)
    run = review.service(SERIES).run
    # p95 is 40 + 0.4 x offered: 120 ms at 200 rps breaks 110 ms, so 150 rps is the highest that passes.
    assert run.breaking_point_rps_at_review_slo == 200.0
    assert run.safe_rps_at_review_slo == pytest.approx(160.0)
    assert run.safe_rps == 200.0
    assert "plan assumes a looser SLO than 110 ms" in [risk.title for risk in review.risks]


def test_judge_steps_skips_saturated() -> None:
    steps = pd.DataFrame(
        {
            "offered_rps": [100.0, 200.0, 300.0],
            "achieved_rps": [100.0, 150.0, 300.0],
            "error_rate": [0.0, 0.0, 0.0],
            "p95_ms": [50.0, 900.0, 60.0],
            "generator_saturated": [False, True, False],
        }
    )
    assert judge_steps(steps, 100.0, 0.01) == (None, 300.0)
    assert judge_steps(steps.assign(generator_saturated=False), 100.0, 0.01) == (200.0, 100.0)


def test_review_series_without_plan(review_store: ReviewStore) -> None:
    review = build_review(review_store.store, QUARTER, services=DAILY_SERIES, now=GENERATED_AT)
    service = review.service(DAILY_SERIES)
    assert service.plan is None
    assert service.forecast is None
    assert service.accuracy is None
    assert service.scenarios == []
    assert service.run.run_id == review_store.new_run_id
    assert service.run.source == "newest stepped run before the quarter ended"
    assert any("no forecast made before the end of 2026Q4" in note for note in review.notes)
    assert "no capacity plan" in [risk.title for risk in review.risks]
    sections = build_sections(review)
    assert "no capacity plan was made" in sections["summary"].blocks[1].text


def test_review_quarter_before_data(review_store: ReviewStore) -> None:
    review = build_review(review_store.store, "2025Q4", now=GENERATED_AT)
    service = review.service(SERIES)
    assert service.as_of is None
    assert service.plan is None
    assert service.run is None
    assert render_report(review).count("<section") == 6


def test_review_unknown_series_lists_known(review_store: ReviewStore) -> None:
    with pytest.raises(NotFoundError) as raised:
        build_review(review_store.store, QUARTER, services=["nope_rps"])
    assert "'nope_rps' not found" in str(raised.value)
    assert f"known series: {SERIES}, {DAILY_SERIES}" in str(raised.value)


def test_review_empty_store_names_fix(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty.duckdb")
    with store.write():
        pass
    with pytest.raises(NotFoundError, match="capplan collect"):
        build_review(store, QUARTER)


@pytest.mark.parametrize(
    "spec,expected",
    [
        (None, DEFAULT_SCENARIOS),
        (["flat=0", "launch=40%/y"], {"flat": 0.0, "launch": 0.4}),
        ({"shrink": "-10%/y", "grow": 0.25}, {"shrink": -0.1, "grow": 0.25}),
        ("high=25%", {"high": 0.25}),
    ],
)
def test_scenarios_parse_forms(spec, expected) -> None:
    assert parse_scenarios(spec) == pytest.approx(expected)


@pytest.mark.parametrize(
    "spec,message",
    [
        (["launch"], "give NAME=GROWTH"),
        (["a=1%", "a=2%"], "given twice"),
        (["x=-150%/y"], "below zero"),
        ([], "no scenarios given"),
    ],
)
def test_scenarios_parse_rejects(spec, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scenarios(spec)


def test_review_extra_plan_column_shown(tmp_path: Path) -> None:
    built = build_review_store(tmp_path / "extra.duckdb")
    with built.store.write() as con:
        # A column that a later schema version might add; the review must show it without knowing it.
        con.execute("ALTER TABLE plan_months ADD COLUMN carbon_kg DOUBLE")
        con.execute("UPDATE plan_months SET carbon_kg = 12.5 WHERE plan_id = ?", [built.new_plan_id])
    review = build_review(built.store, QUARTER, now=GENERATED_AT)
    plan_tables = [block for block in build_sections(review)["plan"].blocks if getattr(block, "caption", "").endswith("(* marks the months of 2026Q4)")]
    assert "carbon_kg" in plan_tables[0].frame.columns
    assert plan_tables[0].frame["carbon_kg"].iloc[0] == "12.50"


def test_bottleneck_tables_absent_is_none() -> None:
    assert read_bottlenecks(None, {"runs": ["run_id"]}, pd.Timestamp("2027-01-01")) is None  # type: ignore[arg-type]


def test_review_bottlenecks_become_risks(tmp_path: Path) -> None:
    built = build_review_store(tmp_path / "analysed.duckdb")
    with built.store.read() as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if not {"analyses", "analysis_bottlenecks"} <= tables:
        pytest.skip("this schema has no Prometheus analyzer tables")
    with built.store.write() as con:
        for analysis_id, created_at in ((1, datetime(2026, 11, 1)), (2, datetime(2026, 11, 25))):
            con.execute(
                """
                INSERT INTO analyses (analysis_id, created_at, prometheus_url, selector, window_start, window_end,
                                      status, thresholds, config)
                VALUES (?, ?, 'http://127.0.0.1:9090', 'job="checkout"', ?, ?, 'critical', '{}', '{}')
                """,
                [analysis_id, created_at, created_at - pd.Timedelta(days=7), created_at],
            )
        con.execute(
            """
            INSERT INTO analysis_bottlenecks VALUES
                (1, 'p95_ms', 'warning', 480.0, 400.0, 'ms', 'old finding'),
                (2, 'cpu_utilisation', 'critical', 0.93, 0.85, 'fraction', 'add instances or cores'),
                (2, 'p95_ms', 'warning', 420.0, 400.0, 'ms', 'look at the slowest endpoint')
            """
        )
    review = build_review(built.store, QUARTER, now=GENERATED_AT)
    assert review.analyses["analysis_id"].tolist() == [2]
    assert review.bottlenecks["metric"].tolist() == ["cpu_utilisation", "p95_ms"]
    bottleneck_risks = [risk for risk in review.risks if "bottleneck" in risk.title]
    assert [(risk.severity, risk.title) for risk in bottleneck_risks] == [
        ("high", "critical bottleneck: cpu_utilisation"),
        ("medium", "warning bottleneck: p95_ms"),
    ]
    assert "add instances or cores" in bottleneck_risks[0].detail


def test_report_html_self_contained(review) -> None:
    html = render_report(review)
    assert "<script" not in html
    assert "<link" not in html
    assert 'src="http' not in html
    assert "url(" not in html
    assert html.count('src="data:image/png;base64,') == 4
    assert f"runs out on {review.service(SERIES).plan.runway_date.isoformat()}" in html


def test_review_history_start_in_text(review) -> None:
    demand = build_sections(review)["demand"]
    texts = " ".join(block.text for block in demand.blocks if hasattr(block, "text"))
    assert f"from the history {FIRST_DAY.date()} to {LAST_DAY.date()}" in texts
    assert math.isclose(review.service(SERIES).quarter_peak_change, peak_rps(LAST_DAY) / peak_rps(pd.Timestamp("2026-09-30")) - 1)


def test_review_daily_series_samples_unused(tmp_path: Path) -> None:
    store = Store(tmp_path / "tiny.duckdb")
    write_samples(store, "tiny_rps", pd.DataFrame({"ts": [pd.Timestamp("2026-11-01 12:00")], "value": [5.0]}), source="csv")
    review = build_review(store, QUARTER, now=GENERATED_AT)
    assert review.service("tiny_rps").as_of == pd.Timestamp("2026-11-01")
    assert review.service("tiny_rps").quarter_peak == 5.0
