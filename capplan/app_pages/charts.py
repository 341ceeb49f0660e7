"""Altair charts for the app's tabs.

Each function takes plain DataFrames from ``capplan.app_pages.data`` and
returns a chart, so the charts can be built and checked without Streamlit.
Times are stored as naive UTC. They are marked as UTC before plotting and drawn
on ``utc`` scales, because Vega-Lite would otherwise show naive times in the
viewer's local time zone.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from capplan.app_pages.data import STATUS_FAILED, STATUS_PASSED, STATUS_SATURATED
from capplan.app_pages.formatting import format_level, format_ms, format_rps
from capplan.app_pages.intervals import interval_bands

__all__ = ["instances_chart", "demand_chart", "rate_chart", "latency_chart"]

CHART_HEIGHT_PX = 320

COLOR_HISTORY = "#1f77b4"
COLOR_FORECAST = "#ff7f0e"
COLOR_REFERENCE = "#555555"
COLOR_SLO = "#d62728"
OVERLAY_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
STATUS_COLORS = {STATUS_PASSED: "#2ca02c", STATUS_FAILED: "#d62728", STATUS_SATURATED: "#9467bd"}
STATUS_SHAPES = {STATUS_PASSED: "circle", STATUS_FAILED: "square", STATUS_SATURATED: "triangle-up"}

INSTANCES_TITLE = "instances needed"
OFFERED_TITLE = "offered rate (rps)"
LATENCY_TITLE = "p95 latency (ms, log scale)"


def _as_utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.tz_localize("UTC")


def _status_encodings() -> tuple[alt.Color, alt.Shape]:
    statuses = list(STATUS_COLORS)
    color = alt.Color(
        "status:N",
        title="step",
        scale=alt.Scale(domain=statuses, range=[STATUS_COLORS[s] for s in statuses]),
    )
    shape = alt.Shape(
        "status:N",
        title="step",
        scale=alt.Scale(domain=statuses, range=[STATUS_SHAPES[s] for s in statuses]),
    )
    return color, shape


def _horizontal_rule(value: float, text: str, color: str, axis_title: str) -> alt.LayerChart:
    """Draw a labelled rule at ``value`` on the y scale.

    ``axis_title`` must match the other layers' y title, because Vega-Lite joins differing titles.
    """
    frame = pd.DataFrame({"value": [value], "text": [text]})
    y = alt.Y("value:Q", title=axis_title)
    base = alt.Chart(frame)
    rule = base.mark_rule(color=color, strokeDash=[6, 4]).encode(y=y)
    label = base.mark_text(align="left", dx=4, dy=-6, color=color).encode(y=y, x=alt.value(0), text="text:N")
    return rule + label


def _vertical_rule(value: float, text: str, color: str, axis_title: str) -> alt.LayerChart:
    """Draw a labelled rule at ``value`` on the x scale.

    ``axis_title`` must match the other layers' x title, because Vega-Lite joins differing titles.
    """
    frame = pd.DataFrame({"value": [value], "text": [text]})
    x = alt.X("value:Q", title=axis_title)
    base = alt.Chart(frame)
    rule = base.mark_rule(color=color, strokeDash=[2, 3]).encode(x=x)
    label = base.mark_text(align="right", angle=270, dx=-4, dy=-6, baseline="bottom", color=color).encode(
        x=x, y=alt.value(0), text="text:N"
    )
    return rule + label


def instances_chart(months: pd.DataFrame, current_instances: int) -> alt.LayerChart:
    """Draw one bar per plan month for the instances needed, with the current fleet as a rule."""
    frame = months.copy()
    frame["month_label"] = pd.to_datetime(frame["month"]).dt.strftime("%Y-%m")
    frame["fleet"] = frame["instances"].gt(current_instances).map(
        {True: "more than the current fleet", False: "within the current fleet"}
    )
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("month_label:O", title="month", sort=None),
            y=alt.Y("instances:Q", title=INSTANCES_TITLE, axis=alt.Axis(tickMinStep=1, format="d")),
            color=alt.Color(
                "fleet:N",
                title=None,
                scale=alt.Scale(
                    domain=["within the current fleet", "more than the current fleet"],
                    range=[COLOR_HISTORY, COLOR_FORECAST],
                ),
            ),
            tooltip=[
                alt.Tooltip("month_label:O", title="month"),
                alt.Tooltip("instances:Q", title="instances"),
                alt.Tooltip("demand_rps:Q", title="planned demand (rps)", format=",.1f"),
                alt.Tooltip("utilisation:Q", title="utilisation", format=".0%"),
            ],
        )
    )
    current = _horizontal_rule(
        current_instances, f"current fleet: {current_instances}", COLOR_REFERENCE, INSTANCES_TITLE
    )
    return alt.LayerChart(layer=[bars, current], height=CHART_HEIGHT_PX)


def demand_chart(
    history: pd.DataFrame,
    points: pd.DataFrame | None,
    level: float | None,
    unit_title: str,
    overlays: dict[str, pd.DataFrame] | None = None,
) -> alt.LayerChart:
    """Draw the daily peaks as a line and the forecast as a fan: a dashed median inside 80 % and 95 % bands.

    The legend names each band by its coverage, such as ``80 % interval``,
    and marks a band scaled from the stored interval with ``(scaled)`` (see
    ``capplan.app_pages.intervals``). ``overlays`` maps a scenario name to
    its adjusted points (``ts``, ``yhat``), drawn as further lines.
    """
    has_forecast = points is not None and not points.empty and level is not None
    x = alt.X("ts:T", title="day (UTC)", scale=alt.Scale(type="utc"), axis=alt.Axis(format="%Y-%m-%d"))
    y_title = f"daily peak ({unit_title})"
    date_tooltip = alt.Tooltip("ts:T", title="day (UTC)", format="%Y-%m-%d", formatType="utc")

    history_frame = pd.DataFrame({"ts": _as_utc(history["ts"]), "value": history["value"], "layer": "daily peak"})
    line_names = ["daily peak"] if not history.empty else []
    line_colors = [COLOR_HISTORY] if not history.empty else []
    band_frames = []
    if has_forecast and points is not None and level is not None:
        line_names.append("forecast")
        line_colors.append(COLOR_FORECAST)
        for band_level, (lower, upper, derived) in sorted(interval_bands(points, level).items(), reverse=True):
            name = format_level(band_level) + (" (scaled)" if derived else "")
            band_frames.append(
                pd.DataFrame({"ts": _as_utc(points["ts"]), "lower": lower, "upper": upper, "band": name})
            )
    for index, name in enumerate(overlays or {}):
        line_names.append(name)
        line_colors.append(OVERLAY_COLORS[index % len(OVERLAY_COLORS)])
    color_scale = alt.Scale(domain=line_names, range=line_colors)

    layers: list[alt.Chart] = []
    if band_frames:
        bands = pd.concat(band_frames, ignore_index=True)
        band_names = list(dict.fromkeys(bands["band"]))
        layers.append(
            alt.Chart(bands)
            .mark_area()
            .encode(
                x=x,
                y=alt.Y("lower:Q", title=y_title),
                y2="upper:Q",
                opacity=alt.Opacity(
                    "band:N", title="prediction interval", scale=alt.Scale(domain=band_names, range=[0.15, 0.3][: len(band_names)])
                ),
                color=alt.value(COLOR_FORECAST),
                tooltip=[
                    date_tooltip,
                    alt.Tooltip("band:N", title="interval"),
                    alt.Tooltip("lower:Q", title="lower", format=",.1f"),
                    alt.Tooltip("upper:Q", title="upper", format=",.1f"),
                ],
            )
        )
    if history.empty and not has_forecast:
        # An empty layer still needs its encodings, so the chart shows empty axes rather than nothing.
        line_names, line_colors = ["daily peak"], [COLOR_HISTORY]
        color_scale = alt.Scale(domain=line_names, range=line_colors)
    if line_names and line_names[0] == "daily peak":
        history_line = (
            alt.Chart(history_frame)
            .mark_line()
            .encode(
                x=x,
                y=alt.Y("value:Q", title=y_title),
                color=alt.Color("layer:N", title=None, scale=color_scale),
                tooltip=[date_tooltip, alt.Tooltip("value:Q", title="daily peak", format=",.1f")],
            )
        )
        layers.append(history_line)
    if has_forecast and points is not None:
        lines = [pd.DataFrame({"ts": _as_utc(points["ts"]), "yhat": points["yhat"], "layer": "forecast"})]
        for name, frame in (overlays or {}).items():
            lines.append(pd.DataFrame({"ts": _as_utc(frame["ts"]), "yhat": frame["yhat"], "layer": name}))
        layers.append(
            alt.Chart(pd.concat(lines, ignore_index=True))
            .mark_line(strokeDash=[6, 3])
            .encode(
                x=x,
                y=alt.Y("yhat:Q", title=y_title),
                color=alt.Color("layer:N", title=None, scale=color_scale),
                tooltip=[date_tooltip, alt.Tooltip("layer:N", title="line"), alt.Tooltip("yhat:Q", title="median", format=",.1f")],
            )
        )
    return alt.LayerChart(layer=layers, height=CHART_HEIGHT_PX)


def rate_chart(steps: pd.DataFrame) -> alt.LayerChart:
    """Draw offered and achieved rate per step. The point shape and color mark the step's status."""
    long = steps.melt(
        id_vars=["step_index", "status"],
        value_vars=["offered_rps", "achieved_rps"],
        var_name="rate",
        value_name="rps",
    )
    long["rate"] = long["rate"].map({"offered_rps": "offered", "achieved_rps": "achieved"})
    x = alt.X("step_index:O", title="step")
    y = alt.Y("rps:Q", title="requests per second")
    lines = (
        alt.Chart(long)
        .mark_line()
        .encode(
            x=x,
            y=y,
            strokeDash=alt.StrokeDash(
                "rate:N", title="rate", scale=alt.Scale(domain=["offered", "achieved"], range=[[6, 3], [1, 0]])
            ),
            detail="rate:N",
            color=alt.value(COLOR_REFERENCE),
        )
    )
    status_color, status_shape = _status_encodings()
    points = (
        alt.Chart(long)
        .mark_point(filled=True, size=70)
        .encode(
            x=x,
            y=y,
            color=status_color,
            shape=status_shape,
            tooltip=[
                alt.Tooltip("step_index:O", title="step"),
                alt.Tooltip("rate:N"),
                alt.Tooltip("rps:Q", title="rps", format=",.1f"),
                alt.Tooltip("status:N"),
            ],
        )
    )
    return alt.LayerChart(layer=[lines, points], height=CHART_HEIGHT_PX)


