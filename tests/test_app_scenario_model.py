"""The app's what-if model and interval math, as plain functions without Streamlit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from capplan.app_pages.intervals import interval_bands, shortfall_probability
from capplan.app_pages.scenario_model import PlanInputs, PlanSettings, compute_scenario_plan, safe_rps_for_slo
from capplan.errors import ConfigError
from forecasting.scenarios import Scenario

DAYS = 120
SLO_P95_MS = 500.0


def make_inputs(run_safe_rps: float | None = 240.0) -> PlanInputs:
    days = pd.date_range("2026-01-01", periods=DAYS, freq="D")
    yhat = np.full(DAYS, 300.0)
    points = pd.DataFrame({"ts": days, "yhat": yhat, "lower": yhat - 30.0, "upper": yhat + 30.0})
    steps = pd.DataFrame(
        {
            "offered_rps": [50.0, 100.0, 150.0, 200.0, 250.0, 300.0],
            "achieved_rps": [50.0, 100.0, 150.0, 200.0, 250.0, 260.0],
            "error_rate": [0.0] * 6,
            "p95_ms": [38.0, 42.0, 55.0, 80.0, 160.0, 940.0],
            "generator_saturated": [False] * 6,
        }
    )
    return PlanInputs(
        points=points,
        level=0.8,
        history_end=pd.Timestamp("2025-12-31"),
        steps=steps,
        run_slo_p95_ms=SLO_P95_MS,
        run_max_error_rate=0.01,
        run_safe_rps=run_safe_rps,
    )


def test_shortfall_probability_half_at_median() -> None:
    points = pd.DataFrame({"yhat": [100.0, 100.0], "upper": [120.0, 120.0]})

    probability = shortfall_probability(points, 0.8, 100.0)

    assert probability[0] == pytest.approx(0.5)


def test_shortfall_probability_tail_at_upper() -> None:
    points = pd.DataFrame({"yhat": [100.0], "upper": [120.0]})

    assert shortfall_probability(points, 0.8, 120.0)[0] == pytest.approx(0.1)


def test_interval_bands_scale_95_from_80() -> None:
    points = pd.DataFrame({"yhat": [100.0], "lower": [90.0], "upper": [110.0]})

    bands = interval_bands(points, 0.8)

    lower_80, upper_80, derived_80 = bands[0.8]
    lower_95, upper_95, derived_95 = bands[0.95]
    assert not derived_80
    assert derived_95
    assert upper_80[0] == 110.0
    assert upper_95[0] == pytest.approx(100.0 + 10.0 * 1.959964 / 1.281552, rel=1e-5)
    assert lower_95[0] < lower_80[0]


def test_interval_bands_prefers_stored_columns() -> None:
    points = pd.DataFrame({"yhat": [100.0], "lower": [90.0], "upper": [110.0], "lower_95": [70.0], "upper_95": [140.0]})

    lower_95, upper_95, derived = interval_bands(points, 0.8)[0.95]

    assert not derived
    assert (lower_95[0], upper_95[0]) == (70.0, 140.0)


def test_safe_rps_for_slo_run_own_slo() -> None:
    safe, source = safe_rps_for_slo(make_inputs(), SLO_P95_MS)

    assert safe == 240.0
    assert "run's safe load" in source


def test_safe_rps_for_slo_tighter_slo() -> None:
    safe, source = safe_rps_for_slo(make_inputs(), 100.0)

    assert safe == pytest.approx(0.8 * 250.0)
    assert "250 rps" in source


def test_safe_rps_for_slo_none_met() -> None:
    with pytest.raises(ConfigError, match="no measured step meets p95"):
        safe_rps_for_slo(make_inputs(), 10.0)


def test_scenario_plan_launch_step_raises_demand() -> None:
    inputs = make_inputs()
    launch = Scenario.step("2026-03-01", 0.5)
    flat = compute_scenario_plan(inputs, PlanSettings(slo_p95_ms=SLO_P95_MS, current_instances=3))
    launched = compute_scenario_plan(inputs, PlanSettings(slo_p95_ms=SLO_P95_MS, overlays=(launch,), current_instances=3))

    assert list(flat.months["instances"]) == [3, 3, 3, 3]
    assert list(launched.months["instances"]) == [3, 3, 4, 4]
    assert flat.runway_date is None
    assert str(launched.runway_date) == "2026-03-01"
    # After the launch: median 450, upper 495 at level 0.8, capacity (3 - 1) x 240 = 480 rps.
    sigma = 45.0 / 1.2815516
    assert launched.runway_probability == pytest.approx(1.0 - 0.5 * (1.0 + math.erf(30.0 / sigma / math.sqrt(2.0))))


def test_scenario_plan_cost_per_hour() -> None:
    plan = compute_scenario_plan(
        make_inputs(), PlanSettings(slo_p95_ms=SLO_P95_MS, price_per_instance_hour=0.25, current_instances=3)
    )

    january = plan.months.iloc[0]
    assert january["hours"] == 31 * 24
    assert january["cost"] == pytest.approx(january["instances"] * 31 * 24 * 0.25)
    assert plan.total_cost == pytest.approx(float(plan.months["cost"].sum()))


def test_plan_settings_json_round_trip() -> None:
    settings = PlanSettings(
        growth_per_year=0.2,
        overlays=(Scenario.step("2026-03-01", 0.3), Scenario.event("2026-06-01", "2026-06-03", 3.0)),
        slo_p95_ms=300.0,
        headroom=0.1,
        redundancy=2,
        price_per_instance_hour=0.5,
        current_instances=4,
    )

    assert PlanSettings.from_json(settings.to_json()) == settings


def test_plan_settings_rejects_headroom() -> None:
    with pytest.raises(ConfigError, match="headroom 0.95 is invalid"):
        PlanSettings(headroom=0.95)


def test_overlays_from_rows_kinds_and_problems() -> None:
    from capplan.app_pages.scenarios import KIND_EVENT, KIND_STEP, overlays_from_rows

    rows = pd.DataFrame(
        {
            "kind": [KIND_STEP, KIND_EVENT, KIND_EVENT, KIND_STEP],
            "start": pd.to_datetime(["2026-03-01", "2026-06-01", "2026-07-01", None]),
            "end": pd.to_datetime([None, "2026-06-03", None, None]),
            "change_pct": [30.0, 200.0, 50.0, 10.0],
        }
    )

    overlays, problems = overlays_from_rows(rows)

    assert [overlay.kind for overlay in overlays] == ["step", "event"]
    assert overlays[0].factor == pytest.approx(1.3)
    assert overlays[1].factor == pytest.approx(3.0)
    assert problems == ["Row 3: an event needs an end day."]
