"""Risks: the findings a capacity review should act on, from the computed numbers.

Each rule below reads one fact of a ServiceReview and turns it into a Risk
with a severity: ``high`` needs action this quarter, ``medium`` before the
next review, ``low`` is worth knowing. The thresholds are review conventions,
not measured limits; they are constants here so a team can see and change them.
"""

from __future__ import annotations

import pandas as pd

from capplan.review.model import SEVERITIES, Risk, ServiceReview

__all__ = ["RUNWAY_HIGH_DAYS", "RUNWAY_MEDIUM_DAYS", "assess_service", "assess_bottlenecks", "sort_risks"]

RUNWAY_HIGH_DAYS = 90             # a runway shorter than this leaves about one quarter to add instances
RUNWAY_MEDIUM_DAYS = 180
MIN_ACCURACY_DAYS = 14            # fewer evaluated days are too little evidence to judge a forecast
HIGH_MAPE_PCT = 20.0
COVERAGE_SHORTFALL = 0.15         # coverage this far below the nominal level means the intervals are too narrow
CAPACITY_DROP = 0.10              # a safe load this much lower than last quarter's
STALE_RUN_DAYS = 120              # a load test older than about one quarter and a month


def assess_service(service: ServiceReview, review_slo_p95_ms: float | None) -> list[Risk]:
    """Return the risks of one service, in rule order."""
    risks = _runway_risks(service) + _accuracy_risks(service) + _capacity_risks(service, review_slo_p95_ms)
    if service.plan is None:
        name = service.series_name
        risks.append(
            Risk(
                "medium",
                name,
                "no capacity plan",
                f"the store has no plan of {name} made before the quarter ended; "
                f"run 'capplan plan --run RUN --demand {name}' to make one",
            )
        )
    return risks


def assess_bottlenecks(bottlenecks: pd.DataFrame) -> list[Risk]:
    """Return one risk per bottleneck of the Prometheus analysis: critical is high, anything else medium."""
    risks = []
    for row in bottlenecks.itertuples(index=False):
        severity = "high" if str(row.severity).lower() == "critical" else "medium"
        risks.append(
            Risk(
                severity,
                None,
                f"{row.severity} bottleneck: {row.metric}",
                f"analysis {row.analysis_id} measured {row.metric} = {row.value:,.3g} {row.unit} against a "
                f"threshold of {row.threshold:,.3g} {row.unit}; {row.recommendation}",
            )
        )
    return risks


def sort_risks(risks: list[Risk]) -> list[Risk]:
    """Return the risks ordered by severity, high first, keeping rule order within a severity."""
    return sorted(risks, key=lambda risk: SEVERITIES.index(risk.severity))


def _runway_risks(service: ServiceReview) -> list[Risk]:
    plan, days, name = service.plan, service.runway_days, service.series_name
    if plan is None or plan.runway_date is None or days is None:
        return []
    fleet = f"the current fleet of {plan.current_instances} instances ({plan.fleet_capacity_rps:,.0f} rps safe load)"
    if days <= 0:
        detail = f"{fleet} stopped covering the forecast demand on {plan.runway_date}"
        return [Risk("high", name, "fleet already short", detail)]
    if days <= RUNWAY_HIGH_DAYS:
        detail = f"{fleet} runs out on {plan.runway_date}, {days} days after the last observed day"
        return [Risk("high", name, f"runway of {days} days", detail)]
    if days <= RUNWAY_MEDIUM_DAYS:
        detail = f"{fleet} runs out on {plan.runway_date}; add instances before the next review"
        return [Risk("medium", name, f"runway of {days} days", detail)]
    return []


