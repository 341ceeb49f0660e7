"""Capacity plans: how many instances each month of a demand forecast needs.

Definitions, for a forecast of daily peaks with a central prediction interval
of probability ``level``:

- daily demand distribution: a normal distribution on each side of ``yhat``,
  with the spread on each side taken from the interval bound on that side
  (``(upper - yhat) / z`` above, ``(yhat - lower) / z`` below, z the
  (1 + level) / 2 standard normal quantile). So ``lower`` and ``upper`` are
  exactly its (1 - level) / 2 and (1 + level) / 2 quantiles, and ``yhat``
  its median.
- demand of a month (``demand_rps``): the maximum over the month's forecast
  days of the daily demand at the plan's ``demand_quantile``. The default
  quantile is (1 + level) / 2, which is ``upper`` itself (0.9 for level 0.8).
  ``demand_yhat_rps`` is the maximum of the point forecast ``yhat``.
- scaling efficiency of n instances: 1 (linear) unless a fleet-scaling fit
  is given, then X(n) / (n X(1)) from the USL over fleet sizes.
- serving instances: the fewest n with safe_rps_per_instance * n *
  efficiency(n) >= demand, at least 1 (with linear scaling ceil(demand /
  safe_rps_per_instance)).
- instances needed: serving instances + ``redundancy``, so the default of 1
  is N+1: the fleet carries the demand with one instance down.
- utilisation: demand / (safe_rps_per_instance * serving instances *
  efficiency). It is in (0, 1] for positive demand and 0 for zero demand, and
  1 means the serving instances run at exactly their safe load.
- per-instance rate: demand / (serving instances * efficiency), the rate one
  instance carries; ``p95_ms`` is the latency model's p95 at that rate.
- cost: instances * hours * price per instance-hour, where hours are the
  month's forecast days times 24.
- fleet capacity: the safe capacity of the current fleet's serving
  instances, (current_instances - redundancy) * safe_rps_per_instance *
  efficiency.
- runway date: the first forecast day whose demand at the plan's quantile
  exceeds the fleet capacity, or None when no day within the horizon does.
- shortfall probability of a month: the probability that at least one of its
  days exceeds the fleet capacity, with the days' forecast errors taken as
  independent. Errors of nearby days are correlated in practice, so this is
  an upper estimate. ``shortfall_probability_peak_day``, the probability for
  the riskiest single day, is the matching lower bound.
- months_ahead: 0 for the rest of the month in which the history ends, 1 for
  the next calendar month, and so on. Milestones are the months at
  MILESTONE_MONTHS ahead that the horizon reaches.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from capplan.errors import ConfigError, InputDataError
from capplan.store import Store
from capplan.store.forecasts import forecast_points, get_forecast
from capplan.store.plans import insert_plan
from capplan.store.runs import get_run, get_steps
from capplan.store.series import read_samples
from forecasting.capacity import CapacityPolicy, run_report
from forecasting.forecast import describe_horizon, horizon_days
from forecasting.peaks import daily_peaks
from forecasting.plan_inputs import (
    RECENT_PEAK_DAYS,
    current_forecast_id,
    instances_for_recent_peaks,
    p95_predictor,
    run_record,
    safe_load,
    scaling_record,
)
from forecasting.scalability import UslFit, UslParameters, scaling_efficiency, serving_instances_for

__all__ = [
    "DEFAULT_REDUNDANCY",
    "MILESTONE_MONTHS",
    "RECENT_PEAK_DAYS",
    "PlanResult",
    "instances_needed",
    "daily_demand_quantile",
    "daily_exceedance_probability",
    "build_plan",
    "make_plan",
]

logger = logging.getLogger(__name__)

DEFAULT_REDUNDANCY = 1            # spare instances on top of those that carry the demand (N+1)
MILESTONE_MONTHS = (3, 6, 9, 12)  # months ahead reported as milestones
RATIO_DECIMALS = 9                # demand / safe load is rounded first, so 3.0000000001 needs 3 instances
HOURS_PER_DAY = 24.0
ONE_DAY = pd.Timedelta(days=1)
DEMAND_DISTRIBUTION = "normal on each side of yhat, spread from the interval bound on that side"


@dataclass(frozen=True)
class PlanResult:
    """A capacity plan: one row per month, milestones, and the runway of the current fleet.

    ``months`` has the columns month (first day, a date), months_ahead,
    demand_rps, demand_yhat_rps, instances, utilisation, per_instance_rps,
    p95_ms, hours, cost, shortfall_probability,
    shortfall_probability_peak_day and scaling_efficiency (NaN where an
    input is missing: no price, no latency model, no interval level).
    ``milestones`` contains the rows of ``months`` at MILESTONE_MONTHS ahead.
    The fields after ``fleet_capacity_rps`` are filled by :func:`make_plan`,
    except the ones :func:`build_plan` sets from its arguments.
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
    level: float | None = None
    price_per_instance_hour: float | None = None
    total_cost: float | None = None
    scaling: dict[str, Any] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def instances_needed(demand_rps: float, safe_rps_per_instance: float, redundancy: int) -> int:
    """Return ceil(demand_rps / safe_rps_per_instance), at least 1, plus ``redundancy``."""
    ratio = round(demand_rps / safe_rps_per_instance, RATIO_DECIMALS)
    return max(1, math.ceil(ratio)) + redundancy