def latency_chart(
    steps: pd.DataFrame,
    slo_p95_ms: float | None,
    breaking_point_rps: float | None,
    safe_rps: float | None,
) -> alt.LayerChart:
    """Draw p95 latency against offered rate on a log scale, with the SLO, breaking point and safe load as rules.

    Steps without a positive p95 are left out, because a log scale cannot show them.
    """
    columns = ["step_index", "offered_rps", "achieved_rps", "p95_ms", "error_rate", "status"]
    frame = steps.loc[steps["p95_ms"].notna() & (steps["p95_ms"] > 0), columns]
    x = alt.X("offered_rps:Q", title=OFFERED_TITLE)
    y = alt.Y("p95_ms:Q", title=LATENCY_TITLE, scale=alt.Scale(type="log"))
    line = alt.Chart(frame).mark_line(color=COLOR_REFERENCE).encode(x=x, y=y)
    status_color, status_shape = _status_encodings()
    points = (
        alt.Chart(frame)
        .mark_point(filled=True, size=80)
        .encode(
            x=x,
            y=y,
            color=status_color,
            shape=status_shape,
            tooltip=[
                alt.Tooltip("step_index:O", title="step"),
                alt.Tooltip("offered_rps:Q", title="offered (rps)", format=",.1f"),
                alt.Tooltip("achieved_rps:Q", title="achieved (rps)", format=",.1f"),
                alt.Tooltip("p95_ms:Q", title="p95 (ms)", format=",.1f"),
                alt.Tooltip("error_rate:Q", title="error rate", format=".2%"),
                alt.Tooltip("status:N"),
            ],
        )
    )

    layers: list[alt.Chart | alt.LayerChart] = [line, points]
    if slo_p95_ms is not None:
        layers.append(_horizontal_rule(slo_p95_ms, f"SLO p95 {format_ms(slo_p95_ms)}", COLOR_SLO, LATENCY_TITLE))
    if breaking_point_rps is not None:
        text = f"breaking point {format_rps(breaking_point_rps)}"
        layers.append(_vertical_rule(breaking_point_rps, text, COLOR_SLO, OFFERED_TITLE))
    if safe_rps is not None:
        text = f"safe load {format_rps(safe_rps)}"
        layers.append(_vertical_rule(safe_rps, text, STATUS_COLORS[STATUS_PASSED], OFFERED_TITLE))
    return alt.LayerChart(layer=layers, height=CHART_HEIGHT_PX)