def _accuracy_risks(service: ServiceReview) -> list[Risk]:
    accuracy, name = service.accuracy, service.series_name
    if accuracy is None:
        detail = (
            "no forecast made before the quarter began has observed days after its history, "
            "so last quarter's forecast cannot be checked"
        )
        return [Risk("low", name, "forecast accuracy not measured", detail)]

    risks: list[Risk] = []
    forecast_id = accuracy.forecast.forecast_id
    monthly = accuracy.monthly
    exceeded = monthly[monthly["max_actual_peak"] > monthly["max_upper"]]
    if not exceeded.empty:
        months = ", ".join(
            f"{pd.Timestamp(row.month):%Y-%m} ({row.max_actual_peak:,.1f} against {row.max_upper:,.1f})"
            for row in exceeded.itertuples(index=False)
        )
        risks.append(
            Risk(
                "high",
                name,
                f"demand above the forecast's upper bound in {len(exceeded)} of {len(monthly)} months",
                f"the highest daily peak of a month exceeded the highest upper bound of forecast {forecast_id} "
                f"in {months}; a plan sized on that bound was short",
            )
        )

    if accuracy.plan_check is not None:
        check = accuracy.plan_check
        for row in check[check["instances_needed_for_actual"] > check["planned_instances"]].itertuples(index=False):
            month = pd.Timestamp(row.month).strftime("%Y-%m")
            detail = (
                f"the observed peak of {row.actual_peak_rps:,.1f} rps needed {row.instances_needed_for_actual} "
                f"instances, but the plan had {row.planned_instances}"
            )
            risks.append(Risk("high", name, f"last quarter's plan short in {month}", detail))

    if accuracy.days < MIN_ACCURACY_DAYS:
        return risks
    mape, coverage, level = accuracy.mape_pct, accuracy.interval_coverage, accuracy.forecast.level
    if mape is not None and mape > HIGH_MAPE_PCT:
        detail = (
            f"forecast {forecast_id} missed the daily peaks by {mape:.1f} % on average (MAPE) over "
            f"{accuracy.days} days; check the model and the history"
        )
        risks.append(Risk("medium", name, f"forecast error of {mape:.1f} %", detail))
    if coverage is not None and coverage < level - COVERAGE_SHORTFALL:
        detail = (
            f"{coverage:.0%} of observed days fell inside the {level:.0%} interval of forecast {forecast_id}, "
            "so plans sized on its upper bound are optimistic"
        )
        risks.append(Risk("medium", name, "forecast intervals too narrow", detail))
    return risks


def _capacity_risks(service: ServiceReview, review_slo_p95_ms: float | None) -> list[Risk]:
    run, previous, name = service.run, service.previous_run, service.series_name
    if run is None:
        detail = "no stepped load test with a safe load ran before the quarter ended; run 'capplan probe step'"
        return [Risk("medium", name, "no load test", detail)]

    risks: list[Risk] = []
    change = service.capacity_change
    if change is not None and change <= -CAPACITY_DROP and previous is not None:
        detail = (
            f"safe load per instance fell from {previous.safe_rps:,.1f} rps (run {previous.run_id}) to "
            f"{run.safe_rps:,.1f} rps (run {run.run_id}); look for a performance regression or a smaller instance size"
        )
        risks.append(Risk("medium", name, f"capacity per instance down {-change:.0%}", detail))
    if service.as_of is not None:
        age_days = (service.as_of - run.started_at.normalize()).days
        if age_days > STALE_RUN_DAYS:
            detail = (
                f"run {run.run_id} started on {run.started_at.date()}; capacity per instance may have changed "
                "since, so run 'capplan probe step' again"
            )
            risks.append(Risk("medium", name, f"load test {age_days} days old", detail))
    if run.saturated_steps:
        detail = (
            "these steps measured the load generator falling behind, not the target; rerun them with more "
            "generator capacity to know what the target does at those rates"
        )
        title = f"generator saturated in {run.saturated_steps} of {len(run.steps)} steps of run {run.run_id}"
        risks.append(Risk("low", name, title, detail))
    if run.breaking_point_rps is None and run.safe_rps is not None:
        detail = (
            "its safe load comes from the highest rate that passed, a lower bound; step higher to find the "
            "breaking point"
        )
        risks.append(Risk("low", name, f"run {run.run_id} never broke the SLO", detail))
    tighter_slo = (
        review_slo_p95_ms is not None
        and run.slo_p95_ms is not None
        and run.safe_rps is not None
        and run.safe_rps_at_review_slo is not None
        and run.safe_rps_at_review_slo < run.safe_rps
    )
    if tighter_slo:
        detail = (
            f"run {run.run_id} was judged at p95 {run.slo_p95_ms:g} ms; at the review's {review_slo_p95_ms:g} ms "
            f"its safe load is {run.safe_rps_at_review_slo:,.1f} rps instead of {run.safe_rps:,.1f} rps"
        )
        risks.append(Risk("medium", name, f"plan assumes a looser SLO than {review_slo_p95_ms:g} ms", detail))
    return risks
