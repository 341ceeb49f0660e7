"""Altair charts for the Load tests and Scenarios pages: percentiles, the scalability fit, scenario plans.

Like ``capplan.app_pages.charts``, each function takes plain DataFrames and
returns a chart, so the charts can be built and checked without Streamlit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import altair as alt
import numpy as np
import pandas as pd

from capplan.app_pages.charts import (
    CHART_HEIGHT_PX,
    COLOR_HISTORY,
    COLOR_REFERENCE,
    COLOR_SLO,
    OFFERED_TITLE,
    OVERLAY_COLORS,
    _horizontal_rule,
    _vertical_rule,
)
from capplan.app_pages.formatting import format_ms, format_rps

__all__ = ["PERCENTILE_COLUMNS", "percentile_chart", "scalability_chart", "scenario_instances_chart"]

PERCENTILE_COLUMNS = {"p50_ms": "p50", "p90_ms": "p90", "p95_ms": "p95", "p99_ms": "p99"}
PERCENTILE_COLORS = ("#9ecae1", "#4292c6", "#08519c", "#08306b")
PERCENTILE_TITLE = "latency (ms, log scale)"
COLOR_KNEE = "#ff7f0e"
CURVE_POINTS = 80


def percentile_chart(
    steps: pd.DataFrame,
    slo_p95_ms: float | None,
    breaking_point_rps: float | None,
    knee_rps: float | None,
) -> alt.LayerChart:
    """Draw p50, p90, p95 and p99 against offered rate on a log scale, with the SLO, breaking point and knee.

    Steps whose generator was saturated are drawn hollow: their latency is the generator's.
    """
    present = [column for column in PERCENTILE_COLUMNS if column in steps.columns]
    long = steps.melt(
        id_vars=["step_index", "offered_rps", "status"], value_vars=present, var_name="statistic", value_name="ms"
    )
    long = long[long["ms"].notna() & (long["ms"] > 0)]
    long["statistic"] = long["statistic"].map(PERCENTILE_COLUMNS)
    names = [PERCENTILE_COLUMNS[column] for column in present]
    color = alt.Color(
        "statistic:N", title="percentile", scale=alt.Scale(domain=names, range=list(PERCENTILE_COLORS[: len(names)]))
    )
    x = alt.X("offered_rps:Q", title=OFFERED_TITLE)
    y = alt.Y("ms:Q", title=PERCENTILE_TITLE, scale=alt.Scale(type="log"))
    lines = alt.Chart(long).mark_line().encode(x=x, y=y, color=color, detail="statistic:N")
    points = (
        alt.Chart(long)
        .mark_point(size=50)
        .encode(
            x=x,
            y=y,
            color=color,
            fill=alt.condition(alt.datum.status == "generator saturated", alt.value("white"), color),
            tooltip=[
                alt.Tooltip("step_index:O", title="step"),
                alt.Tooltip("offered_rps:Q", title="offered (rps)", format=",.1f"),
                alt.Tooltip("statistic:N", title="percentile"),
                alt.Tooltip("ms:Q", title="latency (ms)", format=",.1f"),
                alt.Tooltip("status:N", title="step"),
            ],
        )
    )
    layers: list[alt.Chart | alt.LayerChart] = [lines, points]
    if slo_p95_ms is not None:
        layers.append(_horizontal_rule(slo_p95_ms, f"SLO p95 {format_ms(slo_p95_ms)}", COLOR_SLO, PERCENTILE_TITLE))
    if breaking_point_rps is not None:
        layers.append(
            _vertical_rule(breaking_point_rps, f"breaking point {format_rps(breaking_point_rps)}", COLOR_SLO, OFFERED_TITLE)
        )
    if knee_rps is not None and np.isfinite(knee_rps):
        layers.append(_vertical_rule(knee_rps, f"knee {format_rps(knee_rps)}", COLOR_KNEE, OFFERED_TITLE))
    return alt.LayerChart(layer=layers, height=CHART_HEIGHT_PX)


def scalability_chart(
    levels: pd.DataFrame,
    throughput_at: Callable[[np.ndarray], np.ndarray],
    peak_concurrency: float | None,
) -> alt.LayerChart:
    """Draw measured throughput against concurrency, and the fitted USL curve through them.

    ``levels`` has ``concurrency`` and ``throughput_rps``; ``throughput_at``
    evaluates the fit. The curve runs to 1.5 times the highest measured
    concurrency, or to the peak if that is further, so the bend is visible.
    """
    measured = levels.dropna(subset=["concurrency", "throughput_rps"])
    top = float(measured["concurrency"].max()) if not measured.empty else 1.0
    end = max(top * 1.5, peak_concurrency * 1.2 if peak_concurrency and np.isfinite(peak_concurrency) else 0.0)
    grid = np.linspace(max(top / CURVE_POINTS, 1e-3), end, CURVE_POINTS)
    curve = pd.DataFrame({"concurrency": grid, "throughput_rps": throughput_at(grid)})
    x = alt.X("concurrency:Q", title="concurrency (requests in flight)")
    y = alt.Y("throughput_rps:Q", title="throughput (rps)")
    fitted = alt.Chart(curve).mark_line(color=COLOR_REFERENCE, strokeDash=[6, 3]).encode(x=x, y=y)
    points = (
        alt.Chart(measured)
        .mark_point(filled=True, size=70, color=COLOR_HISTORY)
        .encode(
            x=x,
            y=y,
            tooltip=[
                alt.Tooltip("concurrency:Q", format=",.2f"),
                alt.Tooltip("throughput_rps:Q", title="throughput (rps)", format=",.1f"),
            ],
        )
    )
    layers: list[alt.Chart | alt.LayerChart] = [fitted, points]
    if peak_concurrency is not None and np.isfinite(peak_concurrency) and peak_concurrency <= end:
        layers.append(_vertical_rule(peak_concurrency, f"peak at {peak_concurrency:,.1f}", COLOR_SLO, "concurrency (requests in flight)"))
    return alt.LayerChart(layer=layers, height=CHART_HEIGHT_PX)


def scenario_instances_chart(months_by_scenario: Mapping[str, pd.DataFrame], current_instances: int) -> alt.LayerChart:
    """Draw instances needed per month as one line per scenario, with the current fleet as a rule."""
    frames = []
    for name, months in months_by_scenario.items():
        frames.append(
            pd.DataFrame(
                {
                    "month_label": pd.to_datetime(months["month"]).dt.strftime("%Y-%m"),
                    "instances": months["instances"].astype(int),
                    "cost": months["cost"] if "cost" in months.columns else np.nan,
                    "scenario": name,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["month_label", "instances", "scenario"])
    names = list(months_by_scenario)
    palette = [COLOR_REFERENCE, *OVERLAY_COLORS]
    title = "instances needed"
    lines = (
        alt.Chart(frame)
        .mark_line(point=True, interpolate="step-after")
        .encode(
            x=alt.X("month_label:O", title="month", sort=None),
            y=alt.Y("instances:Q", title=title, axis=alt.Axis(tickMinStep=1, format="d")),
            color=alt.Color(
                "scenario:N", title="scenario", scale=alt.Scale(domain=names, range=palette[: len(names)] or palette)
            ),
            tooltip=[
                alt.Tooltip("scenario:N"),
                alt.Tooltip("month_label:O", title="month"),
                alt.Tooltip("instances:Q"),
                alt.Tooltip("cost:Q", title="cost per month", format=",.0f"),
            ],
        )
    )
    current = _horizontal_rule(current_instances, f"current fleet: {current_instances}", COLOR_SLO, title)
    return alt.LayerChart(layer=[lines, current], height=CHART_HEIGHT_PX)
