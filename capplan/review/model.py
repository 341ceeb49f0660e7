"""The quarterly review's data: what the notebook and the report both show.

Every number is computed once, by :func:`capplan.review.build.build_review`,
and kept here. Rates from a load test or a plan are in requests/s (``_rps``).
Demand peaks are in the series' own unit (``unit``), which is requests/s for
the series that plans use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from capplan.review.quarters import Quarter

__all__ = [
    "SEVERITIES",
    "ForecastInfo",
    "PlanInfo",
    "RunInfo",
    "Accuracy",
    "ScenarioOutcome",
    "ServiceReview",
    "Risk",
    "QuarterlyReview",
]

SEVERITIES = ("high", "medium", "low")


@dataclass(frozen=True)
class ForecastInfo:
    """A stored forecast's metadata. ``extra`` contains columns added by later schema versions."""

    forecast_id: int
    series_name: str
    created_at: pd.Timestamp
    model: str
    level: float
    history_start: pd.Timestamp
    history_end: pd.Timestamp
    horizon_end: pd.Timestamp
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanInfo:
    """A stored plan and its months.

    ``months`` has month (first day, Timestamp), months_ahead, demand_rps,
    demand_yhat_rps, instances and utilisation, plus any month columns that
    later schema versions add (such as costs).
    """

    plan_id: int
    created_at: pd.Timestamp
    run_id: int
    forecast_id: int
    safe_rps_per_instance: float
    redundancy: int
    current_instances: int
    demand_quantile: float
    runway_date: date | None
    horizon: str | None
    months: pd.DataFrame
    stored_fleet_capacity_rps: float | None = None

    @property
    def fleet_capacity_rps(self) -> float:
        """Safe load of the current fleet without its spare instances.

        A plan that stores its own fleet capacity, which may account for
        imperfect scaling, is taken at its word. For older plans it is
        (current instances - redundancy) x safe load per instance.
        """
        if self.stored_fleet_capacity_rps is not None:
            return self.stored_fleet_capacity_rps
        return (self.current_instances - self.redundancy) * self.safe_rps_per_instance

    def max_instances_between(self, start: pd.Timestamp, end: pd.Timestamp) -> int | None:
        """Return the most instances any plan month in [start, end) needs, or None when no month falls there."""
        months = self.months[(self.months["month"] >= start) & (self.months["month"] < end)]
        return None if months.empty else int(months["instances"].max())


@dataclass(frozen=True)
class RunInfo:
    """A load-test run and its steps (the ``step_summary`` columns).

    ``source`` is why this run was chosen, such as ``run of plan 4``.
    The ``*_at_review_slo`` fields judge the steps against the review's SLO
    instead of the run's own; they equal the stored values when both SLOs match.
    """

    run_id: int
    kind: str
    tool: str
    target_url: str | None
    started_at: pd.Timestamp
    status: str
    slo_p95_ms: float | None
    max_error_rate: float | None
    breaking_point_rps: float | None
    safe_rps: float | None
    recommended_rps: float | None
    max_passed_rps: float | None
    p95_ms_at_max_passed: float | None
    saturated_steps: int
    steps: pd.DataFrame
    source: str
    review_slo_p95_ms: float | None = None
    breaking_point_rps_at_review_slo: float | None = None
    safe_rps_at_review_slo: float | None = None


@dataclass(frozen=True)
class Accuracy:
    """Last quarter's forecast against the daily peaks that arrived after it.

    ``daily`` has the ``forecast_vs_actual`` columns day, actual_peak, yhat,
    lower, upper, error, abs_pct_error and within_interval; ``monthly`` has
    the ``forecast_accuracy_monthly`` columns. ``plan_check`` has the
    ``plan_vs_actual`` rows of last quarter's plan, or None without one.
    """

    forecast: ForecastInfo
    daily: pd.DataFrame
    monthly: pd.DataFrame
    plan_check: pd.DataFrame | None

    @property
    def days(self) -> int:
        return len(self.daily)

    @property
    def mape_pct(self) -> float | None:
        return None if self.daily.empty else float(self.daily["abs_pct_error"].mean())

    @property
    def mean_error(self) -> float | None:
        """Mean of actual minus forecast: positive when the forecast was too low."""
        return None if self.daily.empty else float(self.daily["error"].mean())

    @property
    def interval_coverage(self) -> float | None:
        """Fraction of days whose actual peak fell inside the forecast interval."""
        return None if self.daily.empty else float(self.daily["within_interval"].astype(float).mean())


