"""The Demand page: daily peaks and a forecast fan (80 % and 95 %), the models compared, and scenario overlays."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from capplan.app_pages.chart_display import show_chart
from capplan.app_pages.charts import demand_chart
from capplan.app_pages.commands import COLLECT_COMMAND, FORECAST_COMMAND, capplan_command
from capplan.app_pages.context import AppContext
from capplan.app_pages.data import DemandData, load_demand, parse_json_object
from capplan.app_pages.extra_reads import BACKTEST_VIEW, load_backtest_summary, load_forecasts, load_plan_scenarios
from capplan.app_pages.formatting import format_level, format_time, is_missing
from capplan.app_pages.scenario_model import PlanSettings
from capplan.errors import ConfigError
from forecasting.scenarios import apply_scenarios

__all__ = ["render_demand_page"]

DEFAULT_UNIT = "rps"


def render_demand_page(context: AppContext) -> None:
    """Show one series' history and forecast fan. The picker lists the plan's series first."""
    overview = context.overview
    if overview.series.empty:
        st.info("The store has no demand series yet. Load a metric history, then forecast it:")
        st.code(
            "\n".join(capplan_command(command, context.db_path) for command in (COLLECT_COMMAND, FORECAST_COMMAND)),
            language="bash",
        )
        return

    series_column, forecast_column, overlay_column = st.columns(3)
    with series_column:
        series_name = _pick_series(context)
    forecasts = load_forecasts(context.db, context.version, series_name)
    with forecast_column:
        forecast_id = _pick_forecast(context, series_name, forecasts)
    demand = load_demand(context.db, context.version, series_name, forecast_id)
    with overlay_column:
        overlays = _pick_overlays(context, demand)
    unit = _series_unit(overview.series, series_name)

    if demand.history.empty:
        st.warning(f"Series `{series_name}` has no samples.")
    if demand.forecast is None:
        st.info(f"Series `{series_name}` has no forecast yet. Make one with:")
        st.code(capplan_command(FORECAST_COMMAND.replace("NAME", series_name), context.db_path), language="bash")

    _render_demand_metrics(demand, unit)
    level = float(demand.forecast["level"]) if demand.forecast is not None else None
    show_chart(demand_chart(demand.history, demand.points, level, unit, overlays))
    _render_forecast_source(demand, context.timezone)
    if demand.forecast is not None:
        _render_models(context, demand.forecast, forecasts)


def _pick_series(context: AppContext) -> str:
    names = [str(name) for name in context.overview.series["name"]]
    plan = context.overview.plan
    if plan is not None and plan["series_name"] in names:
        names.remove(plan["series_name"])
        names.insert(0, plan["series_name"])
    return str(st.selectbox("Series", names, key="demand_series"))


def _pick_forecast(context: AppContext, series_name: str, forecasts: pd.DataFrame) -> int | None:
    """Offer every forecast of the series; the plan's own comes first, because its numbers rest on it."""
    if forecasts.empty:
        return None
    ids = [int(value) for value in forecasts["forecast_id"]]
    plan = context.overview.plan
    if plan is not None and plan["series_name"] == series_name and int(plan["forecast_id"]) in ids:
        ids.remove(int(plan["forecast_id"]))
        ids.insert(0, int(plan["forecast_id"]))
    rows = forecasts.set_index("forecast_id")

    def label(forecast_id: int) -> str:
        row = rows.loc[forecast_id]
        return f"{forecast_id}: {row['model']}, {format_time(row['created_at'], context.timezone, with_time=False)}"

    return int(st.selectbox("Forecast", ids, format_func=label, key=f"demand_forecast_{series_name}"))


