"""Per-service tables of the review, as formatted text with units in the column titles."""

from __future__ import annotations

import pandas as pd

from capplan.review.formatting import (
    MISSING,
    fmt_change,
    fmt_count,
    fmt_day,
    fmt_month,
    fmt_number,
    fmt_percent,
    fmt_runway,
)
from capplan.review.model import Accuracy, ForecastInfo, PlanInfo, QuarterlyReview, RunInfo, ServiceReview
from capplan.review.quarters import Quarter

__all__ = [
    "demand_months_frame",
    "forecast_details_frame",
    "accuracy_frame",
    "plan_check_frame",
    "load_test_frame",
    "steps_frame",
    "plan_frame",
    "scenario_frame",
]

# plan_months columns that the plan table already shows; later columns (costs, latency) are added after them.
_KNOWN_MONTH_COLUMNS = {"month", "months_ahead", "demand_rps", "demand_yhat_rps", "instances", "utilisation"}


def demand_months_frame(service: ServiceReview, quarter: Quarter) -> pd.DataFrame:
    """Monthly maximum of the observed peaks and of the forecast, from last quarter to the end of the next one."""
    start, end = quarter.previous().start, quarter.next().end
    complete = service.peaks[service.peaks["complete"].astype(bool)]
    observed = complete[(complete["day"] >= start) & (complete["day"] < end)]
    observed_by_month = observed.groupby(observed["day"].dt.to_period("M"))["peak_value"].agg(["max", "count"])
    forecast_by_month = pd.DataFrame(columns=["yhat", "upper"])
    if service.forecast_points is not None:
        points = service.forecast_points[(service.forecast_points["ts"] >= start) & (service.forecast_points["ts"] < end)]
        forecast_by_month = points.groupby(points["ts"].dt.to_period("M")).agg(yhat=("yhat", "max"), upper=("upper", "max"))
    months = sorted(set(observed_by_month.index) | set(forecast_by_month.index))
    rows = []
    for month in months:
        rows.append(
            {
                "month": str(month),
                "observed days": fmt_count(observed_by_month["count"].get(month)),
                "highest observed peak": fmt_number(observed_by_month["max"].get(month)),
                "highest forecast": fmt_number(forecast_by_month["yhat"].get(month)),
                "highest upper bound": fmt_number(forecast_by_month["upper"].get(month)),
            }
        )
    return pd.DataFrame(rows)


def forecast_details_frame(forecast: ForecastInfo) -> pd.DataFrame:
    """Return the forecast columns that later schema versions add (backtest scores, coverage), where filled."""
    rows = []
    for name, value in forecast.extra.items():
        if value is None:
            continue
        is_number = pd.api.types.is_number(value) and not pd.api.types.is_bool(value)
        if is_number:
            text = f"{float(value):,.0f}" if float(value).is_integer() else f"{float(value):,.4g}"
        else:
            text = str(value)
        rows.append({"column": name, "value": text})
    return pd.DataFrame(rows)


def accuracy_frame(accuracy: Accuracy) -> pd.DataFrame:
    """Error per month of last quarter's forecast; the error is observed minus forecast."""
    rows = []
    for row in accuracy.monthly.itertuples(index=False):
        rows.append(
            {
                "month": fmt_month(row.month),
                "days": fmt_count(row.days),
                "mean observed peak": fmt_number(row.mean_actual_peak),
                "mean forecast": fmt_number(row.mean_yhat),
                "mean error": fmt_number(row.mean_error),
                "MAPE": fmt_number(row.mape_pct, unit="%"),
                "days inside the interval": fmt_percent(row.interval_coverage, 0),
                "highest observed peak": fmt_number(row.max_actual_peak),
                "highest upper bound": fmt_number(row.max_upper),
            }
        )
    return pd.DataFrame(rows)


