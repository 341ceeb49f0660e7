"""The Demand tab: a series' daily peaks and its forecast with the prediction interval."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from capplan.app_pages.charts import demand_chart
from capplan.app_pages.commands import COLLECT_COMMAND, FORECAST_COMMAND, capplan_command
from capplan.app_pages.data import DemandData, StoreOverview, StoreVersion, load_demand
from capplan.app_pages.formatting import format_level, format_utc, is_missing

__all__ = ["render_demand_tab"]

DEFAULT_UNIT = "rps"


def render_demand_tab(overview: StoreOverview, db_path: Path, version: StoreVersion) -> None:
    """Show the history and forecast of one series. The picker lists the plan's series first."""
    if overview.series.empty:
        st.info("The store has no demand series yet. Load a metric history, then forecast it:")
        st.code(
            "\n".join(capplan_command(command, db_path) for command in (COLLECT_COMMAND, FORECAST_COMMAND)),
            language="bash",
        )
        return

    series_name = _pick_series(overview)
    plan = overview.plan
    # The plan's own forecast is the one its instance numbers rest on, even if a newer one exists.
    forecast_id = int(plan["forecast_id"]) if plan is not None and plan["series_name"] == series_name else None
    demand = load_demand(str(db_path), version, series_name, forecast_id)
    unit = _series_unit(overview.series, series_name)

    if demand.history.empty:
        st.warning(f"Series `{series_name}` has no samples.")
    if demand.forecast is None:
        st.info(f"Series `{series_name}` has no forecast yet. Make one with:")
        st.code(capplan_command(FORECAST_COMMAND.replace("NAME", series_name), db_path), language="bash")

    _render_demand_metrics(demand, unit)
    level = float(demand.forecast["level"]) if demand.forecast is not None else None
    st.altair_chart(demand_chart(demand.history, demand.points, level, unit), width="stretch")
    _render_forecast_source(demand)


def _pick_series(overview: StoreOverview) -> str:
    names = [str(name) for name in overview.series["name"]]
    plan = overview.plan
    if plan is not None and plan["series_name"] in names:
        names.remove(plan["series_name"])
        names.insert(0, plan["series_name"])
    if len(names) == 1:
        st.markdown(f"Series **{names[0]}**")
        return names[0]
    return str(st.selectbox("Series", names, key="demand_series"))


def _series_unit(series: pd.DataFrame, series_name: str) -> str:
    unit = series.loc[series["name"] == series_name, "unit"]
    if unit.empty or is_missing(unit.iloc[0]) or not str(unit.iloc[0]):
        return DEFAULT_UNIT
    return str(unit.iloc[0])


def _render_demand_metrics(demand: DemandData, unit: str) -> None:
    latest_column, median_column, upper_column = st.columns(3)
    if not demand.history.empty:
        last = demand.history.iloc[-1]
        latest_column.metric(
            f"Latest daily peak ({unit})",
            f"{float(last['value']):,.1f}",
            help=f"Maximum sample on {format_utc(last['ts'], with_time=False)}.",
        )
    if demand.forecast is None or demand.points is None or demand.points.empty:
        return
    end = demand.points.iloc[-1]
    end_day = format_utc(end["ts"], with_time=False)
    median_column.metric(f"Forecast at horizon end ({unit})", f"{float(end['yhat']):,.1f}", help=end_day)
    upper_column.metric(
        f"Upper bound at horizon end ({unit})",
        f"{float(end['upper']):,.1f}",
        help=f"Upper edge of the {format_level(float(demand.forecast['level']))} on {end_day}.",
    )


def _render_forecast_source(demand: DemandData) -> None:
    forecast = demand.forecast
    if forecast is None:
        st.caption("Daily peak: the maximum sample of each UTC day.")
        return
    st.caption(
        f"Daily peak: the maximum sample of each UTC day. Forecast {int(forecast['forecast_id'])}: model "
        f"`{forecast['model']}` at {forecast['resolution']} resolution, fitted on "
        f"{format_utc(forecast['history_start'])} to {format_utc(forecast['history_end'])}, made "
        f"{format_utc(forecast['created_at'])}. The shaded band is the {format_level(float(forecast['level']))}."
    )
