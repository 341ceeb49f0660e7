"""The Load tests tab: one run's limits, its steps, and rate and latency per step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from capplan.app_pages.charts import latency_chart, rate_chart
from capplan.app_pages.commands import PROBE_COMMAND, capplan_command
from capplan.app_pages.data import StoreOverview, StoreVersion, load_steps
from capplan.app_pages.formatting import format_ms, format_percent, format_rps, format_utc, is_missing

__all__ = ["render_load_tests_tab"]

STEP_TABLE_COLUMNS = [
    "step_index",
    "started_at",
    "offered_rps",
    "achieved_rps",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "send_lag_p99_ms",
    "generator_cpu",
    "status",
    "fail_reason",
]


def render_load_tests_tab(overview: StoreOverview, db_path: Path, version: StoreVersion) -> None:
    """Show the run that the plan used (else the newest) with a picker for the others."""
    if overview.runs.empty:
        st.info("The store has no load-test runs yet. Measure what one instance can take with a stepped test:")
        st.code(capplan_command(PROBE_COMMAND, db_path), language="bash")
        return

    run = _pick_run(overview)
    steps = load_steps(str(db_path), version, int(run["run_id"]))
    _render_run_summary(run)
    if steps.empty:
        st.info(f"Run {int(run['run_id'])} has no finished steps yet.")
        return

    _render_saturation_warning(steps)
    _render_step_table(steps)
    rate_column, latency_column = st.columns(2)
    with rate_column:
        st.markdown("**Offered vs achieved rate per step**")
        st.altair_chart(rate_chart(steps), width="stretch")
    with latency_column:
        st.markdown("**p95 latency vs offered rate**")
        st.altair_chart(
            latency_chart(
                steps,
                slo_p95_ms=_optional_float(run["slo_p95_ms"]),
                breaking_point_rps=_optional_float(run["breaking_point_rps"]),
                safe_rps=_optional_float(run["safe_rps"]),
            ),
            width="stretch",
        )


def _optional_float(value: Any) -> float | None:
    return None if is_missing(value) else float(value)


def _run_label(run: pd.Series) -> str:
    return f"Run {int(run['run_id'])}: {run['kind']} test, {format_utc(run['started_at'])}, {run['status']}"


def _run_row(runs: pd.DataFrame, run_id: int) -> pd.Series:
    return runs[runs["run_id"] == run_id].iloc[0]


def _pick_run(overview: StoreOverview) -> pd.Series:
    runs = overview.runs
    run_ids = [int(run_id) for run_id in runs["run_id"]]
    plan = overview.plan
    default_index = 0
    if plan is not None and int(plan["run_id"]) in run_ids:
        default_index = run_ids.index(int(plan["run_id"]))
    chosen = st.selectbox(
        "Run",
        run_ids,
        index=default_index,
        format_func=lambda run_id: _run_label(_run_row(runs, run_id)),
        key="load_test_run",
    )
    return _run_row(runs, int(chosen))


def _render_run_summary(run: pd.Series) -> None:
    target = run["target_url"] if not is_missing(run["target_url"]) else "unknown target"
    finished = format_utc(run["finished_at"]) if not is_missing(run["finished_at"]) else "not finished"
    st.caption(
        f"{run['kind']} test of {target} with {run['tool']}, started {format_utc(run['started_at'])}, "
        f"finished {finished}."
    )
    if run["status"] == "running":
        st.info("This run is still running. Reload the page to see new steps.")
    elif run["status"] != "finished":
        reason = f": {run['stop_reason']}" if not is_missing(run["stop_reason"]) else ""
        st.warning(f"This run ended as {run['status']}{reason}. Its limits may be incomplete.")

    slo_column, errors_column, breaking_column, safe_column, recommended_column = st.columns(5)
    slo_column.metric("SLO p95", format_ms(run["slo_p95_ms"]))
    errors_column.metric("Max error rate", format_percent(run["max_error_rate"]))
    breaking = run["breaking_point_rps"]
    breaking_column.metric(
        "Breaking point",
        format_rps(breaking) if not is_missing(breaking) else "not reached",
        help="The offered rate of the first step that broke the SLO or fell short of its offered rate.",
    )
    safe_column.metric("Safe load", format_rps(run["safe_rps"]))
    recommended_column.metric("Recommended load", format_rps(run["recommended_rps"]))


def _render_saturation_warning(steps: pd.DataFrame) -> None:
    saturated = steps.loc[steps["generator_saturated"].astype(bool), "step_index"]
    if saturated.empty:
        return
    names = ", ".join(str(int(index)) for index in saturated)
    st.warning(
        f"The load generator fell behind in step(s) {names}, so their latency measures the generator, "
        "not the target. They are marked as generator saturated."
    )


def _render_step_table(steps: pd.DataFrame) -> None:
    st.subheader("Steps")
    table = steps[STEP_TABLE_COLUMNS].assign(
        started_at=steps["started_at"].map(format_utc),
        fail_reason=steps["fail_reason"].fillna(""),
    )
    st.dataframe(
        table,
        hide_index=True,
        column_order=STEP_TABLE_COLUMNS,
        column_config={
            "step_index": st.column_config.NumberColumn("Step", format="%d"),
            "started_at": st.column_config.TextColumn("Started (UTC)"),
            "offered_rps": st.column_config.NumberColumn("Offered (rps)", format="%.1f"),
            "achieved_rps": st.column_config.NumberColumn("Achieved (rps)", format="%.1f"),
            "error_rate": st.column_config.NumberColumn("Error rate", format="percent"),
            "p50_ms": st.column_config.NumberColumn("p50 (ms)", format="%.1f"),
            "p95_ms": st.column_config.NumberColumn("p95 (ms)", format="%.1f"),
            "p99_ms": st.column_config.NumberColumn("p99 (ms)", format="%.1f"),
            "send_lag_p99_ms": st.column_config.NumberColumn(
                "Send lag p99 (ms)", format="%.1f", help="How late the generator sent requests, at the 99th percentile."
            ),
            "generator_cpu": st.column_config.NumberColumn(
                "Generator CPU", format="percent", help="Fraction of one core used by the load generator."
            ),
            "status": st.column_config.TextColumn("Result"),
            "fail_reason": st.column_config.TextColumn("Why it failed"),
        },
    )
