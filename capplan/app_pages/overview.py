"""The Overview page: runway and its probability, instances today vs needed, the policy, and what changed."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from capplan.app_pages.commands import PLAN_COMMAND, capplan_command
from capplan.app_pages.context import AppContext
from capplan.app_pages.data import load_demand, parse_json_object
from capplan.app_pages.formatting import (
    MISSING_TEXT,
    as_date,
    format_ms,
    format_percent,
    format_rps,
    format_time,
    is_missing,
)
from capplan.app_pages.intervals import shortfall_probability

__all__ = ["MILESTONE_MONTHS", "render_overview_page", "runway_text", "plan_changes"]

MILESTONE_MONTHS = (3, 6, 9, 12)


def render_overview_page(context: AppContext) -> None:
    """Show the newest plan's runway, milestones, policy and its changes against the plan before it."""
    overview = context.overview
    plan = overview.plan
    months = overview.plan_months
    if plan is None or months is None:
        st.info(
            f"The store has {len(overview.runs)} load-test run(s) and {len(overview.series)} demand series "
            "but no capacity plan yet. Make one from a run and a demand series:"
        )
        st.code(capplan_command(PLAN_COMMAND, context.db_path), language="bash")
        return

    st.caption(
        f"Plan {int(plan['plan_id'])}, made {format_time(plan['created_at'], context.timezone)} from load-test run "
        f"{int(plan['run_id'])} and forecast {int(plan['forecast_id'])} of `{plan['series_name']}`."
    )
    _render_runway(context, plan, months)
    _render_milestones(plan, months)
    policy_column, changes_column = st.columns([2, 3])
    with policy_column:
        st.subheader("SLO and policy in force")
        st.dataframe(policy_table(plan, _run_row(context, int(plan["run_id"]))), hide_index=True, width="stretch")
    with changes_column:
        st.subheader("Changes since the previous plan")
        previous = overview.previous_plan
        if previous is None or overview.previous_plan_months is None:
            st.caption("This is the only plan in the store, so there is nothing to compare with yet.")
        else:
            st.dataframe(
                plan_changes(previous, overview.previous_plan_months, plan, months, context.timezone),
                hide_index=True,
                width="stretch",
            )


def _run_row(context: AppContext, run_id: int) -> dict[str, Any] | None:
    runs = context.overview.runs
    rows = runs[runs["run_id"] == run_id] if not runs.empty else runs
    return None if rows.empty else rows.iloc[0].to_dict()


def runway_text(runway: date | None, months: pd.DataFrame, today: date | None = None) -> tuple[str, str | None]:
    """Return the runway metric's value and its delta, which counts days from ``today`` (UTC)."""
    if runway is None:
        last_month = pd.Timestamp(months["month"].max()).strftime("%Y-%m") if not months.empty else "the horizon"
        return f"beyond {last_month}", None
    today = today or datetime.now(timezone.utc).date()
    days = (runway - today).days
    if days > 0:
        return runway.isoformat(), f"in {days} days"
    if days == 0:
        return runway.isoformat(), "today"
    return runway.isoformat(), f"{-days} days ago"


def _render_runway(context: AppContext, plan: dict[str, Any], months: pd.DataFrame) -> None:
    runway = as_date(plan["runway_date"])
    value, delta = runway_text(runway, months)
    current = int(plan["current_instances"])
    capacity = (current - int(plan["redundancy"])) * float(plan["safe_rps_per_instance"])
    probability, likely_from = _shortfall_summary(context, plan, runway, capacity)

    runway_column, probability_column, likely_column, fleet_column = st.columns(4)
    runway_column.metric(
        "Runway (UTC date)",
        value,
        delta=delta,
        delta_color="off",
        delta_arrow="off",
        border=True,
        help=(
            f"The first day whose forecast upper bound exceeds what the current {current} instances carry "
            f"({format_rps(capacity)} with {int(plan['redundancy'])} spare). 'beyond' means they last the horizon."
        ),
    )
    probability_column.metric(
        "Shortfall chance that day",
        MISSING_TEXT if probability is None else format_percent(probability),
        border=True,
        help="Probability that the runway day's peak exceeds the fleet's capacity, reading the forecast "
        "interval as a normal distribution.",
    )
    likely_column.metric(
        "Short more likely than not",
        likely_from or "no day",
        border=True,
        help="The first day whose median forecast exceeds the fleet's capacity, so a shortfall is more likely "
        "than not; 'no day' means none within the horizon.",
    )
    fleet_column.metric("Instances today", current, border=True, help="The fleet size the plan assumed.")
    if runway is not None and runway <= datetime.now(timezone.utc).date():
        st.error(
            f"The runway date has passed: by this plan, {current} instances have not covered the planned "
            f"demand since {runway.isoformat()}."
        )


def _shortfall_summary(
    context: AppContext, plan: dict[str, Any], runway: date | None, capacity_rps: float
) -> tuple[float | None, str | None]:
    """Return the shortfall probability on the runway day and the first day with a median above capacity."""
    demand = load_demand(context.db, context.version, str(plan["series_name"]), int(plan["forecast_id"]))
    if demand.points is None or demand.points.empty or demand.forecast is None:
        return None, None
    points = demand.points
    level = float(demand.forecast["level"])
    days = pd.to_datetime(points["ts"]).dt.date.to_numpy()
    probability = None
    if runway is not None:
        matches = np.flatnonzero(days == runway)
        if matches.size:
            probability = float(shortfall_probability(points.iloc[matches[:1]], level, capacity_rps)[0])
    above = np.flatnonzero(points["yhat"].to_numpy(dtype=float) > capacity_rps)
    likely_from = days[above[0]].isoformat() if above.size else None
    return probability, likely_from


