"""What a plan is made from: the run's safe load and latency, the forecast to use, the current fleet.

Each helper also returns or records its source, so a stored plan records
where every number came from.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from capplan.errors import InputDataError, NotFoundError
from capplan.store import Store
from capplan.store.forecasts import get_forecast, latest_forecast_id
from forecasting.capacity import CapacityReport
from forecasting.forecast import describe_horizon, forecast_series
from forecasting.scalability import UslFit, UslParameters, serving_instances_for

__all__ = [
    "RECENT_PEAK_DAYS",
    "p95_predictor",
    "safe_load",
    "run_record",
    "scaling_record",
    "current_forecast_id",
    "instances_for_recent_peaks",
]

logger = logging.getLogger(__name__)

RECENT_PEAK_DAYS = 7              # observed days that size the assumed current fleet
ONE_DAY = pd.Timedelta(days=1)


def p95_predictor(report: CapacityReport | None) -> Callable[[float], float | None] | None:
    """Return the run's p95 prediction, limited to the tested rates when latency never bent."""
    if report is None or report.latency is None or "p95" not in report.latency.statistics:
        return None
    model = report.latency

    def predict(rate_rps: float) -> float | None:
        if not model.has_signal and rate_rps > model.max_rate_rps:
            return None
        return model.predict_ms("p95", rate_rps)

    return predict


def safe_load(run: dict[str, Any], run_id: int, report: CapacityReport | None) -> tuple[float, str]:
    if report is not None and report.safe_rps is not None and report.safe_rps > 0:
        return float(report.safe_rps), f"capacity report of run {run_id}: {report.safe_basis}"
    if report is not None:
        logger.info("the capacity report of run %d has no safe load; using the run's stored safe load", run_id)
    return _safe_rps_of(run, run_id), f"stored safe load of run {run_id}"


def run_record(
    run: dict[str, Any], run_id: int, safe_rps: float, safe_source: str, report: CapacityReport | None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "run_id": run_id,
        "target_url": run.get("target_url"),
        "started_at": run.get("started_at"),
        "safe_rps_per_instance": safe_rps,
        "safe_load_source": safe_source,
    }
    if report is not None:
        summary = report.as_dict()
        for key in ("peak_rps", "peak_source", "knee_rps", "breaking_point_rps", "safe_rps", "safe_basis",
                    "sigma", "kappa", "lambda", "levels", "notes"):
            record[f"capacity_{key}"] = summary[key]
    return record


def scaling_record(scaling: UslFit | None, source: str | None) -> dict[str, Any]:
    if scaling is None:
        return {"model": "linear", "efficiency": 1.0}
    return {"model": "usl over fleet sizes", "source": source, **scaling.as_dict()}


def current_forecast_id(store: Store, series_name: str, horizon: pd.DateOffset, peaks: pd.Series) -> int:
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


def instances_for_recent_peaks(
    peaks: pd.Series, history_end: pd.Timestamp, safe_rps: float, redundancy: int, scaling: UslParameters | None
) -> int:
    recent = peaks[(peaks.index > history_end - RECENT_PEAK_DAYS * ONE_DAY) & (peaks.index <= history_end)]
    if recent.notna().any():
        peak = float(recent.max())
    else:
        peak = float(peaks.max())
    instances = serving_instances_for(peak, safe_rps, scaling)[0] + redundancy
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