def plan_check_frame(plan_check: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for row in plan_check.itertuples(index=False):
        rows.append(
            {
                "month": fmt_month(row.month),
                "observed days": fmt_count(row.observed_days),
                "planned demand (rps)": fmt_number(row.planned_demand_rps),
                "highest observed peak (rps)": fmt_number(row.actual_peak_rps),
                "planned instances": fmt_count(row.planned_instances),
                "instances the peak needed": fmt_count(row.instances_needed_for_actual),
                "enough": "yes" if row.instances_needed_for_actual <= row.planned_instances else "no",
            }
        )
    return pd.DataFrame(rows)


def load_test_frame(service: ServiceReview, review: QuarterlyReview) -> pd.DataFrame:
    """This quarter's run against last quarter's, one row per measure."""
    current, previous = service.run, service.previous_run

    def describe(run: RunInfo | None) -> list[str]:
        if run is None:
            return [MISSING] * 10
        return [
            f"run {run.run_id} ({run.source})",
            fmt_day(run.started_at),
            run.target_url or MISSING,
            fmt_number(run.slo_p95_ms, 0),
            fmt_number(run.breaking_point_rps),
            fmt_number(run.safe_rps),
            fmt_number(run.recommended_rps),
            fmt_number(run.max_passed_rps),
            fmt_number(run.p95_ms_at_max_passed),
            fmt_count(run.saturated_steps),
        ]

    measures = [
        "run", "started", "target", "SLO p95 (ms)", "breaking point (rps)", "safe load per instance (rps)",
        "recommended load (rps)", "highest passed rate (rps)", "p95 at that rate (ms)", "generator-saturated steps",
    ]
    changes = [""] * len(measures)
    if current is not None and previous is not None:
        for index, attribute in ((4, "breaking_point_rps"), (5, "safe_rps"), (6, "recommended_rps"), (7, "max_passed_rps")):
            new, old = getattr(current, attribute), getattr(previous, attribute)
            changes[index] = fmt_change(new / old - 1.0) if new and old else MISSING
    frame = pd.DataFrame(
        {
            "measure": measures,
            f"last quarter ({review.previous_quarter})": describe(previous),
            f"this quarter ({review.quarter})": describe(current),
            "change": changes,
        }
    )
    if review.slo_p95_ms is not None and current is not None:
        extra = pd.DataFrame(
            {
                "measure": [f"breaking point at the review SLO {review.slo_p95_ms:g} ms (rps)", "safe load at the review SLO (rps)"],
                f"last quarter ({review.previous_quarter})": [
                    fmt_number(previous.breaking_point_rps_at_review_slo) if previous else MISSING,
                    fmt_number(previous.safe_rps_at_review_slo) if previous else MISSING,
                ],
                f"this quarter ({review.quarter})": [
                    fmt_number(current.breaking_point_rps_at_review_slo),
                    fmt_number(current.safe_rps_at_review_slo),
                ],
                "change": ["", ""],
            }
        )
        frame = pd.concat([frame, extra], ignore_index=True)
    return frame


def steps_frame(run: RunInfo) -> pd.DataFrame:
    rows = []
    for step in run.steps.itertuples(index=False):
        rows.append(
            {
                "step": str(step.step_index),
                "offered (rps)": fmt_number(step.offered_rps),
                "achieved (rps)": fmt_number(step.achieved_rps),
                "error rate": fmt_percent(step.error_rate, 2),
                "p50 (ms)": fmt_number(step.p50_ms),
                "p95 (ms)": fmt_number(step.p95_ms),
                "p99 (ms)": fmt_number(step.p99_ms),
                "status": str(step.status),
                "reason": step.fail_reason if isinstance(step.fail_reason, str) else "",
            }
        )
    return pd.DataFrame(rows)


def plan_frame(plan: PlanInfo, quarter: Quarter) -> pd.DataFrame:
    """Return the plan's months as text, with the plan_months columns of later schema versions after the known ones."""
    quantile = f"p{plan.demand_quantile * 100:.0f}"
    # Columns that no month of this plan fills (plans made before they existed) are left out.
    extra_columns = [
        c for c in plan.months.columns if c not in _KNOWN_MONTH_COLUMNS and plan.months[c].notna().any()
    ]
    rows = []
    for _, month in plan.months.iterrows():
        row = {
            "month": fmt_month(month["month"]) + (" *" if quarter.contains(month["month"]) else ""),
            "months ahead": fmt_count(month["months_ahead"]),
            f"demand {quantile} (rps)": fmt_number(month["demand_rps"]),
            "forecast (rps)": fmt_number(month["demand_yhat_rps"]),
            "instances": fmt_count(month["instances"]),
            "to add": fmt_count(max(0, int(month["instances"]) - plan.current_instances)),
            "utilisation": fmt_percent(month["utilisation"], 0),
        }
        for column in extra_columns:
            value = month[column]
            is_number = pd.api.types.is_number(value) and not pd.api.types.is_bool(value)
            row[column] = fmt_number(value, 2) if is_number else str(value)
        rows.append(row)
    return pd.DataFrame(rows)


def scenario_frame(service: ServiceReview, quarter: Quarter) -> pd.DataFrame:
    following = quarter.next()
    rows = []
    for scenario in service.scenarios:
        rows.append(
            {
                "scenario": scenario.name,
                "extra growth per year": fmt_change(scenario.growth_per_year, 0),
                "runway ends": fmt_runway(scenario.runway_date, has_plan=True),
                f"instances in {quarter}": fmt_count(scenario.instances_this_quarter),
                f"instances in {following}": fmt_count(scenario.instances_next_quarter),
                "instances within the horizon": fmt_count(scenario.instances_max),
            }
        )
    return pd.DataFrame(rows)
