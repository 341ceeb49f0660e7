"""The Bottlenecks page: the latest ``capplan analyze`` result, its measurements and its bottlenecks, most severe first."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from capplan.app_pages.commands import ANALYZE_COMMAND, capplan_command
from capplan.app_pages.context import AppContext
from capplan.app_pages.extra_reads import ANALYSES_TABLE, BOTTLENECKS_TABLE, load_latest_analysis
from capplan.app_pages.formatting import MISSING_TEXT, format_ms, format_percent, format_rps, format_time, is_missing

__all__ = ["render_bottlenecks_page", "SEVERITY_ORDER", "sort_by_severity"]

# Severity words ranked from most to least urgent; unknown words sort last.
SEVERITY_ORDER = ("critical", "warning", "ok")


def render_bottlenecks_page(context: AppContext) -> None:
    """Show the latest analysis, or the command that makes one."""
    tables = context.overview.tables
    analysis, bottlenecks = (None, pd.DataFrame())
    if ANALYSES_TABLE in tables and BOTTLENECKS_TABLE in tables:
        analysis, bottlenecks = load_latest_analysis(context.db, context.version)
    if analysis is None:
        st.info(
            "The store has no analyzer results yet. `capplan analyze` reads a Prometheus server's metrics "
            "(throughput, errors, latency, CPU, memory), compares them with thresholds and stores each "
            "bottleneck with its severity and a recommendation:"
        )
        st.code(capplan_command(ANALYZE_COMMAND, context.db_path), language="bash")
        return

    st.caption(
        f"Analysis {int(analysis['analysis_id'])} of {analysis['prometheus_url']}, made "
        f"{format_time(analysis['created_at'], context.timezone)}, over "
        f"{format_time(analysis['window_start'], context.timezone)} to {format_time(analysis['window_end'], context.timezone)}."
    )
    _render_measurements(analysis)
    if bottlenecks.empty:
        st.success("No metric crossed its threshold in this window.", icon=":material/check_circle:")
        return
    st.subheader(f"Bottlenecks ({len(bottlenecks)})")
    st.dataframe(
        sort_by_severity(bottlenecks),
        hide_index=True,
        width="stretch",
        column_config={
            "metric": st.column_config.TextColumn("Metric"),
            "severity": st.column_config.TextColumn("Severity"),
            "value": st.column_config.NumberColumn("Value", format="%.4g"),
            "threshold": st.column_config.NumberColumn("Threshold", format="%.4g"),
            "unit": st.column_config.TextColumn("Unit"),
            "recommendation": st.column_config.TextColumn("Recommendation", width="large"),
        },
    )


def _render_measurements(analysis: dict[str, Any]) -> None:
    status = str(analysis.get("status") or MISSING_TEXT)
    columns = st.columns(6)
    columns[0].metric("Status", status)
    columns[1].metric("Throughput", format_rps(analysis.get("throughput_rps")))
    columns[2].metric("Error rate", format_percent(analysis.get("error_rate")))
    columns[3].metric("p95 latency", format_ms(analysis.get("p95_ms")))
    columns[4].metric("CPU (busiest instance)", format_percent(analysis.get("cpu_utilisation")))
    columns[5].metric("Memory (largest instance)", format_percent(analysis.get("memory_utilisation")))
    instances = analysis.get("instances")
    if not is_missing(instances):
        st.caption(f"{float(instances):g} instance(s) were up.")


def sort_by_severity(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the rows ordered by SEVERITY_ORDER (unknown severities last), keeping the order within a severity."""
    rank = frame["severity"].astype(str).str.lower().map({name: index for index, name in enumerate(SEVERITY_ORDER)})
    ordered = frame.assign(_rank=rank.fillna(len(SEVERITY_ORDER))).sort_values("_rank", kind="stable")
    return ordered.drop(columns="_rank").reset_index(drop=True)
