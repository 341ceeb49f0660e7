"""Read-only queries behind the review, on one open DuckDB connection.

The review reads the analyst views (``daily_peaks``, ``step_summary``,
``forecast_vs_actual`` ...) wherever one fits, so the report and a
``capplan sql`` query of the same view give the same numbers. Tables and
columns that newer schema versions add (plan costs, forecast backtest
scores, a ``bottlenecks`` table) are optional: they are shown when present
and skipped when not.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from capplan.errors import StoreError
from capplan.review.model import ForecastInfo, PlanInfo, RunInfo

__all__ = [
    "StoreColumns",
    "read_columns",
    "list_series_names",
    "series_units",
    "read_daily_peaks",
    "read_forecast",
    "read_forecast_points",
    "read_plan",
    "read_run",
    "latest_step_run_id",
    "read_forecast_vs_actual",
    "read_accuracy_monthly",
    "read_plan_vs_actual",
    "read_bottlenecks",
]

logger = logging.getLogger(__name__)

StoreColumns = dict[str, list[str]]

# Columns of the first schema version; anything else in these tables came later.
_FORECAST_COLUMNS = (
    "forecast_id", "series_name", "created_at", "model", "resolution", "level",
    "history_start", "history_end", "horizon_end", "params",
)
_PLAN_MONTH_COLUMNS = ("plan_id", "month", "months_ahead", "demand_rps", "demand_yhat_rps", "instances", "utilisation")
# Prometheus analyzer tables, added by a later schema version than the first.
_ANALYSIS_COLUMNS = ("analysis_id", "created_at", "prometheus_url", "selector", "window_start", "window_end", "status")
_BOTTLENECK_COLUMNS = ("metric", "severity", "value", "threshold", "unit", "recommendation")


def read_columns(con: duckdb.DuckDBPyConnection) -> StoreColumns:
    """Return the columns of every table and view in the main schema, in table order."""
    rows = con.execute(
        """
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'main' ORDER BY table_name, ordinal_position
        """
    ).fetchall()
    columns: StoreColumns = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return columns


def list_series_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute("SELECT name FROM series ORDER BY name").fetchall()]


def series_units(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    return {row[0]: row[1] for row in con.execute("SELECT name, unit FROM series").fetchall()}


def read_daily_peaks(con: duckdb.DuckDBPyConnection, series_name: str, before: pd.Timestamp) -> pd.DataFrame:
    """Return day, peak_value and complete of a series for the days before ``before``."""
    frame = con.execute(
        """
        SELECT day, peak_value, complete FROM daily_peaks
        WHERE series_name = ? AND day < CAST(? AS DATE) ORDER BY day
        """,
        [series_name, before.to_pydatetime()],
    ).df()
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


def _optional_value(value: Any) -> Any:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    return value


def _to_date(value: Any) -> date | None:
    value = _optional_value(value)
    return None if value is None else pd.Timestamp(value).date()


def read_forecast(
    con: duckdb.DuckDBPyConnection,
    columns: StoreColumns,
    series_name: str,
    created_before: pd.Timestamp,
) -> ForecastInfo | None:
    """Return the newest daily-peak forecast of a series made before ``created_before``, or None."""
    frame = con.execute(
        """
        SELECT * FROM forecasts
        WHERE series_name = ? AND created_at < ? AND resolution = 'daily_peak'
        ORDER BY created_at DESC, forecast_id DESC LIMIT 1
        """,
        [series_name, created_before.to_pydatetime()],
    ).df()
    if frame.empty:
        return None
    row = frame.iloc[0].to_dict()
    extra_columns = [c for c in columns.get("forecasts", []) if c not in _FORECAST_COLUMNS]
    return ForecastInfo(
        forecast_id=int(row["forecast_id"]),
        series_name=str(row["series_name"]),
        created_at=pd.Timestamp(row["created_at"]),
        model=str(row["model"]),
        level=float(row["level"]),
        history_start=pd.Timestamp(row["history_start"]),
        history_end=pd.Timestamp(row["history_end"]),
        horizon_end=pd.Timestamp(row["horizon_end"]),
        extra={column: _optional_value(row[column]) for column in extra_columns},
    )


def read_forecast_points(con: duckdb.DuckDBPyConnection, forecast_id: int) -> pd.DataFrame:
    frame = con.execute(
        "SELECT ts, yhat, lower, upper FROM forecast_points WHERE forecast_id = ? ORDER BY ts", [forecast_id]
    ).df()
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame


def read_plan(
    con: duckdb.DuckDBPyConnection,
    columns: StoreColumns,
    series_name: str,
    created_before: pd.Timestamp,
) -> PlanInfo | None:
    """Return the newest plan of a series made before ``created_before``, with its months, or None."""
    # plans.fleet_capacity_rps came with a later schema version, so older stores read NULL instead.
    capacity = "fleet_capacity_rps" if "fleet_capacity_rps" in columns.get("plans", []) else "NULL AS fleet_capacity_rps"
    frame = con.execute(
        f"""
        SELECT plan_id, created_at, run_id, forecast_id, safe_rps_per_instance, redundancy,
               current_instances, demand_quantile, runway_date, policy, {capacity}
        FROM plans WHERE series_name = ? AND created_at < ?
        ORDER BY created_at DESC, plan_id DESC LIMIT 1
        """,
        [series_name, created_before.to_pydatetime()],
    ).df()
    if frame.empty:
        return None
    row = frame.iloc[0].to_dict()
    plan_id = int(row["plan_id"])

    # Month columns that later schema versions add (costs, predicted latency) come along as they are.
    month_columns = [c for c in columns.get("plan_months", []) if c != "plan_id"]
    missing = [c for c in _PLAN_MONTH_COLUMNS[1:] if c not in month_columns]
    if missing:
        raise StoreError(
            f"table plan_months lacks the columns {', '.join(missing)}; the store schema is damaged, "
            "so rebuild the store with 'capplan demo --no-serve' or restore a backup"
        )
    quoted = ", ".join(f'"{c}"' for c in month_columns)
    months = con.execute(f"SELECT {quoted} FROM plan_months WHERE plan_id = ? ORDER BY month", [plan_id]).df()
    months["month"] = pd.to_datetime(months["month"])

    return PlanInfo(
        plan_id=plan_id,
        created_at=pd.Timestamp(row["created_at"]),
        run_id=int(row["run_id"]),
        forecast_id=int(row["forecast_id"]),
        safe_rps_per_instance=float(row["safe_rps_per_instance"]),
        redundancy=int(row["redundancy"]),
        current_instances=int(row["current_instances"]),
        demand_quantile=float(row["demand_quantile"]),
        runway_date=_to_date(row["runway_date"]),
        horizon=_policy_horizon(row["policy"]),
        months=months,
        stored_fleet_capacity_rps=None if _optional_value(row["fleet_capacity_rps"]) is None else float(row["fleet_capacity_rps"]),
    )


def _policy_horizon(policy: Any) -> str | None:
    """Return the horizon text (such as ``12 months``) that a plan's policy JSON records, if any."""
    if not isinstance(policy, str):
        return None
    try:
        parsed = json.loads(policy)
    except json.JSONDecodeError:
        return None
    horizon = parsed.get("horizon") if isinstance(parsed, dict) else None
    return str(horizon) if horizon else None