def daily_demand_quantile(points: pd.DataFrame, quantile: float, level: float) -> np.ndarray:
    """Return each day's demand at ``quantile`` under the distribution in the module docstring."""
    yhat, spread_up, spread_down = _spreads(points, level)
    z = float(ndtri(quantile))
    return yhat + z * (spread_up if z >= 0 else spread_down)


def daily_exceedance_probability(points: pd.DataFrame, capacity_rps: float, level: float) -> np.ndarray:
    """Return, per day, the probability that the daily peak exceeds ``capacity_rps``."""
    yhat, spread_up, spread_down = _spreads(points, level)
    gap = capacity_rps - yhat
    spread = np.where(gap >= 0, spread_up, spread_down)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(spread > 0, gap / spread, np.where(gap >= 0, np.inf, -np.inf))
    return 1.0 - ndtr(z)


def build_plan(
    points: pd.DataFrame,
    safe_rps_per_instance: float,
    current_instances: int,
    redundancy: int = DEFAULT_REDUNDANCY,
    start: pd.Timestamp | date | str | None = None,
    *,
    level: float | None = None,
    quantile: float | None = None,
    price_per_instance_hour: float | None = None,
    p95_at_rate: Callable[[float], float | None] | None = None,
    scaling: UslParameters | None = None,
) -> PlanResult:
    """Compute the monthly plan for forecast ``points`` (``ts``, ``yhat``, ``lower``, ``upper``).

    ``start`` is the last day of history; months_ahead counts calendar months
    from its month. It defaults to the day before the first point. ``level``
    is the interval probability of the points; without it the plan covers
    ``upper`` and has no shortfall probabilities. ``quantile`` defaults to
    (1 + level) / 2. ``p95_at_rate`` predicts one instance's p95 in ms at a
    rate, ``scaling`` replaces linear scaling across instances. See the
    module docstring for the definitions. Raises ConfigError for a
    non-positive safe load, fewer than 1 current instance, a negative
    redundancy, a quantile outside (0, 1) or a negative price, and
    InputDataError for empty or non-finite points.
    """
    safe_rps, current_instances, redundancy = _validate_fleet(safe_rps_per_instance, current_instances, redundancy)
    quantile = _validate_quantile(quantile, level)
    if price_per_instance_hour is not None and not (math.isfinite(price_per_instance_hour) and price_per_instance_hour >= 0):
        raise ConfigError(f"price per instance-hour {price_per_instance_hour!r} is invalid; give 0 or more, such as 0.25")
    frame = _validate_points(points)
    start_ts = pd.Timestamp(start) if start is not None else frame["ts"].min() - ONE_DAY
    start_month = start_ts.to_period("M")

    upper_quantile = None if level is None else (1.0 + level) / 2.0
    if quantile is not None and level is None:
        raise ConfigError(f"quantile {quantile:g} needs the forecast's interval level; pass level, such as 0.8")
    if quantile is None or (upper_quantile is not None and math.isclose(quantile, upper_quantile)):
        frame["demand"] = frame["upper"]
    else:
        assert level is not None
        frame["demand"] = np.maximum(daily_demand_quantile(frame, quantile, level), 0.0)

    serving_now = current_instances - redundancy
    fleet_capacity = serving_now * safe_rps * scaling_efficiency(scaling, serving_now)
    if current_instances <= redundancy:
        logger.warning(
            "the current fleet of %d instances has no capacity beyond the redundancy of %d, so the runway "
            "ends at the first forecast day with demand",
            current_instances, redundancy,
        )
    frame["exceedance"] = daily_exceedance_probability(frame, fleet_capacity, level) if level is not None else np.nan

    notes: list[str] = []
    rows = []
    for period, days in frame.groupby(frame["ts"].dt.to_period("M")):
        demand = float(days["demand"].max())
        serving, reachable = serving_instances_for(demand, safe_rps, scaling)
        if not reachable:
            notes.append(
                f"{period}: no fleet size carries {demand:,.1f} rps under the fitted scaling; "
                f"{serving} serving instances give the most"
            )
            logger.warning("%s: demand %.1f rps is beyond the fitted fleet scaling; capped at %d instances", period, demand, serving)
        efficiency = scaling_efficiency(scaling, serving)
        per_instance = demand / (serving * efficiency)
        instances = serving + redundancy
        hours = len(days) * HOURS_PER_DAY
        exceedance = days["exceedance"].to_numpy(dtype=float)
        rows.append(
            {
                "month": period.start_time.date(),
                "months_ahead": (period - start_month).n,
                "demand_rps": demand,
                "demand_yhat_rps": float(days["yhat"].max()),
                "instances": instances,
                "utilisation": per_instance / safe_rps,
                "per_instance_rps": per_instance,
                "p95_ms": _predict(p95_at_rate, per_instance),
                "hours": hours,
                "cost": np.nan if price_per_instance_hour is None else instances * hours * price_per_instance_hour,
                "shortfall_probability": float(1.0 - np.prod(1.0 - exceedance)) if level is not None else np.nan,
                "shortfall_probability_peak_day": float(exceedance.max()) if level is not None else np.nan,
                "scaling_efficiency": efficiency,
            }
        )
    months = pd.DataFrame(rows)
    milestones = months[months["months_ahead"].isin(MILESTONE_MONTHS)].reset_index(drop=True)

    exceeding = frame.loc[frame["demand"] > fleet_capacity, "ts"]
    runway_date = None if exceeding.empty else pd.Timestamp(exceeding.iloc[0]).date()
    total_cost = None if price_per_instance_hour is None else float(months["cost"].sum())

    return PlanResult(
        months=months,
        milestones=milestones,
        runway_date=runway_date,
        safe_rps_per_instance=safe_rps,
        current_instances=current_instances,
        redundancy=redundancy,
        fleet_capacity_rps=fleet_capacity,
        demand_quantile=quantile if quantile is not None else upper_quantile,
        level=level,
        price_per_instance_hour=price_per_instance_hour,
        total_cost=total_cost,
        notes=notes,
    )