def _pick_overlays(context: AppContext, demand: DemandData) -> dict[str, pd.DataFrame]:
    """Offer the saved scenarios as overlays and return each one's adjusted forecast points."""
    if demand.points is None or demand.points.empty or "plan_scenarios" not in context.overview.tables:
        st.multiselect("Scenario overlays", [], disabled=True, help="Save scenarios on the Scenarios page to overlay them.")
        return {}
    saved = load_plan_scenarios(context.db, context.version)
    chosen = st.multiselect(
        "Scenario overlays",
        list(saved["name"]),
        key="demand_overlays",
        help="Saved scenarios' growth, launches and events applied to this forecast.",
    )
    overlays = {}
    first_day = pd.Timestamp(demand.points["ts"].min())
    for name in chosen:
        try:
            settings = PlanSettings.from_json(str(saved.loc[saved["name"] == name, "settings"].iloc[0]))
        except ConfigError as exc:
            st.warning(f"Scenario `{name}`: {exc}")
            continue
        overlays[name] = apply_scenarios(demand.points, settings.scenarios(first_day), step=pd.Timedelta(days=1))
    return overlays


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
            help=f"Maximum sample on {format_time(last['ts'], with_time=False)} (a UTC day).",
        )
    if demand.forecast is None or demand.points is None or demand.points.empty:
        return
    end = demand.points.iloc[-1]
    end_day = format_time(end["ts"], with_time=False)
    median_column.metric(f"Forecast at horizon end ({unit})", f"{float(end['yhat']):,.1f}", help=end_day)
    upper_column.metric(
        f"Upper bound at horizon end ({unit})",
        f"{float(end['upper']):,.1f}",
        help=f"Upper edge of the {format_level(float(demand.forecast['level']))} on {end_day}.",
    )


def _render_forecast_source(demand: DemandData, timezone: str) -> None:
    forecast = demand.forecast
    if forecast is None:
        st.caption("Daily peak: the maximum sample of each UTC day.")
        return
    st.caption(
        f"Daily peak: the maximum sample of each UTC day. Forecast {int(forecast['forecast_id'])}: model "
        f"`{forecast['model']}` at {forecast['resolution']} resolution, fitted on "
        f"{format_time(forecast['history_start'], timezone)} to {format_time(forecast['history_end'], timezone)}, "
        f"made {format_time(forecast['created_at'], timezone)}. A band marked 'scaled' is derived from the stored "
        f"{format_level(float(forecast['level']))} by reading it as a normal distribution."
    )


def _render_models(context: AppContext, forecast: dict[str, Any], forecasts: pd.DataFrame) -> None:
    """Show the chosen model's backtest score beside the other candidates, and the series' other forecasts."""
    st.subheader("Models")
    chosen = str(forecast["model"])
    scores = pd.DataFrame()
    if BACKTEST_VIEW in context.overview.tables:
        scores = load_backtest_summary(context.db, context.version, int(forecast["forecast_id"]))
    scores_column, history_column = st.columns(2)
    with scores_column:
        if scores.empty:
            st.caption(
                f"Forecast {int(forecast['forecast_id'])} (model `{chosen}`) has no stored backtest scores, "
                "so its model was not chosen by backtest."
            )
        else:
            st.markdown(
                f"**Rolling-origin backtest**: `{chosen}` was chosen. MASE is scaled by seasonal naive "
                "(lower is better, below 1 beats it); coverage is the share of actual peaks inside the interval."
            )
            st.dataframe(
                scores,
                hide_index=True,
                column_config={
                    "model": st.column_config.TextColumn("Model"),
                    "folds": st.column_config.NumberColumn("Folds", format="%d"),
                    "mean_mase": st.column_config.NumberColumn("MASE", format="%.3f"),
                    "coverage_80": st.column_config.NumberColumn("80 % coverage", format="percent"),
                    "coverage_95": st.column_config.NumberColumn("95 % coverage", format="percent"),
                    "selected": st.column_config.CheckboxColumn("Chosen"),
                },
            )
            reason = forecast.get("selection_reason")
            if not is_missing(reason):
                st.caption(str(reason))
    with history_column:
        st.markdown("**Forecasts of this series**")
        columns = [column for column in ("forecast_id", "model", "level", "backtest_mase", "created_at", "history_end") if column in forecasts.columns]
        table = forecasts[columns].copy()
        for column in ("created_at", "history_end"):
            table[column] = table[column].map(lambda value: format_time(value, context.timezone))
        st.dataframe(
            table,
            hide_index=True,
            column_config={
                "level": st.column_config.NumberColumn("Level", format="%.2f"),
                "backtest_mase": st.column_config.NumberColumn("MASE", format="%.3f"),
            },
        )
    params = parse_json_object(forecast.get("params"))
    if params:
        with st.expander("Model parameters"):
            st.code(json.dumps(params, indent=2, default=str), language="json")
