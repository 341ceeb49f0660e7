"""The review's content as sections of headings, sentences, tables and figures.

The notebook displays these sections one per cell and the HTML report renders
them in order, so both show the same content. Tables hold formatted text
(see :mod:`capplan.review.formatting`); the raw numbers stay in the
QuarterlyReview.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import pandas as pd
from matplotlib.figure import Figure

from capplan.review import plots
from capplan.review.formatting import fmt_change, fmt_count, fmt_day, fmt_number, fmt_percent, fmt_runway
from capplan.review.model import QuarterlyReview, ServiceReview
from capplan.review.service_tables import (
    accuracy_frame,
    demand_months_frame,
    forecast_details_frame,
    load_test_frame,
    plan_check_frame,
    plan_frame,
    scenario_frame,
    steps_frame,
)

__all__ = ["Heading", "Text", "Table", "Chart", "Section", "build_sections", "SECTION_KEYS"]


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    caption: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class Chart:
    caption: str
    figure: Figure


Block = Union[Heading, Text, Table, Chart]


@dataclass
class Section:
    """One part of the review, such as the summary or the plan; ``key`` is a stable identifier."""

    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)


SECTION_KEYS = ("summary", "demand", "accuracy", "load_tests", "plan", "risks")


def build_sections(review: QuarterlyReview) -> dict[str, Section]:
    """Return the review's sections by key, in SECTION_KEYS order."""
    builders = (_summary_section, _demand_section, _accuracy_section, _load_test_section, _plan_section, _risk_section)
    sections = [builder(review) for builder in builders]
    return {section.key: section for section in sections}


def headline(service: ServiceReview, review: QuarterlyReview) -> str:
    """Return the one-paragraph summary of a service: fleet, runway, instances needed and capacity."""
    name = service.series_name
    plan = service.plan
    if plan is None:
        return f"{name}: no capacity plan was made before the end of {review.quarter}, so runway and instances are unknown."

    as_of = fmt_day(service.as_of)
    serving = plan.current_instances - plan.redundancy
    fleet = (
        f"{name}: the current fleet of {plan.current_instances} instances ({serving} serving at "
        f"{plan.safe_rps_per_instance:,.1f} rps each, plus {plan.redundancy} spare)"
    )
    if plan.runway_date is None:
        sentences = [f"{fleet} carries the forecast demand for the whole plan horizon."]
    elif service.runway_days is not None and service.runway_days <= 0:
        sentences = [f"{fleet} has been short of the forecast demand since {fmt_day(plan.runway_date)}."]
    else:
        sentences = [f"{fleet} runs out on {fmt_day(plan.runway_date)}, {service.runway_days} days after {as_of}."]

    following = review.quarter.next()
    if service.instances_next_quarter is not None:
        sentences.append(
            f"The plan needs {service.instances_next_quarter} instances in {following} "
            f"and {service.instances_max} at most within its horizon."
        )
    if service.run is not None and service.previous_run is not None and service.capacity_change is not None:
        sentences.append(
            f"Capacity per instance: {fmt_number(service.run.safe_rps)} rps safe load (run {service.run.run_id}), "
            f"{fmt_change(service.capacity_change)} against {fmt_number(service.previous_run.safe_rps)} rps "
            f"(run {service.previous_run.run_id}) last quarter."
        )
    if service.accuracy is not None and service.accuracy.mape_pct is not None:
        sentences.append(
            f"Last quarter's forecast missed the daily peaks by {service.accuracy.mape_pct:.1f} % on average "
            f"over {service.accuracy.days} days."
        )
    return " ".join(sentences)


def summary_frame(review: QuarterlyReview) -> pd.DataFrame:
    """Return the summary table: one row per measure, one column per service."""
    following = review.quarter.next()
    previous = review.previous_quarter
    rows: dict[str, list[str]] = {
        "last observed day": [],
        "current fleet (instances)": [],
        "safe load per instance (rps)": [],
        f"change against {previous}": [],
        "runway ends": [],
        "runway (days)": [],
        f"instances needed in {review.quarter}": [],
        f"instances needed in {following}": [],
        "instances needed within the horizon": [],
        f"instances to add by the end of {following}": [],
        f"highest daily peak in {review.quarter}": [],
        f"highest daily peak in {previous}": [],
        "peak change": [],
        "last quarter's forecast MAPE": [],
        "days inside its interval": [],
    }
    for service in review.services:
        plan, run = service.plan, service.run
        values = [
            fmt_day(service.as_of),
            fmt_count(plan.current_instances if plan else None),
            fmt_number(run.safe_rps if run else None),
            fmt_change(service.capacity_change),
            fmt_runway(plan.runway_date if plan else None, plan is not None),
            fmt_count(service.runway_days),
            fmt_count(service.instances_this_quarter),
            fmt_count(service.instances_next_quarter),
            fmt_count(service.instances_max),
            fmt_count(service.instances_to_add),
            fmt_number(service.quarter_peak),
            fmt_number(service.previous_quarter_peak),
            fmt_change(service.quarter_peak_change),
            fmt_number(service.accuracy.mape_pct if service.accuracy else None, unit="%"),
            fmt_percent(service.accuracy.interval_coverage if service.accuracy else None, decimals=0),
        ]
        for key, value in zip(rows, values, strict=True):
            rows[key].append(value)
    frame = pd.DataFrame(rows, index=[service.series_name for service in review.services]).T
    return frame.rename_axis("measure").reset_index()


