"""The Load tests page: all runs; one run's rates, percentiles, limits, scalability fit and flagged steps; two runs side by side."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from capplan.app_pages.chart_display import show_chart
from capplan.app_pages.charts import rate_chart
from capplan.app_pages.charts_capacity import percentile_chart, scalability_chart
from capplan.app_pages.commands import PROBE_COMMAND, capplan_command
from capplan.app_pages.context import AppContext
from capplan.app_pages.data import load_steps
from capplan.app_pages.extra_reads import CapacityFit, load_capacity_fit
from capplan.app_pages.formatting import MISSING_TEXT, format_ms, format_percent, format_rps, format_time, is_missing

__all__ = ["render_load_tests_page", "flagged_steps"]

MODE_ONE = "One run"
MODE_COMPARE = "Two runs side by side"
STEP_TABLE_COLUMNS = [
    "step_index",
    "started_at",
    "offered_rps",
    "achieved_rps",
    "error_rate",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "send_lag_p99_ms",
    "generator_cpu",
    "status",
    "fail_reason",
]


def render_load_tests_page(context: AppContext) -> None:
    """Show the runs, then one run in depth or two runs side by side."""
    runs = context.overview.runs
    if runs.empty:
        st.info("The store has no load-test runs yet. Measure what one instance can take with a stepped test:")
        st.code(capplan_command(PROBE_COMMAND, context.db_path), language="bash")
        return

    _render_runs_table(runs, context.timezone)
    mode = st.segmented_control("View", [MODE_ONE, MODE_COMPARE], default=MODE_ONE, key="load_test_mode")
    if mode == MODE_COMPARE and len(runs) > 1:
        _render_comparison(context)
        return
    if mode == MODE_COMPARE:
        st.caption("Comparing needs two runs; the store has one.")
    run = _pick_run(context, "Run", "load_test_run", _default_run_id(context))
    _render_run(context, run)


def _default_run_id(context: AppContext) -> int:
    plan = context.overview.plan
    run_ids = [int(value) for value in context.overview.runs["run_id"]]
    if plan is not None and int(plan["run_id"]) in run_ids:
        return int(plan["run_id"])
    return run_ids[0]


def _render_runs_table(runs: pd.DataFrame, timezone: str) -> None:
    columns = [
        column
        for column in ("run_id", "kind", "tool", "target_url", "started_at", "status", "slo_p95_ms", "breaking_point_rps", "safe_rps")
        if column in runs.columns
    ]
    table = runs[columns].copy()
    table["started_at"] = table["started_at"].map(lambda value: format_time(value, timezone))
    with st.expander(f"All runs ({len(runs)})", expanded=len(runs) > 1):
        st.dataframe(
            table,
            hide_index=True,
            column_config={
                "run_id": st.column_config.NumberColumn("Run", format="%d"),
                "started_at": st.column_config.TextColumn(f"Started ({timezone})"),
                "slo_p95_ms": st.column_config.NumberColumn("SLO p95 (ms)", format="%.0f"),
                "breaking_point_rps": st.column_config.NumberColumn("Breaking point (rps)", format="%.1f"),
                "safe_rps": st.column_config.NumberColumn("Safe load (rps)", format="%.1f"),
            },
        )


def _run_label(run: pd.Series, timezone: str) -> str:
    return f"Run {int(run['run_id'])}: {run['kind']} test, {format_time(run['started_at'], timezone)}, {run['status']}"


def _pick_run(context: AppContext, label: str, key: str, default_run_id: int) -> pd.Series:
    runs = context.overview.runs
    run_ids = [int(run_id) for run_id in runs["run_id"]]
    labels = {int(row["run_id"]): _run_label(row, context.timezone) for _, row in runs.iterrows()}
    chosen = st.selectbox(
        label,
        run_ids,
        index=run_ids.index(default_run_id) if default_run_id in run_ids else 0,
        format_func=labels.__getitem__,
        key=key,
    )
    return runs[runs["run_id"] == int(chosen)].iloc[0]


def _optional_float(value: Any) -> float | None:
    return None if is_missing(value) else float(value)


def _render_run(context: AppContext, run: pd.Series) -> None:
    run_id = int(run["run_id"])
    steps = load_steps(context.db, context.version, run_id)
    _render_run_summary(run, context.timezone)
    if steps.empty:
        st.info(f"Run {run_id} has no finished steps yet.")
        return
    fit = load_capacity_fit(context.db, context.version, run_id)
    _render_limits(run, fit)
    _render_flagged_steps(steps)

    rate_column, latency_column = st.columns(2)
    with rate_column:
        st.markdown("**Offered vs achieved rate per step**")
        show_chart(rate_chart(steps))
    with latency_column:
        st.markdown("**Latency percentiles vs offered rate**")
        show_chart(
            percentile_chart(
                steps,
                slo_p95_ms=_optional_float(run["slo_p95_ms"]),
                breaking_point_rps=_optional_float(run["breaking_point_rps"]),
                knee_rps=getattr(fit.report, "knee_rps", None),
            ),
        )
    _render_scalability(fit, steps)
    _render_step_table(steps, context.timezone)


def _render_run_summary(run: pd.Series, timezone: str) -> None:
    target = run["target_url"] if not is_missing(run["target_url"]) else "unknown target"
    finished = format_time(run["finished_at"], timezone) if not is_missing(run["finished_at"]) else "not finished"
    st.caption(
        f"{run['kind']} test of {target} with {run['tool']}, started {format_time(run['started_at'], timezone)}, "
        f"finished {finished}."
    )
    if run["status"] == "running":
        st.info("This run is still running. Reload the page to see new steps.")
    elif run["status"] != "finished":
        reason = f": {run['stop_reason']}" if not is_missing(run["stop_reason"]) else ""
        st.warning(f"This run ended as {run['status']}{reason}. Its limits may be incomplete.")


def _render_limits(run: pd.Series, fit: CapacityFit) -> None:
    report = fit.report
    knee = getattr(report, "knee_rps", None)
    peak = getattr(report, "peak_rps", None)
    columns = st.columns(6)
    columns[0].metric("SLO p95", format_ms(run["slo_p95_ms"]))
    columns[1].metric("Max error rate", format_percent(run["max_error_rate"]))
    breaking = run["breaking_point_rps"]
    columns[2].metric(
        "Breaking point",
        format_rps(breaking) if not is_missing(breaking) else "not reached",
        help="The offered rate of the first step that broke the SLO or fell short of its offered rate.",
    )
    columns[3].metric(
        "Knee",
        format_rps(knee) if knee is not None else MISSING_TEXT,
        help="Where latency has doubled from its no-load value, from the queueing model fitted to the steps.",
    )
    columns[4].metric(
        "Predicted peak",
        format_rps(peak) if peak is not None else MISSING_TEXT,
        help=f"Highest throughput the fitted models predict ({getattr(report, 'peak_source', None) or 'no model'}).",
    )
    columns[5].metric("Safe load", format_rps(run["safe_rps"]))


def flagged_steps(steps: pd.DataFrame) -> list[str]:
    """Return one sentence per flagged step: generator or target saturated, or interrupted."""
    flags = []
    checks = (
        ("generator_saturated", "the load generator fell behind, so its latency measures the generator, not the target"),
        ("target_saturated", "the target could not keep up with the offered rate"),
        ("interrupted", "it was interrupted before its end"),
    )
    for column, meaning in checks:
        if column not in steps.columns:
            continue
        marked = steps.loc[steps[column].fillna(False).astype(bool), "step_index"]
        if not marked.empty:
            names = ", ".join(str(int(index)) for index in marked)
            flags.append(f"Step(s) {names}: {meaning}.")
    return flags


def _render_flagged_steps(steps: pd.DataFrame) -> None:
    for sentence in flagged_steps(steps):
        st.warning(sentence, icon=":material/flag:")


def _render_scalability(fit: CapacityFit, steps: pd.DataFrame) -> None:
    with st.expander("Scalability fit (Universal Scalability Law)", expanded=False):
        report = fit.report
        if report is None:
            st.caption(f"No fit: {fit.problem}")
            return
        usl = report.usl
        if usl is None:
            st.caption("No USL fit for this run. " + " ".join(report.notes))
            return
        params = usl.params
        columns = st.columns(4)
        columns[0].metric("Contention σ", f"{params.sigma:.4f}")
        columns[1].metric("Coherency κ", f"{params.kappa:.2e}")
        columns[2].metric("λ (rps per unit of concurrency)", f"{params.lambda_:,.2f}")
        columns[3].metric("R²", f"{usl.r_squared:.3f}")
        note = usl.signal_note()
        if note:
            st.info(f"The peak is not predicted: {note}.")
        from forecasting.capacity import usable_levels

        levels, _ = usable_levels(steps)
        show_chart(scalability_chart(levels, params.throughput, params.peak_concurrency))
        for text in report.notes:
            st.caption(text)


def _render_step_table(steps: pd.DataFrame, timezone: str) -> None:
    st.subheader("Steps")
    present = [column for column in STEP_TABLE_COLUMNS if column in steps.columns]
    table = steps[present].assign(
        started_at=steps["started_at"].map(lambda value: format_time(value, timezone)),
        fail_reason=steps["fail_reason"].fillna(""),
    )
    st.dataframe(
        table,
        hide_index=True,
        column_order=present,
        column_config={
            "step_index": st.column_config.NumberColumn("Step", format="%d"),
            "started_at": st.column_config.TextColumn(f"Started ({timezone})"),
            "offered_rps": st.column_config.NumberColumn("Offered (rps)", format="%.1f"),
            "achieved_rps": st.column_config.NumberColumn("Achieved (rps)", format="%.1f"),
            "error_rate": st.column_config.NumberColumn("Error rate", format="percent"),
            "p50_ms": st.column_config.NumberColumn("p50 (ms)", format="%.1f"),
            "p90_ms": st.column_config.NumberColumn("p90 (ms)", format="%.1f"),
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


def _render_comparison(context: AppContext) -> None:
    run_ids = [int(value) for value in context.overview.runs["run_id"]]
    left, right = st.columns(2)
    with left:
        first = _pick_run(context, "Left run", "compare_left", run_ids[1] if len(run_ids) > 1 else run_ids[0])
        _render_compared_run(context, first, "left")
    with right:
        second = _pick_run(context, "Right run", "compare_right", run_ids[0])
        _render_compared_run(context, second, "right")


def _render_compared_run(context: AppContext, run: pd.Series, side: str) -> None:
    """Show one side of the comparison. Keys name the side, so the same run may be picked on both."""
    run_id = int(run["run_id"])
    steps = load_steps(context.db, context.version, run_id)
    fit = load_capacity_fit(context.db, context.version, run_id)
    _render_run_summary(run, context.timezone)
    breaking = run["breaking_point_rps"]
    knee = getattr(fit.report, "knee_rps", None)
    metrics = st.columns(4)
    metrics[0].metric("SLO p95", format_ms(run["slo_p95_ms"]))
    metrics[1].metric("Breaking point", format_rps(breaking) if not is_missing(breaking) else "not reached")
    metrics[2].metric("Knee", format_rps(knee) if knee is not None else MISSING_TEXT)
    metrics[3].metric("Safe load", format_rps(run["safe_rps"]))
    if steps.empty:
        st.info(f"Run {run_id} has no finished steps yet.")
        return
    for sentence in flagged_steps(steps):
        st.warning(sentence, icon=":material/flag:")
    show_chart(rate_chart(steps), key=f"compare_rate_{side}")
    chart = percentile_chart(
        steps,
        slo_p95_ms=_optional_float(run["slo_p95_ms"]),
        breaking_point_rps=_optional_float(breaking),
        knee_rps=knee,
    )
    show_chart(chart, key=f"compare_latency_{side}")
