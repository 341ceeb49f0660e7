"""The Capacity plan page: instances, utilisation, predicted p95, shortfall chance and cost per month, as CSV too."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from capplan.app_pages.chart_display import show_chart
from capplan.app_pages.charts import instances_chart
from capplan.app_pages.commands import PLAN_COMMAND, capplan_command
from capplan.app_pages.context import AppContext
from capplan.app_pages.data import load_demand, load_steps
from capplan.app_pages.extra_reads import load_capacity_fit
from capplan.app_pages.formatting import format_money, format_time, is_missing
from capplan.app_pages.intervals import shortfall_probability
from capplan.app_pages.scenario_model import predicted_p95_ms

__all__ = ["render_plan_page", "plan_table"]

PRICE_KEY = "plan_price_per_instance_hour"
CSV_COLUMNS = [
    "month",
    "months_ahead",
    "demand_rps",
    "demand_yhat_rps",
    "instances",
    "utilisation",
    "predicted_p95_ms",
    "shortfall_probability",
    "cost",
]


def render_plan_page(context: AppContext) -> None:
    """Show the newest plan month by month, with a price input for the cost column and a CSV download."""
    plan = context.overview.plan
    months = context.overview.plan_months
    if plan is None or months is None:
        st.info("The store has no capacity plan yet. Make one from a load-test run and a demand forecast:")
        st.code(capplan_command(PLAN_COMMAND, context.db_path), language="bash")
        return

    st.caption(
        f"Plan {int(plan['plan_id'])}, made {format_time(plan['created_at'], context.timezone)}: run "
        f"{int(plan['run_id'])} at {float(plan['safe_rps_per_instance']):,.1f} rps per instance, forecast "
        f"{int(plan['forecast_id'])} of `{plan['series_name']}`, N+{int(plan['redundancy'])}, covering the "
        f"{float(plan['demand_quantile']):g} quantile of each month's highest daily peak."
    )
    stored_price = plan.get("price_per_instance_hour")
    price_column, _ = st.columns([1, 3])
    price = price_column.number_input(
        "Price per instance-hour",
        min_value=0.0,
        value=0.0 if is_missing(stored_price) else float(stored_price),
        step=0.01,
        format="%.4f",
        key=PRICE_KEY,
        help="In your currency. A month costs instances × forecast hours × this price; the plan's stored "
        "price is the default. The Scenarios page varies it too.",
    )
    table, p95_source = plan_table(context, plan, months, float(price))
    st.dataframe(
        table,
        hide_index=True,
        column_order=CSV_COLUMNS,
        column_config={
            "month": st.column_config.TextColumn("Month (UTC)"),
            "months_ahead": st.column_config.NumberColumn("Months ahead", format="%d"),
            "demand_rps": st.column_config.NumberColumn(
                "Planned demand (rps)", format="%.1f", help="The demand quantile that the plan covers."
            ),
            "demand_yhat_rps": st.column_config.NumberColumn("Median forecast (rps)", format="%.1f"),
            "instances": st.column_config.NumberColumn("Instances", format="%d"),
            "utilisation": st.column_config.ProgressColumn(
                "Utilisation",
                format="percent",
                min_value=0.0,
                max_value=1.0,
                help="Planned demand divided by the safe capacity of the serving instances.",
            ),
            "predicted_p95_ms": st.column_config.NumberColumn(
                "Predicted p95 (ms)", format="%.0f", help=f"At each serving instance's planned load; {p95_source}."
            ),
            "shortfall_probability": st.column_config.NumberColumn(
                "Shortfall chance",
                format="percent",
                help="Chance that demand exceeds the fleet in this month, as capplan plan stored it; for older "
                "plans, the highest daily chance that the peak exceeds the planned instances' safe load.",
            ),
            "cost": st.column_config.NumberColumn("Cost", format="localized", help="Instances × hours × price per instance-hour."),
        },
    )
    total = float(table["cost"].sum())
    download_column, total_column = st.columns([1, 3])
    download_column.download_button(
        "Download CSV",
        data=table[CSV_COLUMNS].to_csv(index=False).encode(),
        file_name=f"capplan-plan-{int(plan['plan_id'])}.csv",
        mime="text/csv",
        icon=":material/download:",
    )
    total_column.markdown(f"Total cost over the plan: **{format_money(total)}**")
    show_chart(instances_chart(months, int(plan["current_instances"])))


def plan_table(context: AppContext, plan: dict[str, Any], months: pd.DataFrame, price: float) -> tuple[pd.DataFrame, str]:
    """Return the plan months with predicted p95, shortfall chance and cost, and how p95 was predicted.

    Values that ``capplan plan`` stored (``p95_ms``, ``shortfall_probability``,
    ``hours``) are used where present; the app computes the missing ones.
    The cost always uses ``price`` per instance-hour.
    """
    table = months.copy()
    redundancy = int(plan["redundancy"])
    safe_rps = float(plan["safe_rps_per_instance"])
    serving = (table["instances"] - redundancy).clip(lower=1)

    if _has_values(table, "p95_ms"):
        table["predicted_p95_ms"] = table["p95_ms"]
        p95_source = "predicted by capplan plan from the run's latency model"
    else:
        steps = load_steps(context.db, context.version, int(plan["run_id"]))
        fit = load_capacity_fit(context.db, context.version, int(plan["run_id"]))
        loads = (table["demand_rps"] / serving).to_numpy(dtype=float)
        if steps.empty:
            table["predicted_p95_ms"] = np.nan
            p95_source = "the run has no steps"
        else:
            table["predicted_p95_ms"], p95_source = predicted_p95_ms(steps, getattr(fit.report, "latency", None), loads)

    if not _has_values(table, "shortfall_probability"):
        table["shortfall_probability"] = _monthly_shortfall(context, plan, table, serving * safe_rps)
    if not _has_values(table, "hours"):
        table["hours"] = _month_hours(table)
    table["cost"] = table["instances"] * table["hours"] * price
    table["month"] = pd.to_datetime(table["month"]).dt.strftime("%Y-%m")
    return table, p95_source


def _has_values(table: pd.DataFrame, column: str) -> bool:
    return column in table.columns and bool(table[column].notna().any())


def _month_hours(table: pd.DataFrame) -> np.ndarray:
    """Return each month's hours; NOTE: whole calendar months, while the plan's first and last month may be partial."""
    months = pd.to_datetime(table["month"]).dt.to_period("M")
    return np.array([month.days_in_month * 24.0 for month in months])


def _monthly_shortfall(context: AppContext, plan: dict[str, Any], table: pd.DataFrame, capacity_rps: pd.Series) -> np.ndarray:
    demand = load_demand(context.db, context.version, str(plan["series_name"]), int(plan["forecast_id"]))
    if demand.points is None or demand.forecast is None or demand.points.empty:
        return np.full(len(table), np.nan)
    points = demand.points
    level = float(demand.forecast["level"])
    point_months = pd.to_datetime(points["ts"]).dt.to_period("M")
    result = []
    for month, capacity in zip(pd.to_datetime(table["month"]).dt.to_period("M"), capacity_rps, strict=True):
        in_month = points[point_months == month]
        result.append(float(shortfall_probability(in_month, level, float(capacity)).max()) if not in_month.empty else np.nan)
    return np.array(result)