def make_plan(
    store: Store,
    run_id: int,
    series_name: str,
    horizon: pd.DateOffset,
    current_instances: int | None = None,
    redundancy: int = DEFAULT_REDUNDANCY,
    forecast_id: int | None = None,
    *,
    quantile: float | None = None,
    price_per_instance_hour: float | None = None,
    policy: CapacityPolicy | None = None,
    scaling: UslFit | None = None,
    scaling_source: str | None = None,
) -> tuple[int, PlanResult]:
    """Build a plan from a run's capacity and a series' forecast, store it and return its id and result.

    The safe load per instance is the safe load of the run's capacity report
    under ``policy`` (see :mod:`forecasting.capacity`), or the run's stored
    ``safe_rps`` when the run has no steps to fit. Without ``forecast_id``,
    the latest forecast of the series is used, and a new one is made first
    when none exists, when it ends before the history end plus ``horizon``,
    or when the series has newer days than its history. Without
    ``current_instances``, the fleet is assumed to be the instances needed
    for the highest daily peak of the last RECENT_PEAK_DAYS observed days.
    Every input is checked before the first write.
    """
    if current_instances is not None:
        _validate_count(current_instances, "current instances", 1, "--instances")
    _validate_count(redundancy, "redundancy", 0, "--redundancy")
    _validate_quantile(quantile, None)
    if price_per_instance_hour is not None and not (math.isfinite(price_per_instance_hour) and price_per_instance_hour >= 0):
        raise ConfigError(f"--price-per-hour {price_per_instance_hour!r} is invalid; give 0 or more, such as 0.25")
    # Any reference day rejects a horizon under one day, before anything is read or written.
    horizon_days(pd.Timestamp("2000-01-01"), horizon)
    policy = policy or CapacityPolicy()
    run = get_run(store, run_id)
    report = run_report(store, run_id, policy) if not get_steps(store, run_id).empty else None
    safe_rps, safe_source = safe_load(run, run_id, report)

    peaks = None
    if forecast_id is None:
        peaks = daily_peaks(read_samples(store, series_name)).values
        forecast_id = current_forecast_id(store, series_name, horizon, peaks)
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

    scaling_params = scaling.params if scaling is not None else None
    instances_source = "option"
    if current_instances is None:
        if peaks is None:
            peaks = daily_peaks(read_samples(store, series_name)).values
        current_instances = instances_for_recent_peaks(peaks, history_end, safe_rps, redundancy, scaling_params)
        instances_source = f"highest daily peak of the last {RECENT_PEAK_DAYS} observed days"

    level = float(forecast["level"])
    plan = build_plan(
        points,
        safe_rps,
        current_instances,
        redundancy,
        start=history_end,
        level=level,
        quantile=quantile,
        price_per_instance_hour=price_per_instance_hour,
        p95_at_rate=p95_predictor(report),
        scaling=scaling_params,
    )
    scaling_summary = scaling_record(scaling, scaling_source)
    policy_record: dict[str, Any] = {
        "demand": "monthly maximum of the daily demand at the plan's quantile",
        "demand_distribution": DEMAND_DISTRIBUTION,
        "level": level,
        "horizon": describe_horizon(horizon),
        "current_instances_source": instances_source,
        "fleet_capacity_rps": plan.fleet_capacity_rps,
        "milestone_months": list(MILESTONE_MONTHS),
        "redundancy": redundancy,
        "safe_load_source": safe_source,
        "capacity_policy": {"basis": policy.basis, "safe_fraction": policy.safe_fraction,
                            "recommended_fraction": policy.recommended_fraction, "slo_p95_ms": policy.slo_p95_ms},
        "price_per_instance_hour": price_per_instance_hour,
        "scaling": scaling_summary,
        "shortfall_probability": "at least one day above the fleet capacity, days independent (upper estimate)",
    }
    inputs = {
        "run": run_record(run, run_id, safe_rps, safe_source, report),
        "forecast": {
            "forecast_id": forecast_id,
            "series": series_name,
            "model": forecast.get("model"),
            "level": level,
            "created_at": forecast.get("created_at"),
            "history_end": history_end,
            "horizon_end": forecast.get("horizon_end"),
        },
        "policy": policy_record,
    }
    plan = replace(plan, run_id=run_id, forecast_id=forecast_id, series_name=series_name, scaling=scaling_summary, inputs=inputs)
    plan_id = insert_plan(
        store,
        created_at=pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(),
        run_id=run_id,
        forecast_id=forecast_id,
        series_name=series_name,
        safe_rps_per_instance=safe_rps,
        redundancy=redundancy,
        current_instances=current_instances,
        demand_quantile=float(plan.demand_quantile or (1.0 + level) / 2.0),
        runway_date=plan.runway_date,
        policy=policy_record,
        months=plan.months,
        inputs=inputs,
        price_per_instance_hour=price_per_instance_hour,
        fleet_capacity_rps=plan.fleet_capacity_rps,
    )
    logger.info(
        "stored plan %d: run %d, forecast %d, runway %s",
        plan_id, run_id, forecast_id, plan.runway_date or "beyond the horizon",
    )
    return plan_id, plan


def _spreads(points: pd.DataFrame, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not 0.0 < level < 1.0:
        raise ConfigError(f"interval level {level!r} is outside (0, 1); forecasts store levels such as 0.8")
    z = float(ndtri((1.0 + level) / 2.0))
    yhat = points["yhat"].to_numpy(dtype=float)
    spread_up = np.maximum(points["upper"].to_numpy(dtype=float) - yhat, 0.0) / z
    spread_down = np.maximum(yhat - points["lower"].to_numpy(dtype=float), 0.0) / z
    return yhat, spread_up, spread_down


def _predict(predictor: Callable[[float], float | None] | None, rate_rps: float) -> float:
    if predictor is None:
        return np.nan
    value = predictor(rate_rps)
    return np.nan if value is None else float(value)


def _validate_quantile(quantile: float | None, level: float | None) -> float | None:
    if quantile is None:
        return None
    if not (isinstance(quantile, (int, float)) and 0.0 < quantile < 1.0):
        raise ConfigError(f"--quantile {quantile!r} is outside (0, 1); give for example 0.9 or 0.95")
    return float(quantile)


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