def read_run(con: duckdb.DuckDBPyConnection, run_id: int, source: str) -> RunInfo | None:
    """Return a run with its steps from ``run_summary`` and ``step_summary``, or None when it is missing."""
    frame = con.execute("SELECT * FROM run_summary WHERE run_id = ?", [run_id]).df()
    if frame.empty:
        return None
    row = frame.iloc[0].to_dict()
    steps = con.execute("SELECT * FROM step_summary WHERE run_id = ? ORDER BY step_index", [run_id]).df()

    def number(name: str) -> float | None:
        value = _optional_value(row.get(name))
        return None if value is None else float(value)

    return RunInfo(
        run_id=int(row["run_id"]),
        kind=str(row["kind"]),
        tool=str(row["tool"]),
        target_url=_optional_value(row["target_url"]),
        started_at=pd.Timestamp(row["started_at"]),
        status=str(row["status"]),
        slo_p95_ms=number("slo_p95_ms"),
        max_error_rate=number("max_error_rate"),
        breaking_point_rps=number("breaking_point_rps"),
        safe_rps=number("safe_rps"),
        recommended_rps=number("recommended_rps"),
        max_passed_rps=number("max_passed_rps"),
        p95_ms_at_max_passed=number("p95_ms_at_max_passed"),
        saturated_steps=int(row["saturated_steps"] or 0),
        steps=steps,
        source=source,
    )


