"""Capacity plans: how many instances each month of a demand forecast needs.

Definitions, for a forecast of daily peaks with a central prediction interval
of probability ``level``:

- demand of a month (``demand_rps``): the maximum over the month's forecast
  days of ``upper``, the (1 + level) / 2 quantile of the daily peak. This
  quantile is stored as the plan's ``demand_quantile`` (0.9 for level 0.8).
  ``demand_yhat_rps`` is the maximum of the point forecast ``yhat``.
- serving instances: ceil(demand / safe_rps_per_instance), at least 1.
- instances needed: serving instances + ``redundancy``, so the default of 1
  is N+1: the fleet carries the demand with one instance down.
- utilisation: demand / (safe_rps_per_instance * serving instances). It is in
  (0, 1] for positive demand and 0 for zero demand, and 1 means the serving
  instances run at exactly their safe load.
- fleet capacity: (current_instances - redundancy) * safe_rps_per_instance.
- runway date: the first forecast day whose ``upper`` exceeds the fleet
  capacity, or None when no day within the horizon does.
- months_ahead: 0 for the rest of the month in which the history ends, 1 for
  the next calendar month, and so on. Milestones are the months at
  MILESTONE_MONTHS ahead that the horizon reaches.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from capplan.errors import ConfigError, InputDataError, NotFoundError
from capplan.store import Store
from capplan.store.forecasts import forecast_points, get_forecast, latest_forecast_id
from capplan.store.plans import insert_plan
from capplan.store.runs import get_run
from capplan.store.series import read_samples
from forecasting.forecast import describe_horizon, forecast_series, horizon_days
from forecasting.peaks import daily_peaks

__all__ = [
    "DEFAULT_REDUNDANCY",
    "MILESTONE_MONTHS",
    "RECENT_PEAK_DAYS",
    "PlanResult",
    "instances_needed",
    "build_plan",
    "make_plan",
]

logger = logging.getLogger(__name__)

DEFAULT_REDUNDANCY = 1            # spare instances on top of those that carry the demand (N+1)
MILESTONE_MONTHS = (3, 6, 9, 12)  # months ahead reported as milestones
RECENT_PEAK_DAYS = 7              # observed days that size the assumed current fleet
RATIO_DECIMALS = 9                # demand / safe load is rounded first, so 3.0000000001 needs 3 instances
ONE_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class PlanResult:
    """A capacity plan: one row per month, milestones, and the runway of the current fleet.

    ``months`` has the columns month (first day, a date), months_ahead,
    demand_rps, demand_yhat_rps, instances and utilisation. ``milestones``
    contains the rows of ``months`` at MILESTONE_MONTHS ahead. The fields
    after ``fleet_capacity_rps`` are filled by :func:`make_plan`.
    """

    months: pd.DataFrame
    milestones: pd.DataFrame
    runway_date: date | None
    safe_rps_per_instance: float
    current_instances: int
    redundancy: int
    fleet_capacity_rps: float
    demand_quantile: float | None = None
    run_id: int | None = None
    forecast_id: int | None = None
    series_name: str | None = None


def instances_needed(demand_rps: float, safe_rps_per_instance: float, redundancy: int) -> int:
    """Return ceil(demand_rps / safe_rps_per_instance), at least 1, plus ``redundancy``."""
    ratio = round(demand_rps / safe_rps_per_instance, RATIO_DECIMALS)
    return max(1, math.ceil(ratio)) + redundancy


def build_plan(
    points: pd.DataFrame,
    safe_rps_per_instance: float,
    current_instances: int,
    redundancy: int = DEFAULT_REDUNDANCY,
    start: pd.Timestamp | date | str | None = None,
) -> PlanResult:
    """Compute the monthly plan for forecast ``points`` (``ts``, ``yhat``, ``lower``, ``upper``).

    ``start`` is the last day of history; months_ahead counts calendar months
    from its month. It defaults to the day before the first point. See the
    module docstring for the definitions. Raises ConfigError for a
    non-positive safe load, fewer than 1 current instance or a negative
    redundancy, and InputDataError for empty or non-finite points.
    """
    safe_rps, current_instances, redundancy = _validate_fleet(safe_rps_per_instance, current_instances, redundancy)
    frame = _validate_points(points)
    start_ts = pd.Timestamp(start) if start is not None else frame["ts"].min() - ONE_DAY
    start_month = start_ts.to_period("M")

    month_periods = frame["ts"].dt.to_period("M")
    grouped = frame.groupby(month_periods).agg(demand_rps=("upper", "max"), demand_yhat_rps=("yhat", "max"))
    rows = []
    for period, row in grouped.iterrows():
        demand = float(row["demand_rps"])
        instances = instances_needed(demand, safe_rps, redundancy)
        serving = instances - redundancy
        rows.append(
            {
                "month": period.start_time.date(),
                "months_ahead": (period - start_month).n,
                "demand_rps": demand,
                "demand_yhat_rps": float(row["demand_yhat_rps"]),
                "instances": instances,
                "utilisation": demand / (safe_rps * serving),
            }
        )
    months = pd.DataFrame(rows)
    milestones = months[months["months_ahead"].isin(MILESTONE_MONTHS)].reset_index(drop=True)

    fleet_capacity = (current_instances - redundancy) * safe_rps
    if current_instances <= redundancy:
        logger.warning(
            "the current fleet of %d instances has no capacity beyond the redundancy of %d, so the runway "
            "ends at the first forecast day with demand",
            current_instances, redundancy,
        )
    exceeding = frame.loc[frame["upper"] > fleet_capacity, "ts"]
    runway_date = None if exceeding.empty else pd.Timestamp(exceeding.iloc[0]).date()

    return PlanResult(
        months=months,
        milestones=milestones,
        runway_date=runway_date,
        safe_rps_per_instance=safe_rps,
        current_instances=current_instances,
        redundancy=redundancy,
        fleet_capacity_rps=fleet_capacity,
    )


def make_plan(
    store: Store,
    run_id: int,
    series_name: str,
    horizon: pd.DateOffset,
    current_instances: int | None = None,
    redundancy: int = DEFAULT_REDUNDANCY,
    forecast_id: int | None = None,
) -> tuple[int, PlanResult]:
    """Build a plan from a run's safe load and a series' forecast, store it and return its id and result.

    The safe load per instance is the run's ``safe_rps``. Without
    ``forecast_id``, the latest forecast of the series is used, and a new one
    is made first when none exists, when it ends before the history end plus
    ``horizon``, or when the series has newer days than its history. Without
    ``current_instances``, the fleet is assumed to be the instances needed for
    the highest daily peak of the last RECENT_PEAK_DAYS observed days.
    Every input is checked before the first write.
    """
    if current_instances is not None:
        _validate_count(current_instances, "current instances", 1, "--instances")
    _validate_count(redundancy, "redundancy", 0, "--redundancy")
    # Any reference day rejects a horizon under one day, before anything is read or written.
    horizon_days(pd.Timestamp("2000-01-01"), horizon)
    run = get_run(store, run_id)
    safe_rps = _safe_rps_of(run, run_id)

    peaks = None
    if forecast_id is None:
        peaks = daily_peaks(read_samples(store, series_name)).values
        forecast_id = _current_forecast_id(store, series_name, horizon, peaks)
    forecast = get_forecast(store, forecast_id)
    if forecast["series_name"] != series_name:
        raise ConfigError(
            f"forecast {forecast_id} is of series {forecast['series_name']!r}, not {series_name!r}; "
            "give a forecast of the demand series or leave the forecast out to use the latest one"
        )
    history_end = pd.Timestamp(forecast["history_end"])
    plan_end = history_end + horizon
    points = forecast_points(store, forecast_id)
    points = points[points["ts"] <= plan_end]
    if pd.Timestamp(forecast["horizon_end"]) < plan_end.floor("D"):
        logger.warning(
            "forecast %d ends on %s, before the requested horizon of %s; the plan stops there",
            forecast_id, pd.Timestamp(forecast["horizon_end"]).date(), describe_horizon(horizon),
        )

    instances_source = "option"
    if current_instances is None:
        if peaks is None:
            peaks = daily_peaks(read_samples(store, series_name)).values
        current_instances = _instances_for_recent_peaks(peaks, history_end, safe_rps, redundancy)
        instances_source = f"highest daily peak of the last {RECENT_PEAK_DAYS} observed days"

    level = float(forecast["level"])
    plan = build_plan(points, safe_rps, current_instances, redundancy, start=history_end)
    plan = replace(
        plan, demand_quantile=(1.0 + level) / 2.0, run_id=run_id, forecast_id=forecast_id, series_name=series_name
    )
    policy: dict[str, Any] = {
        "demand": "monthly maximum of the forecast's upper bound",
        "level": level,
        "horizon": describe_horizon(horizon),
        "current_instances_source": instances_source,
        "fleet_capacity_rps": plan.fleet_capacity_rps,
        "milestone_months": list(MILESTONE_MONTHS),
    }
    plan_id = insert_plan(
        store,
        created_at=pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(),
        run_id=run_id,
        forecast_id=forecast_id,
        series_name=series_name,
        safe_rps_per_instance=safe_rps,
        redundancy=redundancy,
        current_instances=current_instances,
        demand_quantile=plan.demand_quantile,
        runway_date=plan.runway_date,
        policy=policy,
        months=plan.months,
    )
    logger.info(
        "stored plan %d: run %d, forecast %d, runway %s",
        plan_id, run_id, forecast_id, plan.runway_date or "beyond the horizon",
    )
    return plan_id, plan


def _current_forecast_id(store: Store, series_name: str, horizon: pd.DateOffset, peaks: pd.Series) -> int:
    """Return the latest forecast of the series, after making a new one if it is missing, short or stale."""
    try:
        forecast_id = latest_forecast_id(store, series_name)
    except NotFoundError:
        logger.info("series %r has no forecast yet; forecasting %s first", series_name, describe_horizon(horizon))
        return forecast_series(store, series_name, horizon)[0]

    forecast = get_forecast(store, forecast_id)
    history_end = pd.Timestamp(forecast["history_end"])
    needed_end = (history_end + horizon).floor("D")
    if pd.Timestamp(forecast["horizon_end"]) < needed_end:
        logger.info(
            "the latest forecast %d of series %r ends on %s, before the %s horizon; forecasting again",
            forecast_id, series_name, pd.Timestamp(forecast["horizon_end"]).date(), describe_horizon(horizon),
        )
        return forecast_series(store, series_name, horizon)[0]
    if pd.Timestamp(peaks.index[-1]) > history_end:
        logger.info(
            "series %r has daily peaks up to %s, newer than the history of forecast %d; forecasting again",
            series_name, pd.Timestamp(peaks.index[-1]).date(), forecast_id,
        )
        return forecast_series(store, series_name, horizon)[0]
    return forecast_id


def _instances_for_recent_peaks(
    peaks: pd.Series, history_end: pd.Timestamp, safe_rps: float, redundancy: int
) -> int:
    recent = peaks[(peaks.index > history_end - RECENT_PEAK_DAYS * ONE_DAY) & (peaks.index <= history_end)]
    if recent.notna().any():
        peak = float(recent.max())
    else:
        peak = float(peaks.max())
    instances = instances_needed(peak, safe_rps, redundancy)
    logger.info(
        "no current fleet size given; assuming %d instances, enough for the highest daily peak of the last "
        "%d observed days (%.1f rps) at %.1f rps per instance plus %d redundant",
        instances, RECENT_PEAK_DAYS, peak, safe_rps, redundancy,
    )
    return instances


def _safe_rps_of(run: dict[str, Any], run_id: int) -> float:
    value = run.get("safe_rps")
    if value is None or pd.isna(value):
        raise InputDataError(
            f"run {run_id} has no safe load (safe_rps is empty; run status {run.get('status')!r}); "
            "choose a finished stepped run, or run 'capplan probe step' to measure one"
        )
    safe_rps = float(value)
    if not math.isfinite(safe_rps) or safe_rps <= 0:
        raise InputDataError(
            f"run {run_id} has an invalid safe load of {safe_rps!r} rps; choose a run whose safe load is above 0"
        )
    return safe_rps


def _validate_fleet(safe_rps: float, current_instances: int, redundancy: int) -> tuple[float, int, int]:
    safe = float(safe_rps)
    if not math.isfinite(safe) or safe <= 0:
        raise ConfigError(f"safe load per instance {safe_rps!r} rps is invalid; it must be a number greater than 0")
    current = _validate_count(current_instances, "current instances", 1, "--instances")
    spare = _validate_count(redundancy, "redundancy", 0, "--redundancy")
    return safe, current, spare


def _validate_count(value: int, label: str, minimum: int, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{label} {value!r} is invalid; {option} must be a whole number of at least {minimum}")
    return int(value)


def _validate_points(points: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in ("ts", "yhat", "lower", "upper") if column not in points.columns]
    if missing:
        raise InputDataError(f"forecast points lack the columns {', '.join(missing)}")
    if points.empty:
        raise InputDataError("the forecast has no points within the plan horizon; forecast a longer horizon")
    frame = points[["ts", "yhat", "lower", "upper"]].copy()
    frame["ts"] = pd.to_datetime(frame["ts"])
    values = frame[["yhat", "lower", "upper"]].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise InputDataError("the forecast points contain NaN or infinite values; forecast the series again")
    return frame.sort_values("ts").reset_index(drop=True)
