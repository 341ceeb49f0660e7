"""The Plan tab: runway, the instances needed at milestones, and the plan per month."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from capplan.app_pages.charts import instances_chart
from capplan.app_pages.commands import PLAN_COMMAND, capplan_command
from capplan.app_pages.data import StoreOverview, parse_json_object
from capplan.app_pages.formatting import as_date, format_percent, format_rps, format_utc

__all__ = ["render_plan_tab", "MILESTONE_MONTHS"]

MILESTONE_MONTHS = (3, 6, 9, 12)


def render_plan_tab(overview: StoreOverview, db_path: Path) -> None:
    """Show the newest plan, or the command that makes one."""
    plan = overview.plan
    months = overview.plan_months
    if plan is None or months is None:
        st.info("The store has no capacity plan yet. Make one from a load-test run and a demand forecast:")
        st.code(capplan_command(PLAN_COMMAND, db_path), language="bash")
        return

    _render_plan_source(plan)
    _render_fleet_metrics(plan, months)
    _render_milestone_metrics(plan, months)
    _render_month_table(months)
    st.altair_chart(instances_chart(months, int(plan["current_instances"])), width="stretch")
    _render_policy(plan)


def _render_plan_source(plan: dict[str, Any]) -> None:
    st.caption(
        f"Plan {int(plan['plan_id'])}, made {format_utc(plan['created_at'])} from load-test run "
        f"{int(plan['run_id'])} and forecast {int(plan['forecast_id'])} of series "
        f"`{plan['series_name']}`. It covers the {float(plan['demand_quantile']):g} quantile "
        f"of forecast demand and adds {int(plan['redundancy'])} redundant instance(s)."
    )


def _runway_text(runway: date | None, months: pd.DataFrame) -> tuple[str, str | None]:
    """Return the runway metric's value and its delta, which counts days from today (UTC)."""
    if runway is None:
        last_month = pd.Timestamp(months["month"].max()).strftime("%Y-%m") if not months.empty else "the horizon"
        return f"beyond {last_month}", None
    today = datetime.now(timezone.utc).date()
    days = (runway - today).days
    if days > 0:
        return runway.isoformat(), f"in {days} days"
    if days == 0:
        return runway.isoformat(), "today"
    return runway.isoformat(), f"{-days} days ago"


def _render_fleet_metrics(plan: dict[str, Any], months: pd.DataFrame) -> None:
    runway = as_date(plan["runway_date"])
    runway_value, runway_delta = _runway_text(runway, months)
    current_instances = int(plan["current_instances"])

    runway_column, fleet_column, safe_column = st.columns(3)
    runway_column.metric(
        "Runway (UTC date)",
        runway_value,
        delta=runway_delta,
        delta_color="off",
        delta_arrow="off",
        border=True,
        help=(
            f"The date from which the current {current_instances} instances no longer cover the planned demand, "
            "as computed by `capplan plan`. 'beyond' means they last the whole plan horizon."
        ),
    )
    fleet_column.metric("Current instances", current_instances, border=True)
    safe_column.metric(
        "Safe load per instance",
        format_rps(plan["safe_rps_per_instance"]),
        border=True,
        help="The load-test run's safe load, which the plan assigns to each instance.",
    )
    if runway is not None and runway <= datetime.now(timezone.utc).date():
        st.error(
            f"The runway date has passed: by this plan, {current_instances} instances have not covered "
            f"the planned demand since {runway.isoformat()}."
        )


def _render_milestone_metrics(plan: dict[str, Any], months: pd.DataFrame) -> None:
    current_instances = int(plan["current_instances"])
    for column, months_ahead in zip(st.columns(len(MILESTONE_MONTHS)), MILESTONE_MONTHS, strict=True):
        label = f"Instances needed in {months_ahead} months"
        rows = months[months["months_ahead"] == months_ahead]
        if rows.empty:
            column.metric(label, "—", help=f"The plan horizon ends before month {months_ahead}.")
            continue
        row = rows.iloc[0]
        instances = int(row["instances"])
        column.metric(
            label,
            instances,
            delta=f"{instances - current_instances:+d} vs now",
            delta_color="off",
            help=f"{pd.Timestamp(row['month']).strftime('%Y-%m')}: planned demand {format_rps(row['demand_rps'])}, "
            f"utilisation {format_percent(row['utilisation'])}.",
        )


def _render_month_table(months: pd.DataFrame) -> None:
    st.subheader("Plan per month")
    table = months.assign(month=pd.to_datetime(months["month"]).dt.strftime("%Y-%m"))
    st.dataframe(
        table,
        hide_index=True,
        column_order=["month", "months_ahead", "demand_rps", "demand_yhat_rps", "instances", "utilisation"],
        column_config={
            "month": st.column_config.TextColumn("Month"),
            "months_ahead": st.column_config.NumberColumn("Months ahead", format="%d"),
            "demand_rps": st.column_config.NumberColumn(
                "Planned demand (rps)", format="%.1f", help="The demand quantile that the plan covers."
            ),
            "demand_yhat_rps": st.column_config.NumberColumn("Forecast demand (rps)", format="%.1f"),
            "instances": st.column_config.NumberColumn("Instances", format="%d"),
            "utilisation": st.column_config.NumberColumn(
                "Utilisation", format="percent", help="Planned demand divided by the capacity of the serving instances."
            ),
        },
    )


def _render_policy(plan: dict[str, Any]) -> None:
    policy = parse_json_object(plan.get("policy"))
    if not policy:
        return
    with st.expander("Plan policy"):
        st.json(policy)