def _render_milestones(plan: dict[str, Any], months: pd.DataFrame) -> None:
    current = int(plan["current_instances"])
    for column, months_ahead in zip(st.columns(len(MILESTONE_MONTHS)), MILESTONE_MONTHS, strict=True):
        label = f"Instances needed in {months_ahead} months"
        rows = months[months["months_ahead"] == months_ahead]
        if rows.empty:
            column.metric(label, MISSING_TEXT, help=f"The plan horizon ends before month {months_ahead}.")
            continue
        row = rows.iloc[0]
        instances = int(row["instances"])
        column.metric(
            label,
            instances,
            delta=f"{instances - current:+d} vs today",
            delta_color="inverse",
            help=f"{pd.Timestamp(row['month']).strftime('%Y-%m')}: planned demand {format_rps(row['demand_rps'])}, "
            f"utilisation {format_percent(row['utilisation'])}.",
        )


def policy_table(plan: dict[str, Any], run: dict[str, Any] | None) -> pd.DataFrame:
    """Return the SLO and plan policy as (setting, value) rows."""
    policy = parse_json_object(plan.get("policy"))
    rows = []
    if run is not None:
        rows.append(("SLO p95 latency", format_ms(run.get("slo_p95_ms"))))
        rows.append(("Max error rate", format_percent(run.get("max_error_rate"))))
        rows.append(("Breaking point of run", format_rps(run.get("breaking_point_rps"))))
    rows += [
        ("Safe load per instance", format_rps(plan["safe_rps_per_instance"])),
        ("Redundancy", f"N+{int(plan['redundancy'])}"),
        ("Demand covered", f"{float(plan['demand_quantile']):g} quantile of the daily peak"),
    ]
    for key, label in (("horizon", "Horizon"), ("current_instances_source", "Fleet today from"), ("demand", "Demand per month")):
        if key in policy and not is_missing(policy[key]):
            rows.append((label, str(policy[key])))
    return pd.DataFrame(rows, columns=["setting", "value"])


def plan_changes(
    previous: dict[str, Any],
    previous_months: pd.DataFrame,
    latest: dict[str, Any],
    latest_months: pd.DataFrame,
    timezone_name: str,
) -> pd.DataFrame:
    """Return (what, previous, latest, change) rows comparing two plans."""

    def milestone(months: pd.DataFrame, ahead: int) -> int | None:
        rows = months[months["months_ahead"] == ahead]
        return None if rows.empty else int(rows.iloc[0]["instances"])

    def runway_of(plan: dict[str, Any]) -> date | None:
        return as_date(plan["runway_date"])

    rows: list[tuple[str, str, str, str]] = [
        (
            "Plan",
            f"{int(previous['plan_id'])}, {format_time(previous['created_at'], timezone_name)}",
            f"{int(latest['plan_id'])}, {format_time(latest['created_at'], timezone_name)}",
            "",
        )
    ]
    old_runway, new_runway = runway_of(previous), runway_of(latest)
    if old_runway is not None and new_runway is not None:
        runway_change = f"{(new_runway - old_runway).days:+d} days"
    else:
        runway_change = "" if old_runway == new_runway else "changed"
    rows.append(("Runway", _date_text(old_runway), _date_text(new_runway), runway_change))
    for key, label in (("run_id", "Load-test run"), ("forecast_id", "Forecast")):
        old, new = int(previous[key]), int(latest[key])
        rows.append((label, str(old), str(new), "" if old == new else "new"))
    old_safe, new_safe = float(previous["safe_rps_per_instance"]), float(latest["safe_rps_per_instance"])
    rows.append(("Safe load per instance", format_rps(old_safe), format_rps(new_safe), _relative(old_safe, new_safe)))
    for key, label in (("current_instances", "Instances today"), ("redundancy", "Redundancy")):
        old_count, new_count = int(previous[key]), int(latest[key])
        rows.append((label, str(old_count), str(new_count), _count_change(old_count, new_count)))
    for ahead in MILESTONE_MONTHS:
        old_needed, new_needed = milestone(previous_months, ahead), milestone(latest_months, ahead)
        change = _count_change(old_needed, new_needed) if old_needed is not None and new_needed is not None else ""
        rows.append((f"Needed in {ahead} months", _optional(old_needed), _optional(new_needed), change))
    return pd.DataFrame(rows, columns=["what", "previous", "latest", "change"])


def _date_text(value: date | None) -> str:
    return "beyond the horizon" if value is None else value.isoformat()


def _optional(value: int | None) -> str:
    return MISSING_TEXT if value is None else str(value)


def _count_change(old: int, new: int) -> str:
    return "" if old == new else f"{new - old:+d}"


def _relative(old: float, new: float) -> str:
    if old == new or old == 0:
        return ""
    return f"{(new - old) / old:+.0%}"
