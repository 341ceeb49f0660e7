"""``capplan report``: the quarterly capacity review as one self-contained HTML file."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rich.table import Table

from capplan.cli.output import console, print_json

if TYPE_CHECKING:
    from capplan.review.model import QuarterlyReview

# capplan.review is imported inside the handlers, because it loads matplotlib
# and the forecasting models, which every other command would otherwise pay for.

__all__ = ["register", "run_report", "review_payload"]


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "report",
        parents=[common],
        help="write the quarterly capacity review as one HTML file",
        description=(
            "Write the quarterly capacity review of a store as one self-contained HTML file (figures embedded, "
            "no network needed to open it): runway and instances needed, demand and forecast, last quarter's "
            "forecast against what happened, load tests against last quarter's, the plan with growth scenarios, "
            "and risks. The content is the same as notebooks/quarterly_capacity_review.ipynb."
        ),
    )
    parser.add_argument(
        "--quarter",
        metavar="YYYYQN",
        help="quarter to review, such as 2026Q4 (default: the current quarter in UTC)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="HTML file to write (default: capacity-review-QUARTER.html in the current folder)",
    )
    parser.add_argument(
        "--services",
        metavar="NAMES",
        help="comma-separated demand series to review (default: every series with a plan)",
    )
    parser.add_argument(
        "--slo-p95",
        metavar="MS",
        help="judge the load tests against this p95 latency SLO, such as 250ms (default: each run's own SLO)",
    )
    parser.add_argument(
        "--scenario",
        metavar="NAME=GROWTH",
        action="append",
        help=(
            "growth scenario on top of the forecast, such as 'launch=40%%/y'; repeat for several "
            "(default: forecast=0, faster growth=20%%/y, slower growth=-10%%/y)"
        ),
    )
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Build the review, write the HTML file and print a summary."""
    from capplan.review import build_review, current_quarter, parse_quarter, write_report

    quarter = parse_quarter(args.quarter) if args.quarter else current_quarter()
    out = args.out or f"capacity-review-{quarter}.html"
    review = build_review(
        args.db, quarter, services=args.services, slo_p95_ms=args.slo_p95, scenarios=args.scenario
    )
    path = write_report(review, out)
    size_bytes = path.stat().st_size
    if args.json:
        print_json({"out": str(path), "bytes": size_bytes, **review_payload(review)})
        return 0
    _print_summary(review)
    console.print(f"wrote {path} ({size_bytes / 1024:,.0f} KiB)")
    return 0


def review_payload(review: QuarterlyReview) -> dict[str, Any]:
    """Return the review's key numbers as plain values for ``--json``."""
    services = []
    for service in review.services:
        plan, run, accuracy = service.plan, service.run, service.accuracy
        services.append(
            {
                "series": service.series_name,
                "as_of": service.as_of,
                "plan_id": plan.plan_id if plan else None,
                "current_instances": plan.current_instances if plan else None,
                "runway_date": plan.runway_date if plan else None,
                "runway_days": service.runway_days,
                "instances_this_quarter": service.instances_this_quarter,
                "instances_next_quarter": service.instances_next_quarter,
                "instances_max": service.instances_max,
                "instances_to_add": service.instances_to_add,
                "safe_rps_per_instance": run.safe_rps if run else None,
                "previous_safe_rps_per_instance": service.previous_run.safe_rps if service.previous_run else None,
                "capacity_change": service.capacity_change,
                "quarter_peak": service.quarter_peak,
                "previous_quarter_peak": service.previous_quarter_peak,
                "previous_forecast_id": accuracy.forecast.forecast_id if accuracy else None,
                "previous_forecast_mape_pct": accuracy.mape_pct if accuracy else None,
                "previous_forecast_interval_coverage": accuracy.interval_coverage if accuracy else None,
                "scenarios": [
                    {
                        "name": scenario.name,
                        "growth_per_year": scenario.growth_per_year,
                        "runway_date": scenario.runway_date,
                        "instances_next_quarter": scenario.instances_next_quarter,
                        "instances_max": scenario.instances_max,
                    }
                    for scenario in service.scenarios
                ],
            }
        )
    return {
        "quarter": str(review.quarter),
        "as_of": review.as_of,
        "slo_p95_ms": review.slo_p95_ms,
        "services": services,
        "risks": [
            {"severity": risk.severity, "service": risk.service, "title": risk.title, "detail": risk.detail}
            for risk in review.risks
        ],
        "notes": review.notes,
    }


def _print_summary(review: QuarterlyReview) -> None:
    from capplan.review.formatting import fmt_runway

    table = Table(title=f"capacity review {review.quarter}")
    longest_name = max((len(service.series_name) for service in review.services), default=6)
    table.add_column("series", min_width=longest_name, no_wrap=True)
    for column in ("fleet", "runway ends", f"instances in {review.quarter.next()}", "safe rps per instance", "last forecast's MAPE"):
        table.add_column(column, justify="right")
    for service in review.services:
        plan, run = service.plan, service.run
        mape = service.accuracy.mape_pct if service.accuracy else None
        table.add_row(
            service.series_name,
            str(plan.current_instances) if plan else "n/a",
            fmt_runway(plan.runway_date if plan else None, plan is not None),
            str(service.instances_next_quarter) if service.instances_next_quarter is not None else "n/a",
            f"{run.safe_rps:,.1f}" if run and run.safe_rps else "n/a",
            f"{mape:.1f} %" if mape is not None else "n/a",
        )
    console.print(table)
    counts = {severity: sum(risk.severity == severity for risk in review.risks) for severity in ("high", "medium", "low")}
    console.print(f"risks: {counts['high']} high, {counts['medium']} medium, {counts['low']} low")