def latest_step_run_id(
    con: duckdb.DuckDBPyConnection, started_before: pd.Timestamp, exclude: int | None = None
) -> int | None:
    """Return the newest stepped run with a safe load that started before ``started_before``."""
    row = con.execute(
        """
        SELECT run_id FROM runs
        WHERE kind <> 'baseline' AND safe_rps IS NOT NULL AND started_at < ? AND run_id IS DISTINCT FROM ?
        ORDER BY started_at DESC, run_id DESC LIMIT 1
        """,
        [started_before.to_pydatetime(), exclude],
    ).fetchone()
    return None if row is None else int(row[0])


def read_forecast_vs_actual(con: duckdb.DuckDBPyConnection, forecast_id: int, before: pd.Timestamp) -> pd.DataFrame:
    frame = con.execute(
        """
        SELECT day, days_ahead, actual_peak, yhat, lower, upper, error, abs_pct_error, within_interval, above_upper
        FROM forecast_vs_actual WHERE forecast_id = ? AND day < CAST(? AS DATE) ORDER BY day
        """,
        [forecast_id, before.to_pydatetime()],
    ).df()
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


def read_accuracy_monthly(con: duckdb.DuckDBPyConnection, forecast_id: int, before: pd.Timestamp) -> pd.DataFrame:
    """Return the monthly accuracy rows of a forecast for the months before ``before`` (a month start)."""
    frame = con.execute(
        """
        SELECT month, days, mean_actual_peak, mean_yhat, max_actual_peak, max_yhat, max_upper,
               mean_error, mean_abs_error, mape_pct, interval_coverage, days_above_upper
        FROM forecast_accuracy_monthly WHERE forecast_id = ? AND month < CAST(? AS DATE) ORDER BY month
        """,
        [forecast_id, before.to_pydatetime()],
    ).df()
    frame["month"] = pd.to_datetime(frame["month"])
    return frame


def read_plan_vs_actual(con: duckdb.DuckDBPyConnection, plan_id: int, before: pd.Timestamp) -> pd.DataFrame:
    frame = con.execute(
        """
        SELECT month, months_ahead, observed_days, planned_demand_rps, actual_peak_rps,
               planned_instances, instances_needed_for_actual, actual_above_plan
        FROM plan_vs_actual WHERE plan_id = ? AND month < CAST(? AS DATE) ORDER BY month
        """,
        [plan_id, before.to_pydatetime()],
    ).df()
    frame["month"] = pd.to_datetime(frame["month"])
    return frame


def read_bottlenecks(
    con: duckdb.DuckDBPyConnection, columns: StoreColumns, before: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Return the newest Prometheus analysis per URL and selector made before ``before``, and their bottlenecks.

    The first frame has one row per analysis, the second one row per
    bottleneck, critical first. Returns None when the store has no analyzer
    tables, or when they lack a column read here.
    """
    needed = {
        "analyses": _ANALYSIS_COLUMNS,
        "analysis_bottlenecks": ("analysis_id", *_BOTTLENECK_COLUMNS),
    }
    for table, table_columns in needed.items():
        present = columns.get(table)
        if present is None:
            return None
        missing = [column for column in table_columns if column not in present]
        if missing:
            logger.warning("table %s lacks the columns %s; bottlenecks are left out of the review", table, missing)
            return None
    analyses = con.execute(
        f"""
        SELECT {", ".join(_ANALYSIS_COLUMNS)} FROM analyses WHERE created_at < ?
        QUALIFY row_number() OVER (PARTITION BY prometheus_url, coalesce(selector, '')
                                   ORDER BY created_at DESC, analysis_id DESC) = 1
        ORDER BY created_at DESC
        """,
        [before.to_pydatetime()],
    ).df()
    bottlenecks = con.execute(
        f"""
        SELECT b.analysis_id, {", ".join("b." + c for c in _BOTTLENECK_COLUMNS)}
        FROM analysis_bottlenecks b
        WHERE b.analysis_id IN (SELECT unnest(?::BIGINT[]))
        ORDER BY CASE lower(b.severity) WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, b.analysis_id, b.metric
        """,
        [[int(value) for value in analyses["analysis_id"]]],
    ).df()
    return analyses, bottlenecks
