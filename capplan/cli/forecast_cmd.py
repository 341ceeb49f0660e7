"""``capplan forecast``: forecast the daily peaks of a stored series and store the forecast."""

from __future__ import annotations

import argparse

import pandas as pd
from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.units import parse_fraction, parse_horizon

__all__ = ["register", "run_forecast", "parse_level"]

DEFAULT_HORIZON = "12mo"
DEFAULT_LEVEL_TEXT = "0.8"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "forecast",
        parents=[common],
        help="forecast the daily peaks of a series",
        description=(
            "Forecast the daily peak (maximum of each UTC day) of a stored series with a prediction "
            "interval, and store the forecast."
        ),
    )
    parser.add_argument("name", metavar="NAME", help="series to forecast, as stored by 'capplan collect'")
    parser.add_argument(
        "--horizon",
        default=DEFAULT_HORIZON,
        help=f"how far past the last observed day to forecast, such as 90d, 12mo or 1y (default: {DEFAULT_HORIZON})",
    )
    parser.add_argument(
        "--level",
        default=DEFAULT_LEVEL_TEXT,
        help=(
            "probability of the central prediction interval, as a fraction or percentage such as 0.8 or 80%% "
            f"(default: {DEFAULT_LEVEL_TEXT})"
        ),
    )
    parser.set_defaults(handler=run_forecast)


def parse_level(text: str, option: str = "--level") -> float:
    """Parse an interval probability strictly between 0 and 1, such as ``0.8`` or ``80%``."""
    level = parse_fraction(text, option)
    if not 0.0 < level < 1.0:
        raise ConfigError(f"{option}: {text!r} must be between 0 and 1 (exclusive), such as 0.8 or 80%")
    return level


def run_forecast(args: argparse.Namespace) -> int:
    """Forecast the series named on the command line and print the forecast."""
    from forecasting.forecast import forecast_series

    horizon = parse_horizon(args.horizon)
    level = parse_level(args.level)
    forecast_id, result = forecast_series(Store(args.db), args.name, horizon, level)

    if args.json:
        print_json(
            {
                "forecast_id": forecast_id,
                "series": result.series_name,
                "model": result.model,
                "level": result.level,
                "resolution": result.resolution,
                "points": [
                    {"timestamp": row.ts, "yhat": row.yhat, "lower": row.lower, "upper": row.upper}
                    for row in result.points.itertuples(index=False)
                ],
            }
        )
        return 0

    points = result.points
    monthly = points.groupby(points["ts"].dt.to_period("M")).agg(yhat=("yhat", "max"), upper=("upper", "max"))
    percent = round(result.level * 100)
    table = Table(title=f"daily peak forecast of {result.series_name} ({result.model}, {percent}% interval)")
    table.add_column("month")
    table.add_column("max forecast", justify="right")
    table.add_column("max upper bound", justify="right")
    for month, row in monthly.iterrows():
        table.add_row(str(month), f"{row['yhat']:,.1f}", f"{row['upper']:,.1f}")
    console.print(table)
    for label, row in (("first day", points.iloc[0]), ("last day", points.iloc[-1])):
        console.print(
            f"{label} {pd.Timestamp(row['ts']).date()}: forecast {row['yhat']:,.1f}, "
            f"interval {row['lower']:,.1f} .. {row['upper']:,.1f}"
        )
    console.print(f"history {result.history_start.date()} .. {result.history_end.date()}; stored as forecast {forecast_id}")
    return 0