@dataclass(frozen=True)
class ScenarioOutcome:
    """The current plan redone with extra compound growth on top of its forecast."""

    name: str
    growth_per_year: float
    runway_date: date | None
    months: pd.DataFrame
    instances_this_quarter: int | None
    instances_next_quarter: int | None
    instances_max: int | None


@dataclass(frozen=True)
class ServiceReview:
    """Everything the review shows for one demand series.

    ``peaks`` has day (Timestamp), peak_value and complete for the days before
    the quarter's end; ``as_of`` is the last complete day among them.
    """

    series_name: str
    unit: str | None
    peaks: pd.DataFrame
    as_of: pd.Timestamp | None
    quarter_peak: float | None
    previous_quarter_peak: float | None
    forecast: ForecastInfo | None
    forecast_points: pd.DataFrame | None
    previous_forecast_points: pd.DataFrame | None
    plan: PlanInfo | None
    previous_plan: PlanInfo | None
    run: RunInfo | None
    previous_run: RunInfo | None
    accuracy: Accuracy | None
    scenarios: list[ScenarioOutcome]
    instances_this_quarter: int | None
    instances_next_quarter: int | None
    instances_max: int | None

    @property
    def runway_days(self) -> int | None:
        """Days from ``as_of`` to the plan's runway date; None without a plan or a runway inside its horizon."""
        if self.plan is None or self.plan.runway_date is None or self.as_of is None:
            return None
        return (pd.Timestamp(self.plan.runway_date) - self.as_of.normalize()).days

    @property
    def quarter_peak_change(self) -> float | None:
        """Change of the quarter's highest daily peak against the previous quarter's, as a fraction."""
        if not self.quarter_peak or not self.previous_quarter_peak:
            return None
        return self.quarter_peak / self.previous_quarter_peak - 1.0

    @property
    def capacity_change(self) -> float | None:
        """Change of the safe load per instance against last quarter's run, as a fraction."""
        if self.run is None or self.previous_run is None:
            return None
        if not self.run.safe_rps or not self.previous_run.safe_rps:
            return None
        return self.run.safe_rps / self.previous_run.safe_rps - 1.0

    @property
    def instances_to_add(self) -> int | None:
        """Instances beyond the current fleet that the plan needs by the end of next quarter."""
        if self.plan is None:
            return None
        needed = [n for n in (self.instances_this_quarter, self.instances_next_quarter) if n is not None]
        if not needed:
            return None
        return max(0, max(needed) - self.plan.current_instances)


@dataclass(frozen=True)
class Risk:
    """One finding of the review, with severity ``high``, ``medium`` or ``low``."""

    severity: str
    service: str | None
    title: str
    detail: str


@dataclass(frozen=True)
class QuarterlyReview:
    """The whole review: parameters, one ServiceReview per series, risks and bottlenecks.

    ``analyses`` has the newest Prometheus analysis per URL and selector made
    before the quarter ended, and ``bottlenecks`` their findings. Both are
    None when the store has no analyzer tables.
    """

    quarter: Quarter
    store_path: Path
    generated_at: datetime
    slo_p95_ms: float | None
    scenarios: dict[str, float]
    services: list[ServiceReview]
    risks: list[Risk]
    analyses: pd.DataFrame | None
    bottlenecks: pd.DataFrame | None
    notes: list[str]

    @property
    def previous_quarter(self) -> Quarter:
        return self.quarter.previous()

    @property
    def as_of(self) -> pd.Timestamp | None:
        """The latest ``as_of`` of the services: the last day the review has data for."""
        days = [service.as_of for service in self.services if service.as_of is not None]
        return max(days) if days else None

    def service(self, name: str) -> ServiceReview:
        for service in self.services:
            if service.series_name == name:
                return service
        raise KeyError(name)