def _summary_section(review: QuarterlyReview) -> Section:
    section = Section("summary", "Summary")
    counts = {severity: sum(risk.severity == severity for risk in review.risks) for severity in ("high", "medium", "low")}
    scenario_text = ", ".join(f"{name} ({growth:+.0%}/y)" for name, growth in review.scenarios.items())
    slo = f"p95 {review.slo_p95_ms:g} ms" if review.slo_p95_ms is not None else "each run's own SLO"
    section.blocks.append(
        Text(
            f"Capacity review of {review.quarter} ({fmt_day(review.quarter.start)} to {fmt_day(review.quarter.last_day)}), "
            f"with data up to {fmt_day(review.as_of)}, from store {review.store_path}. "
            f"Latency SLO: {slo}. Growth scenarios: {scenario_text}."
        )
    )
    for service in review.services:
        section.blocks.append(Text(headline(service, review)))
    section.blocks.append(Table("Summary per service", summary_frame(review)))
    section.blocks.append(
        Text(f"Risks: {counts['high']} high, {counts['medium']} medium, {counts['low']} low (listed at the end).")
    )
    return section


def _demand_section(review: QuarterlyReview) -> Section:
    section = Section("demand", "Demand history and forecast")
    add = section.blocks.append
    for service in review.services:
        name, forecast = service.series_name, service.forecast
        unit = service.unit or "the series' unit"
        add(Heading(name))
        if forecast is None:
            add(Text("No forecast was made before the quarter ended."))
        else:
            add(
                Text(
                    f"Forecast {forecast.forecast_id} ({forecast.model}, made {fmt_day(forecast.created_at)}) "
                    f"predicts each day's peak in {unit} from the history {fmt_day(forecast.history_start)} to "
                    f"{fmt_day(forecast.history_end)}, with a prediction interval of {forecast.level:.0%}, up to "
                    f"{fmt_day(forecast.horizon_end)}. The highest daily peak of {review.quarter} so far is "
                    f"{fmt_number(service.quarter_peak)} {unit}, {fmt_change(service.quarter_peak_change)} against "
                    f"{review.previous_quarter}."
                )
            )
            details = forecast_details_frame(forecast)
            if not details.empty:
                add(Table(f"{name}: stored details of forecast {forecast.forecast_id}", details))
        add(Chart(f"{name}: daily peaks and forecast", plots.demand_figure(service, review.quarter)))
        months = demand_months_frame(service, review.quarter)
        if not months.empty:
            add(Table(f"{name}: monthly peaks ({unit})", months))
    return section


def _accuracy_section(review: QuarterlyReview) -> Section:
    section = Section("accuracy", "Last quarter's forecast against what happened")
    add = section.blocks.append
    for service in review.services:
        name, accuracy = service.series_name, service.accuracy
        add(Heading(name))
        if accuracy is None:
            add(Text(f"No forecast made before {review.quarter} began has observed days after its history yet."))
            continue
        forecast = accuracy.forecast
        mean_error = accuracy.mean_error or 0.0
        direction = "too low" if mean_error > 0 else "too high"
        add(
            Text(
                f"Forecast {forecast.forecast_id} was made on {fmt_day(forecast.created_at)} from the history up "
                f"to {fmt_day(forecast.history_end)}. Over the {accuracy.days} complete days since, up to "
                f"{fmt_day(accuracy.daily['day'].max())}, it missed the daily peak by {accuracy.mape_pct:.1f} % on "
                f"average (MAPE) and was {direction} by {fmt_number(abs(mean_error), unit=service.unit)} on "
                f"average; {fmt_percent(accuracy.interval_coverage, 0)} of the days fell inside its "
                f"{forecast.level:.0%} interval."
            )
        )
        chart = plots.accuracy_figure(service)
        if chart is not None:
            add(Chart(f"{name}: forecast {forecast.forecast_id} against the observed peaks", chart))
        add(Table(f"{name}: error per month", accuracy_frame(accuracy)))
        if accuracy.plan_check is not None and not accuracy.plan_check.empty:
            add(Table(f"{name}: last quarter's plan against the observed peaks", plan_check_frame(accuracy.plan_check)))
    return section


