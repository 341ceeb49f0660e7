"""Stored capacity plans: one row per plan and one per month of its horizon.

The month columns after ``utilisation`` were added with the plan detail
migration; a months frame without them stores NULL there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd

from capplan.errors import NotFoundError
from capplan.store.connection import Store

__all__ = ["insert_plan", "latest_plan_id", "get_plan", "plan_months"]

_MONTH_COLUMNS = ["month", "months_ahead", "demand_rps", "demand_yhat_rps", "instances", "utilisation"]
_DETAIL_COLUMNS = [
    "per_instance_rps",
    "p95_ms",
    "hours",
    "cost",
    "shortfall_probability",
    "shortfall_probability_peak_day",
    "scaling_efficiency",
]


def insert_plan(
    store: Store,
    *,
    created_at: datetime,
    run_id: int,
    forecast_id: int,
    series_name: str,
    safe_rps_per_instance: float,
    redundancy: int,
    current_instances: int,
    demand_quantile: float,
    runway_date: date | None,
    policy: Mapping[str, Any],
    months: pd.DataFrame,
    inputs: Mapping[str, Any] | None = None,
    price_per_instance_hour: float | None = None,
    fleet_capacity_rps: float | None = None,
) -> int:
    """Store a plan and its months and return the plan id.

    ``inputs`` records where every number came from (run, capacity report,
    forecast, policy) so a review can trace it.
    """
    frame = months[_MONTH_COLUMNS].copy()
    for column in _DETAIL_COLUMNS:
        frame[column] = pd.to_numeric(months[column], errors="coerce") if column in months.columns else float("nan")
    columns = _MONTH_COLUMNS + _DETAIL_COLUMNS
    with store.write() as con:
        row = con.execute(
            """
            INSERT INTO plans (created_at, run_id, forecast_id, series_name, safe_rps_per_instance,
                               redundancy, current_instances, demand_quantile, runway_date, policy,
                               inputs, price_per_instance_hour, fleet_capacity_rps)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING plan_id
            """,
            [
                created_at,
                run_id,
                forecast_id,
                series_name,
                safe_rps_per_instance,
                redundancy,
                current_instances,
                demand_quantile,
                runway_date,
                json.dumps(dict(policy), default=str),
                None if inputs is None else json.dumps(dict(inputs), default=str),
                price_per_instance_hour,
                fleet_capacity_rps,
            ],
        ).fetchone()
        assert row is not None
        plan_id = int(row[0])
        frame.insert(0, "plan_id", plan_id)
        con.register("incoming_months", frame)
        con.execute(
            f"INSERT INTO plan_months (plan_id, {', '.join(columns)}) "
            f"SELECT plan_id, {', '.join(columns)} FROM incoming_months"
        )
        con.unregister("incoming_months")
    return plan_id


def latest_plan_id(store: Store) -> int | None:
    """Return the newest plan id, or None when the store has no plan."""
    with store.read() as con:
        row = con.execute("SELECT max(plan_id) FROM plans").fetchone()
    return None if not row or row[0] is None else int(row[0])


def get_plan(store: Store, plan_id: int) -> dict[str, Any]:
    """Return a plan's row, or raise NotFoundError."""
    with store.read() as con:
        df = con.execute("SELECT * FROM plans WHERE plan_id = ?", [plan_id]).df()
    if df.empty:
        raise NotFoundError(f"plan {plan_id} not found in {store.path}; make one with 'capplan plan --run RUN --demand NAME'")
    return df.iloc[0].to_dict()


def plan_months(store: Store, plan_id: int) -> pd.DataFrame:
    """Return the months of a plan in order."""
    with store.read() as con:
        return con.execute(
            f"SELECT {', '.join(_MONTH_COLUMNS + _DETAIL_COLUMNS)} FROM plan_months WHERE plan_id = ? ORDER BY month",
            [plan_id],
        ).df()
