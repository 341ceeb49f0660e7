"""``capplan plan``: instances needed per month for a forecast demand, and the current fleet's runway."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

from rich.table import Table

from capplan.cli.capacity_cmd import add_policy_arguments, policy_from_args
from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.units import parse_horizon

if TYPE_CHECKING:
    from forecasting.plan import PlanResult
    from forecasting.scalability import UslFit

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
    parser.add_argument(
        "--quantile",
        metavar="Q",
        help="quantile of daily demand to cover, such as 0.95 (default: the forecast's upper bound, 0.9 for an 80%% interval)",
    )
    parser.add_argument("--price-per-hour", metavar="PRICE", help="price of one instance-hour, for the monthly cost")
    parser.add_argument(
        "--scaling",
        metavar="FILE.csv",
        help="throughput measured at several fleet sizes (instances,throughput_rps) for a fitted scaling "
        "efficiency (default: linear scaling)",
    )
    add_policy_arguments(parser)
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


def _parse_number(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ConfigError(f"{option}: invalid value {text!r}; give a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{option}: {text!r} is not a finite number")
    return value


def _fleet_scaling(path: str | None) -> UslFit | None:
    if path is None:
        return None
    from forecasting.scalability import fit_fleet_scaling, read_fleet_scaling_csv

    sizes, throughput = read_fleet_scaling_csv(path)
    return fit_fleet_scaling(sizes, throughput)


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
    quantile = _parse_number(args.quantile, "--quantile")
    if quantile is not None and not 0.0 < quantile < 1.0:
        raise ConfigError(f"--quantile: {args.quantile!r} is outside (0, 1); give for example 0.9 or 0.95")
    price = _parse_number(args.price_per_hour, "--price-per-hour")
    if price is not None and price < 0:
        raise ConfigError(f"--price-per-hour: {args.price_per_hour!r} is below 0; give the price of one instance-hour")
    policy = policy_from_args(args)
    scaling = _fleet_scaling(args.scaling)
    assert run_id is not None and redundancy is not None

    plan_id, plan = make_plan(
        Store(args.db),
        run_id,
        args.demand,
        horizon,
        current_instances=current_instances,
        redundancy=redundancy,
        forecast_id=forecast_id,
        quantile=quantile,
        price_per_instance_hour=price,
        policy=policy,
        scaling=scaling,
        scaling_source=args.scaling,
    )
    if args.json:
        print_json(plan_payload(plan_id, plan))
    else:
        print_plan(plan_id, plan)
    return 0


def plan_payload(plan_id: int, plan: PlanResult) -> dict[str, Any]:
    """Return the ``--json`` object of a stored plan.

    Numbers that need a missing input (a price, a latency model) are null.
    """
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
        "fleet_capacity_rps": plan.fleet_capacity_rps,
        "price_per_instance_hour": plan.price_per_instance_hour,
        "total_cost": plan.total_cost,
        "scaling": plan.scaling,
        "inputs": plan.inputs,
        "notes": plan.notes,
        "months": [
            {
                "month": row.month.strftime("%Y-%m"),
                "demand": row.demand_rps,
                "instances": row.instances,
                "utilisation": row.utilisation,
                **_month_detail(row),
            }
            for row in plan.months.itertuples(index=False)
        ],
        "milestones": [
            {
                "months_ahead": row.months_ahead,
                "month": row.month.strftime("%Y-%m"),
                "demand": row.demand_rps,
                "instances": row.instances,
                "utilisation": row.utilisation,
                **_month_detail(row),
            }
            for row in plan.milestones.itertuples(index=False)
        ],
    }


def _month_detail(row: Any) -> dict[str, Any]:
    return {
        "demand_yhat": row.demand_yhat_rps,
        "per_instance_rps": row.per_instance_rps,
        "p95_ms": row.p95_ms,
        "cost": row.cost,
        "shortfall_probability": row.shortfall_probability,
        "shortfall_probability_peak_day": row.shortfall_probability_peak_day,
        "scaling_efficiency": row.scaling_efficiency,
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
    show_p95 = bool(plan.months["p95_ms"].notna().any())
    show_cost = plan.price_per_instance_hour is not None
    show_risk = bool(plan.months["shortfall_probability"].notna().any())
    table.add_column("month", no_wrap=True)
    table.add_column("ahead", justify="right")
    table.add_column(f"demand p{quantile} (rps)", justify="right")
    table.add_column("forecast (rps)", justify="right")
    table.add_column("instances", justify="right")
    table.add_column("utilisation", justify="right")
    if show_p95:
        table.add_column("p95 (ms)", justify="right")
    if show_cost:
        table.add_column("cost", justify="right")
    if show_risk:
        table.add_column("P(short)", justify="right")
    for row in plan.months.itertuples(index=False):
        cells = [
            row.month.strftime("%Y-%m"),
            str(row.months_ahead),
            f"{row.demand_rps:,.1f}",
            f"{row.demand_yhat_rps:,.1f}",
            str(row.instances),
            f"{row.utilisation:.0%}",
        ]
        if show_p95:
            cells.append("-" if math.isnan(row.p95_ms) else f"{row.p95_ms:,.1f}")
        if show_cost:
            cells.append(f"{row.cost:,.2f}")
        if show_risk:
            cells.append(f"{row.shortfall_probability:.0%}")
        table.add_row(*cells)
    console.print(table)
    if plan.total_cost is not None:
        console.print(f"total cost over the horizon: {plan.total_cost:,.2f} at {plan.price_per_instance_hour:g} per instance-hour")
    for note in plan.notes:
        console.print(f"note: {note}")

    fleet = (
        f"the current fleet of {plan.current_instances} instances "
        f"({plan.fleet_capacity_rps:,.1f} rps with {plan.redundancy} spare)"
    )
    if plan.runway_date is None:
        console.print(f"runway: {fleet} carries the demand for the whole horizon")
    else:
        console.print(f"runway: {fleet} runs out on {plan.runway_date.isoformat()}")