def _load_test_section(review: QuarterlyReview) -> Section:
    section = Section("load_tests", "Load tests and capacity per instance")
    add = section.blocks.append
    for service in review.services:
        name, run = service.series_name, service.run
        add(Heading(name))
        if run is None:
            add(Text("No stepped load test with a safe load ran before the quarter ended."))
            continue
        add(Table(f"{name}: this quarter's run against last quarter's", load_test_frame(service, review)))
        chart = plots.load_test_figure(service, review.slo_p95_ms)
        if chart is not None:
            add(Chart(f"{name}: latency per step and load levels per instance", chart))
        add(Table(f"{name}: steps of run {run.run_id}", steps_frame(run)))
    return section


def _plan_section(review: QuarterlyReview) -> Section:
    section = Section("plan", "Capacity plan")
    add = section.blocks.append
    for service in review.services:
        name, plan = service.series_name, service.plan
        add(Heading(name))
        if plan is None:
            add(Text(f"No plan; run 'capplan plan --run RUN --demand {name}'."))
            continue
        add(
            Text(
                f"Plan {plan.plan_id}, made {fmt_day(plan.created_at)} from run {plan.run_id} and forecast "
                f"{plan.forecast_id}: each month's demand is the highest {plan.demand_quantile:.0%} quantile of the "
                f"daily peak, served at {fmt_number(plan.safe_rps_per_instance)} rps per instance with "
                f"{plan.redundancy} spare (N+{plan.redundancy})."
            )
        )
        caption = f"{name}: plan {plan.plan_id} per month (* marks the months of {review.quarter})"
        add(Table(caption, plan_frame(plan, review.quarter)))
        if service.scenarios:
            add(Table(f"{name}: growth scenarios", scenario_frame(service, review.quarter)))
        chart = plots.plan_figure(service, review.quarter)
        if chart is not None:
            add(Chart(f"{name}: instances needed per month", chart))
    return section


def _risk_section(review: QuarterlyReview) -> Section:
    section = Section("risks", "Risks and bottlenecks")
    if review.risks:
        frame = pd.DataFrame(
            [(risk.severity, risk.service or "", risk.title, risk.detail) for risk in review.risks],
            columns=["severity", "service", "risk", "detail"],
        )
        section.blocks.append(Table("Risks, most severe first", frame))
    else:
        section.blocks.append(Text("No risks found."))
    section.blocks += _bottleneck_blocks(review)
    if review.notes:
        section.blocks.append(Heading("What this review could not show"))
        for note in review.notes:
            section.blocks.append(Text(note))
    return section


def _bottleneck_blocks(review: QuarterlyReview) -> list[Block]:
    analyses, bottlenecks = review.analyses, review.bottlenecks
    if analyses is None or bottlenecks is None:
        return [Text("This store has no Prometheus analysis tables; 'capplan analyze --prometheus URL' adds them.")]
    if analyses.empty:
        return [
            Text(
                f"No Prometheus analysis was made before the end of {review.quarter}; "
                "run 'capplan analyze --prometheus URL'."
            )
        ]
    blocks: list[Block] = []
    analysis_rows = [
        {
            "analysis": str(row.analysis_id),
            "made": fmt_day(row.created_at),
            "Prometheus": str(row.prometheus_url),
            "selector": row.selector if isinstance(row.selector, str) else "",
            "window": f"{fmt_day(row.window_start)} to {fmt_day(row.window_end)}",
            "status": str(row.status),
        }
        for row in analyses.itertuples(index=False)
    ]
    blocks.append(Table("Newest Prometheus analysis per URL and selector", pd.DataFrame(analysis_rows)))
    if bottlenecks.empty:
        blocks.append(Text("These analyses found no bottlenecks."))
        return blocks
    bottleneck_rows = [
        {
            "analysis": str(row.analysis_id),
            "severity": str(row.severity),
            "metric": str(row.metric),
            "value": f"{row.value:,.3g} {row.unit}",
            "threshold": f"{row.threshold:,.3g} {row.unit}",
            "recommendation": str(row.recommendation),
        }
        for row in bottlenecks.itertuples(index=False)
    ]
    blocks.append(Table("Bottlenecks, critical first", pd.DataFrame(bottleneck_rows)))
    return blocks
