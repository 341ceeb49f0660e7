"""Build a QuarterlyReview from a store: every number the notebook and the report show.

Which stored objects a review of quarter Q uses:

- actuals: complete daily peaks of the days before Q ends; ``as_of`` is the
  last of them.
- current forecast and plan: the newest made before Q ends.
- last quarter's forecast and plan: the newest made before Q began. Its
  accuracy is measured on the complete days after its history, up to
  ``as_of``, which is what happened since that forecast was made.
- load tests: the run of each plan. Without a plan, the newest stepped run
  with a safe load that started before Q ends, or before Q began for last
  quarter's run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime

import duckdb
import pandas as pd

from capplan.errors import NotFoundError
from capplan.review import store_reads
from capplan.review.capacity import with_review_slo
from capplan.review.model import Accuracy, ForecastInfo, PlanInfo, QuarterlyReview, RunInfo, ServiceReview
from capplan.review.quarters import Quarter, current_quarter, parse_quarter
from capplan.review.risks import assess_bottlenecks, assess_service, sort_risks
from capplan.review.scenarios import parse_scenarios, plan_scenario
from capplan.store import Store
from capplan.units import parse_latency_ms

__all__ = ["build_review", "parse_services"]

logger = logging.getLogger(__name__)


def parse_services(services: Sequence[str] | str | None) -> list[str] | None:
    """Return series names from a list or a comma-separated text; None or empty means every series."""
    if services is None:
        return None
    items = services.split(",") if isinstance(services, str) else list(services)
    names = [str(item).strip() for item in items if str(item).strip()]
    return names or None


def build_review(
    store: Store | str | os.PathLike[str] | None,
    quarter: Quarter | str | None = None,
    *,
    services: Sequence[str] | str | None = None,
    slo_p95_ms: float | str | None = None,
    scenarios: Mapping[str, float | str] | Sequence[str] | None = None,
    now: datetime | None = None,
) -> QuarterlyReview:
    """Read the store (read-only) and compute the review of ``quarter`` (default: the current UTC quarter).

    ``services`` are series names (default: every series with a plan, else
    every series with a forecast, else every series). ``slo_p95_ms`` judges
    the load tests against another p95 SLO than their own, in ms or a text
    such as ``500ms``. ``scenarios`` maps names to extra growth per year (see
    :mod:`capplan.review.scenarios`). Raises ConfigError for invalid
    parameters, NotFoundError for unknown series or an empty store, and
    StoreError when the store cannot be read.
    """
    store = store if isinstance(store, Store) else Store(store)
    generated_at = pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime() if now is None else now
    review_quarter = current_quarter(generated_at) if quarter is None else parse_quarter(quarter)
    slo = None if slo_p95_ms is None else parse_latency_ms(slo_p95_ms, "SLO")
    scenario_growth = parse_scenarios(scenarios)
    requested = parse_services(services)

    with store.read() as con:
        columns = store_reads.read_columns(con)
        names = _choose_services(con, requested, store)
        units = store_reads.series_units(con)
        reviews = [
            _review_service(con, columns, name, units.get(name), review_quarter, slo, scenario_growth)
            for name in names
        ]
        analyzer = store_reads.read_bottlenecks(con, columns, review_quarter.end)
    analyses, bottlenecks = analyzer if analyzer is not None else (None, None)

    risks = [risk for service in reviews for risk in assess_service(service, slo)]
    if bottlenecks is not None:
        risks += assess_bottlenecks(bottlenecks)
    risks = sort_risks(risks)
    notes = _notes(reviews, review_quarter)
    logger.info(
        "review of %s: %d service(s), %d risk(s) (%d high)",
        review_quarter, len(reviews), len(risks), sum(risk.severity == "high" for risk in risks),
    )
    return QuarterlyReview(
        quarter=review_quarter,
        store_path=store.path,
        generated_at=generated_at,
        slo_p95_ms=slo,
        scenarios=scenario_growth,
        services=reviews,
        risks=risks,
        analyses=analyses,
        bottlenecks=bottlenecks,
        notes=notes,
    )


def _choose_services(con: duckdb.DuckDBPyConnection, requested: list[str] | None, store: Store) -> list[str]:
    known = store_reads.list_series_names(con)
    if not known:
        raise NotFoundError(
            f"store {store.path} has no demand series to review; load one with 'capplan collect --csv FILE --name NAME' "
            "or run 'capplan demo --no-serve'"
        )
    if requested is not None:
        unknown = [name for name in requested if name not in known]
        if unknown:
            raise NotFoundError(
                f"series {', '.join(repr(n) for n in unknown)} not found in {store.path}; known series: {', '.join(known[:10])}"
            )
        return list(dict.fromkeys(requested))
    for table in ("plans", "forecasts"):
        rows = con.execute(f"SELECT DISTINCT series_name FROM {table} ORDER BY series_name").fetchall()
        chosen = [row[0] for row in rows if row[0] in known]
        if chosen:
            return chosen
    return known


def _review_service(
    con: duckdb.DuckDBPyConnection,
    columns: store_reads.StoreColumns,
    name: str,
    unit: str | None,
    quarter: Quarter,
    slo: float | None,
    scenario_growth: dict[str, float],
) -> ServiceReview:
    previous = quarter.previous()
    peaks = store_reads.read_daily_peaks(con, name, quarter.end)
    complete = peaks[peaks["complete"].astype(bool)]
    as_of = pd.Timestamp(complete["day"].max()) if not complete.empty else None

    forecast = store_reads.read_forecast(con, columns, name, quarter.end)
    previous_forecast = store_reads.read_forecast(con, columns, name, quarter.start)
    plan = store_reads.read_plan(con, columns, name, quarter.end)
    previous_plan = store_reads.read_plan(con, columns, name, quarter.start)
    # Without a plan made during the quarter, the plan in use is still last quarter's,
    # and there is no newer plan to compare it with.
    comparison_plan = previous_plan
    if previous_plan is not None and plan is not None and previous_plan.plan_id == plan.plan_id:
        comparison_plan = None

    run = _choose_run(con, plan, quarter.end, None, "newest stepped run before the quarter ended")
    previous_run = _choose_run(
        con, comparison_plan, quarter.start, run.run_id if run else None, "newest stepped run before the quarter began"
    )
    if previous_run is not None and run is not None and previous_run.run_id == run.run_id:
        previous_run = None
    if run is not None:
        run = with_review_slo(run, slo)
    if previous_run is not None:
        previous_run = with_review_slo(previous_run, slo)

    forecast_points = store_reads.read_forecast_points(con, forecast.forecast_id) if forecast else None
    accuracy = _accuracy(con, previous_forecast, previous_plan, quarter)
    previous_points = store_reads.read_forecast_points(con, previous_forecast.forecast_id) if accuracy else None

    scenarios = []
    if plan is not None:
        plan_points, plan_history_end = _plan_points(con, plan, forecast, forecast_points)
        if plan_points is not None and plan_history_end is not None:
            scenarios = [
                plan_scenario(scenario, growth, plan, plan_points, plan_history_end, quarter)
                for scenario, growth in scenario_growth.items()
            ]

    following = quarter.next()
    return ServiceReview(
        series_name=name,
        unit=unit,
        peaks=peaks,
        as_of=as_of,
        quarter_peak=_max_peak(complete, quarter.start, quarter.end),
        previous_quarter_peak=_max_peak(complete, previous.start, previous.end),
        forecast=forecast,
        forecast_points=forecast_points,
        previous_forecast_points=previous_points,
        plan=plan,
        previous_plan=comparison_plan,
        run=run,
        previous_run=previous_run,
        accuracy=accuracy,
        scenarios=scenarios,
        instances_this_quarter=plan.max_instances_between(quarter.start, quarter.end) if plan else None,
        instances_next_quarter=plan.max_instances_between(following.start, following.end) if plan else None,
        instances_max=int(plan.months["instances"].max()) if plan is not None and not plan.months.empty else None,
    )


def _choose_run(
    con: duckdb.DuckDBPyConnection,
    plan: PlanInfo | None,
    started_before: pd.Timestamp,
    exclude: int | None,
    fallback_source: str,
) -> RunInfo | None:
    if plan is not None:
        run = store_reads.read_run(con, plan.run_id, f"run of plan {plan.plan_id}")
        if run is not None:
            return run
        logger.warning("plan %d names run %d, which is not in the store", plan.plan_id, plan.run_id)
    run_id = store_reads.latest_step_run_id(con, started_before, exclude)
    return None if run_id is None else store_reads.read_run(con, run_id, fallback_source)


def _accuracy(
    con: duckdb.DuckDBPyConnection,
    forecast: ForecastInfo | None,
    plan: PlanInfo | None,
    quarter: Quarter,
) -> Accuracy | None:
    if forecast is None:
        return None
    daily = store_reads.read_forecast_vs_actual(con, forecast.forecast_id, quarter.end)
    if daily.empty:
        return None
    monthly = store_reads.read_accuracy_monthly(con, forecast.forecast_id, quarter.end)
    plan_check = store_reads.read_plan_vs_actual(con, plan.plan_id, quarter.end) if plan is not None else None
    return Accuracy(forecast=forecast, daily=daily, monthly=monthly, plan_check=plan_check)


def _plan_points(
    con: duckdb.DuckDBPyConnection,
    plan: PlanInfo,
    forecast: ForecastInfo | None,
    forecast_points: pd.DataFrame | None,
) -> tuple[pd.DataFrame | None, pd.Timestamp | None]:
    """Return the points and history end of the forecast the plan was made from."""
    if forecast is not None and forecast.forecast_id == plan.forecast_id and forecast_points is not None:
        return forecast_points, forecast.history_end
    row = con.execute("SELECT history_end FROM forecasts WHERE forecast_id = ?", [plan.forecast_id]).fetchone()
    if row is None:
        logger.warning("plan %d names forecast %d, which is not in the store", plan.plan_id, plan.forecast_id)
        return None, None
    return store_reads.read_forecast_points(con, plan.forecast_id), pd.Timestamp(row[0])


def _max_peak(complete: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> float | None:
    inside = complete[(complete["day"] >= start) & (complete["day"] < end)]
    return None if inside.empty else float(inside["peak_value"].max())


def _notes(reviews: list[ServiceReview], quarter: Quarter) -> list[str]:
    """Return what the review could not show, one sentence each, with the command that fills the gap."""
    notes = []
    for service in reviews:
        name = service.series_name
        if service.as_of is None:
            notes.append(f"{name}: no complete day before the end of {quarter}, so no demand is shown.")
        if service.forecast is None:
            notes.append(f"{name}: no forecast made before the end of {quarter}; run 'capplan forecast {name}'.")
        if service.run is not None and service.previous_run is None:
            notes.append(f"{name}: no load test from before {quarter} to compare capacity per instance with.")
        if service.run is not None and service.plan is None:
            notes.append(f"{name}: run {service.run.run_id} is the newest stepped run; no plan links a run to this series.")
    return notes

