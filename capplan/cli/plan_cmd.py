"""``capplan plan``: instances needed per month for a forecast demand, and the current fleet's runway."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.units import parse_horizon

if TYPE_CHECKING:
    from forecasting.plan import PlanResult

__all__ = ["register", "run_plan", "plan_payload", "print_plan"]

DEFAULT_HORIZON = "12mo"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "plan",
        parents=[common],
        help="plan instances per month from a load test and a demand forecast",
        description=(
            "Plan the instances needed each month: the monthly maximum of the forecast's upper bound "
            "divided by the safe load per instance of a load-test run, rounded up, plus redundancy. A new "
            "forecast of the demand series is made first when none covers the horizon or the series has "
            "newer days than the latest forecast."
        ),
    )
    parser.add_argument("--run", metavar="RUN", help="id of the load-test run whose safe load per instance is used")
    parser.add_argument("--demand", metavar="NAME", help="demand series to plan for, as stored by 'capplan collect'")
    parser.add_argument(
        "--horizon",
        default=DEFAULT_HORIZON,
        help=f"how far past the last observed day to plan, such as 6mo or 1y (default: {DEFAULT_HORIZON})",
    )
    parser.add_argument(
        "--instances",
        metavar="N",
        help=(
            "instances in the current fleet, for the runway date (default: the instances needed for the "
            "highest daily peak of the last 7 observed days, including redundancy)"
        ),
    )
    parser.add_argument(
        "--redundancy",
        metavar="N",
        default="1",
        help="spare instances on top of those that carry the demand; 1 means N+1 (default: 1)",
    )
    parser.add_argument(
        "--forecast",
        metavar="ID",
        help="id of the forecast to plan from (default: the latest forecast of the demand series)",
    )
    parser.set_defaults(handler=run_plan)


def _parse_count(text: str | None, option: str, minimum: int) -> int | None:
    if text is None:
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{option}: invalid value {text!r}; give a whole number of at least {minimum}") from None
    if value < minimum:
        raise ConfigError(f"{option}: {value} is below {minimum}; give a whole number of at least {minimum}")
    return value


def run_plan(args: argparse.Namespace) -> int:
    """Make and store the plan described on the command line and print it."""
    from forecasting.plan import make_plan

    if not args.run:
        raise ConfigError("plan needs a load-test run; give --run RUN (list runs with 'capplan sql \"SELECT * FROM runs\"')")
    if not args.demand:
        raise ConfigError("plan needs a demand series; give --demand NAME, as stored by 'capplan collect'")
    run_id = _parse_count(args.run, "--run", 1)
    redundancy = _parse_count(args.redundancy, "--redundancy", 0)
    current_instances = _parse_count(args.instances, "--instances", 1)
    forecast_id = _parse_count(args.forecast, "--forecast", 1)
    horizon = parse_horizon(args.horizon)
    assert run_id is not None and redundancy is not None

    plan_id, plan = make_plan(
        Store(args.db),
        run_id,
        args.demand,
        horizon,
        current_instances=current_instances,
        redundancy=redundancy,
        forecast_id=forecast_id,
    )
    if args.json:
        print_json(plan_payload(plan_id, plan))
    else:
        print_plan(plan_id, plan)
    return 0


def plan_payload(plan_id: int, plan: PlanResult) -> dict[str, Any]:
    """Return the ``--json`` object of a stored plan."""
    return {
        "plan_id": plan_id,
        "run_id": plan.run_id,
        "forecast_id": plan.forecast_id,
        "series": plan.series_name,
        "safe_rps_per_instance": plan.safe_rps_per_instance,
        "current_instances": plan.current_instances,
        "redundancy": plan.redundancy,
        "demand_quantile": plan.demand_quantile,
        "runway_date": plan.runway_date,
        "months": [
            {
                "month": row.month.strftime("%Y-%m"),
                "demand": row.demand_rps,
                "instances": row.instances,
                "utilisation": row.utilisation,
            }
            for row in plan.months.itertuples(index=False)
        ],
        "milestones": [
            {
                "months_ahead": row.months_ahead,
                "month": row.month.strftime("%Y-%m"),
                "demand": row.demand_rps,
                "instances": row.instances,
            }
            for row in plan.milestones.itertuples(index=False)
        ],
    }


def print_plan(plan_id: int, plan: PlanResult) -> None:
    """Print a plan as a table of months and a line with the runway date."""
    quantile = round((plan.demand_quantile or 0.0) * 100)
    table = Table(
        title=(
            f"capacity plan {plan_id} for {plan.series_name}: run {plan.run_id}, "
            f"{plan.safe_rps_per_instance:,.1f} rps per instance, N+{plan.redundancy}"
        )
    )
    table.add_column("month")
    table.add_column("months ahead", justify="right")
    table.add_column(f"demand p{quantile} (rps)", justify="right")
    table.add_column("forecast (rps)", justify="right")
    table.add_column("instances", justify="right")
    table.add_column("utilisation", justify="right")
    for row in plan.months.itertuples(index=False):
        table.add_row(
            row.month.strftime("%Y-%m"),
            str(row.months_ahead),
            f"{row.demand_rps:,.1f}",
            f"{row.demand_yhat_rps:,.1f}",
            str(row.instances),
            f"{row.utilisation:.0%}",
        )
    console.print(table)

    fleet = (
        f"the current fleet of {plan.current_instances} instances "
        f"({plan.fleet_capacity_rps:,.1f} rps with {plan.redundancy} spare)"
    )
    if plan.runway_date is None:
        console.print(f"runway: {fleet} carries the demand for the whole horizon")
    else:
        console.print(f"runway: {fleet} runs out on {plan.runway_date.isoformat()}")
