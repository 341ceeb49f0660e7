"""Static matplotlib figures of the review, drawn without pyplot.

Figures are built on ``matplotlib.figure.Figure`` directly, so no global
backend or figure registry is touched and nothing appears on a screen. The
notebook and the report embed them as PNG. Times are naive UTC, like the store.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from capplan.review.model import ForecastInfo, RunInfo, ServiceReview
from capplan.review.quarters import Quarter

__all__ = ["FIGURE_DPI", "figure_png", "demand_figure", "accuracy_figure", "load_test_figure", "plan_figure"]

FIGURE_DPI = 110
WIDE_FIGSIZE_IN = (10.0, 5.0)
TALL_FIGSIZE_IN = (10.0, 6.4)
HISTORY_SHOWN_DAYS = 365          # the demand plot starts at most this long before the last observed day

COLOR_HISTORY = "#1f77b4"
COLOR_FORECAST = "#ff7f0e"
COLOR_PREVIOUS = "#7f7f7f"
COLOR_REFERENCE = "#555555"
COLOR_SLO = "#d62728"
COLOR_QUARTER = "#2ca02c"
SCENARIO_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def figure_png(figure: Figure) -> bytes:
    """Render a figure to PNG bytes at FIGURE_DPI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    return buffer.getvalue()


def _new_figure(size: tuple[float, float] = WIDE_FIGSIZE_IN, rows: int = 1, columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, [axis for row in axes for axis in row]


def _date_axis(axis: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axis.grid(True, alpha=0.3)


def _shade_quarter(axis: Axes, quarter: Quarter) -> None:
    axis.axvspan(quarter.start, quarter.end, color=COLOR_QUARTER, alpha=0.08, label=f"{quarter} (review quarter)")


def _unit_label(service: ServiceReview) -> str:
    return service.unit or "series unit"


def demand_figure(service: ServiceReview, quarter: Quarter) -> Figure:
    """Daily peaks, the current forecast with its interval, last quarter's forecast, fleet capacity and runway."""
    figure, (axis,) = _new_figure()

    peaks = service.peaks[service.peaks["complete"].astype(bool)]
    if service.as_of is not None:
        peaks = peaks[peaks["day"] > service.as_of - pd.Timedelta(days=HISTORY_SHOWN_DAYS)]
    axis.plot(peaks["day"], peaks["peak_value"], color=COLOR_HISTORY, linewidth=1.2, label="observed daily peak")

    if service.forecast is not None and service.forecast_points is not None:
        _draw_forecast(axis, service.forecast, service.forecast_points)
    if service.accuracy is not None and service.previous_forecast_points is not None:
        points = service.previous_forecast_points
        label = f"last quarter's forecast {service.accuracy.forecast.forecast_id}"
        axis.plot(points["ts"], points["yhat"], color=COLOR_PREVIOUS, linestyle=":", linewidth=1.4, label=label)

    plan = service.plan
    if plan is not None:
        capacity = plan.fleet_capacity_rps
        label = f"safe load of the current {plan.current_instances} instances ({capacity:,.0f} rps)"
        axis.axhline(capacity, color=COLOR_REFERENCE, linestyle="--", linewidth=1.0, label=label)
        if plan.runway_date is not None:
            runway = pd.Timestamp(plan.runway_date)
            axis.axvline(runway, color=COLOR_SLO, linewidth=1.2, label=f"runway ends {runway.date()}")

    _shade_quarter(axis, quarter)
    axis.set_title(f"{service.series_name}: daily peaks and forecast")
    axis.set_xlabel("date (UTC)")
    axis.set_ylabel(f"daily peak ({_unit_label(service)})")
    axis.set_ylim(bottom=0)
    _date_axis(axis)
    figure.legend(loc="outside lower center", ncols=3, fontsize="small", frameon=False)
    return figure


def _draw_forecast(axis: Axes, forecast: ForecastInfo, points: pd.DataFrame) -> None:
    interval_label = f"forecast {forecast.forecast_id}: {forecast.level:.0%} interval"
    axis.fill_between(points["ts"], points["lower"], points["upper"], color=COLOR_FORECAST, alpha=0.2, label=interval_label)
    axis.plot(
        points["ts"], points["yhat"], color=COLOR_FORECAST, linestyle="--", linewidth=1.2,
        label=f"forecast {forecast.forecast_id}",
    )


def accuracy_figure(service: ServiceReview) -> Figure | None:
    """Last quarter's forecast against the observed daily peaks, and its error per month."""
    accuracy = service.accuracy
    if accuracy is None:
        return None
    figure, (top, bottom) = _new_figure(TALL_FIGSIZE_IN, rows=2)

    daily, forecast = accuracy.daily, accuracy.forecast
    top.fill_between(
        daily["day"], daily["lower"], daily["upper"], color=COLOR_PREVIOUS, alpha=0.2,
        label=f"{forecast.level:.0%} interval",
    )
    top.plot(
        daily["day"], daily["yhat"], color=COLOR_PREVIOUS, linestyle="--",
        label=f"forecast {forecast.forecast_id} (made {forecast.created_at.date()})",
    )
    top.plot(daily["day"], daily["actual_peak"], color=COLOR_HISTORY, linewidth=1.3, label="observed daily peak")
    outside = daily[~daily["within_interval"].astype(bool)]
    top.scatter(outside["day"], outside["actual_peak"], color=COLOR_SLO, s=14, zorder=3, label="outside the interval")
    top.set_title(f"{service.series_name}: last quarter's forecast against what happened")
    top.set_ylabel(f"daily peak ({_unit_label(service)})")
    _date_axis(top)
    top.legend(loc="upper left", fontsize="small", framealpha=0.9)

    monthly = accuracy.monthly
    # Bars sit at integer positions with month labels, because matplotlib would
    # otherwise treat the "YYYY-MM" strings as categories and log that it did.
    positions = list(range(len(monthly)))
    bars = bottom.bar(positions, monthly["mape_pct"], color=COLOR_PREVIOUS)
    bottom.set_xticks(positions, [pd.Timestamp(month).strftime("%Y-%m") for month in monthly["month"]])
    bottom.bar_label(bars, labels=[f"{value:.1f} %" for value in monthly["mape_pct"]], padding=2, fontsize="small")
    bottom.set_ylabel("MAPE of daily peaks (%)")
    bottom.set_xlabel("month")
    highest = float(monthly["mape_pct"].max()) if not monthly.empty else 0.0
    bottom.set_ylim(0, max(1.0, highest * 1.25))
    bottom.grid(True, axis="y", alpha=0.3)
    return figure


def load_test_figure(service: ServiceReview, slo_p95_ms: float | None) -> Figure | None:
    """p95 latency against offered rate for this and last quarter's run, and their load levels side by side."""
    runs = _styled_runs(service)
    if not runs:
        return None
    figure, (latency_axis, bar_axis) = _new_figure(columns=2)

    for run, style in runs:
        steps = run.steps.sort_values("offered_rps")
        latency_axis.plot(
            steps["offered_rps"], steps["p95_ms"], linestyle=style.linestyle, marker="o", color=style.color,
            label=f"{style.when}: run {run.run_id}",
        )
    slo = slo_p95_ms if slo_p95_ms is not None else runs[-1][0].slo_p95_ms
    if slo is not None:
        latency_axis.axhline(slo, color=COLOR_SLO, linestyle="--", linewidth=1.0, label=f"SLO p95 {slo:g} ms")
    latency_axis.set_yscale("log")
    latency_axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    latency_axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    latency_axis.yaxis.set_minor_formatter(NullFormatter())
    latency_axis.set_xlabel("offered rate (rps)")
    latency_axis.set_ylabel("p95 latency (ms, log scale)")
    latency_axis.set_title("latency per step")
    latency_axis.grid(True, which="both", alpha=0.3)
    latency_axis.legend(fontsize="small")

    _capacity_bars(bar_axis, runs)
    figure.suptitle(f"{service.series_name}: capacity per instance")
    return figure


@dataclass(frozen=True)
class _RunStyle:
    linestyle: str
    color: str
    when: str


def _styled_runs(service: ServiceReview) -> list[tuple[RunInfo, _RunStyle]]:
    """Return last quarter's run and this quarter's, where present, each with its line style."""
    styled = []
    if service.previous_run is not None:
        styled.append((service.previous_run, _RunStyle("--", COLOR_PREVIOUS, "last quarter")))
    if service.run is not None:
        styled.append((service.run, _RunStyle("-", COLOR_HISTORY, "this quarter")))
    return styled


def _capacity_bars(axis: Axes, runs: Sequence[tuple[RunInfo, _RunStyle]]) -> None:
    measures = ("breaking point", "safe load", "recommended")
    width = 0.8 / len(runs)
    for index, (run, style) in enumerate(runs):
        values = [run.breaking_point_rps or 0.0, run.safe_rps or 0.0, run.recommended_rps or 0.0]
        offset = (index - (len(runs) - 1) / 2) * width
        positions = [position + offset for position in range(len(measures))]
        bars = axis.bar(positions, values, width=width, color=style.color, label=f"{style.when}: run {run.run_id}")
        labels = [f"{value:,.0f}" if value else "n/a" for value in values]
        axis.bar_label(bars, labels=labels, padding=2, fontsize="small")
    axis.set_xticks(range(len(measures)), measures)
    axis.set_ylabel("requests per second per instance")
    axis.set_title("load levels per instance")
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize="small")


def plan_figure(service: ServiceReview, quarter: Quarter) -> Figure | None:
    """Instances needed per month under the plan, each scenario, and the current fleet."""
    plan = service.plan
    if plan is None or plan.months.empty:
        return None
    figure, (axis,) = _new_figure()

    labels = [pd.Timestamp(month).strftime("%Y-%m") for month in plan.months["month"]]
    positions = list(range(len(labels)))
    colors = [COLOR_QUARTER if quarter.contains(month) else COLOR_HISTORY for month in plan.months["month"]]
    bars = axis.bar(positions, plan.months["instances"], color=colors, alpha=0.85)
    axis.set_xticks(positions, labels)
    axis.bar_label(bars, labels=[str(int(n)) for n in plan.months["instances"]], padding=2, fontsize="small")

    for index, scenario in enumerate(service.scenarios):
        if scenario.growth_per_year == 0.0:
            continue
        months = [pd.Timestamp(month).strftime("%Y-%m") for month in scenario.months["month"]]
        by_month = dict(zip(months, scenario.months["instances"], strict=True))
        axis.step(
            positions, [by_month.get(label, float("nan")) for label in labels], where="mid",
            color=SCENARIO_COLORS[index % len(SCENARIO_COLORS)], linewidth=1.6,
            label=f"scenario {scenario.name} ({scenario.growth_per_year:+.0%}/y)",
        )
    axis.axhline(
        plan.current_instances, color=COLOR_REFERENCE, linestyle="--", linewidth=1.0,
        label=f"current fleet: {plan.current_instances}",
    )

    handles, _ = axis.get_legend_handles_labels()
    handles = [
        Patch(color=COLOR_HISTORY, alpha=0.85, label=f"plan {plan.plan_id}"),
        Patch(color=COLOR_QUARTER, alpha=0.85, label=f"plan {plan.plan_id}, months of {quarter}"),
        *handles,
    ]
    axis.set_title(f"{service.series_name}: instances needed per month")
    axis.set_xlabel("month")
    axis.set_ylabel("instances (including spares)")
    for tick_label in axis.get_xticklabels():
        tick_label.set_rotation(45)
        tick_label.set_horizontalalignment("right")
        tick_label.set_rotation_mode("anchor")
    axis.set_ylim(0, max(plan.months["instances"].max(), plan.current_instances) * 1.15 + 1)
    axis.grid(True, axis="y", alpha=0.3)
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small", frameon=False)
    return figure
