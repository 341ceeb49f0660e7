"""``capplan forecast``: choose a model per resolution by backtests, forecast, and store the forecasts."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.units import parse_fraction, parse_horizon

__all__ = ["register", "run_forecast", "parse_level", "parse_peak"]

DEFAULT_HORIZON = "12mo"
DEFAULT_LEVEL_TEXT = "0.8"
HELP_DEFAULT_FOLDS = 6  # forecasting.backtest.DEFAULT_FOLDS, for --help only; a test keeps the two equal
RESOLUTION_CHOICES = ("all", "native", "daily_peak", "weekly_peak")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "forecast",
        parents=[common],
        help="forecast a series and its daily and weekly peaks",
        description=(
            "Forecast a stored series at its own step and its daily and weekly peaks. Each resolution gets the "
            "model with the lowest MASE in rolling-origin backtests (or the median of the best three), with 80 % "
            "and 95 % prediction intervals recalibrated from the backtest errors where they missed. Every "
            "forecast is stored with its backtest scores."
        ),
    )
    parser.add_argument(
        "name", metavar="NAME", nargs="?",
        help="series to forecast, as stored by 'capplan collect' (omit with --all, --match or --label)",
    )
    parser.add_argument(
        "--horizon",
        default=DEFAULT_HORIZON,
        help=f"how far past the last observation to forecast, such as 6h, 90d, 12mo or 1y (default: {DEFAULT_HORIZON})",
    )
    parser.add_argument(
        "--level",
        default=DEFAULT_LEVEL_TEXT,
        help=(
            "probability of the interval stored as lower/upper, as a fraction or percentage such as 0.8 or 80%% "
            f"(default: {DEFAULT_LEVEL_TEXT}); the 80 %% and 95 %% intervals are stored as well"
        ),
    )
    parser.add_argument(
        "--resolution",
        choices=RESOLUTION_CHOICES,
        default="all",
        help="which series to forecast: the samples at their own step, daily peaks, weekly peaks, or all (default)",
    )
    parser.add_argument(
        "--peak",
        default="max",
        help="daily peak statistic: max (default) or a quantile of each day's samples, such as q0.95 or 95%%",
    )
    parser.add_argument(
        "--models",
        default=None,
        help=(
            "comma-separated candidate models: seasonal_naive, ets_damped, sarima, multi_seasonal, theta, prophet, "
            "or 'all' (default: all but prophet, whose backtests take several seconds)"
        ),
    )
    # The default is forecasting.backtest.DEFAULT_FOLDS, read when the command runs: importing the
    # models here would slow every capplan command by most of a second.
    parser.add_argument(
        "--folds", type=int, default=None,
        help=f"rolling-origin backtest folds; a short history gets fewer (default: {HELP_DEFAULT_FOLDS})",
    )
    parser.add_argument("--cap", type=float, help="Prophet logistic growth: the value demand cannot exceed (adds prophet)")
    parser.add_argument("--floor", type=float, help="Prophet logistic growth: the lowest value (default 0; needs --cap)")
    parser.add_argument("--growth", help="scenario: extra compound growth on top of the forecast, such as 20%%/y")
    parser.add_argument(
        "--step", action="append", default=[], metavar="DATE:CHANGE",
        help="scenario: a lasting change from a date, such as 2027-03-01:+30%% (repeatable)",
    )
    parser.add_argument(
        "--event", action="append", default=[], metavar="DATE:DURATION:xFACTOR",
        help="scenario: a temporary multiplier, such as 2027-06-01:2d:x3 (repeatable)",
    )
    parser.add_argument(
        "--users", metavar="SERIES",
        help="forecast this active-users series and convert it to NAME's requests with the fitted requests per user",
    )
    parser.add_argument("--latency-run", type=int, metavar="RUN", help="load-test run whose latency model predicts latency")
    parser.add_argument("--instances", type=int, help="fleet size for --latency-run")
    fleet = parser.add_argument_group("many series at once")
    fleet.add_argument("--all", action="store_true", help="forecast every stored series in parallel")
    fleet.add_argument("--match", metavar="GLOB", help="forecast the stored series whose names match GLOB, such as 'api_*'")
    fleet.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE",
        help="forecast the stored series with this label (repeatable; all must match)",
    )
    fleet.add_argument(
        "--workers", type=int, default=None,
        help=(
            "processes for --all/--match/--label (default: the number of CPU cores; 1 runs in this process); "
            "not with --cluster"
        ),
    )
    fleet.add_argument(
        "--cluster", metavar="ADDRESS",
        help=(
            "Dask scheduler address, such as tcp://10.0.0.5:8786, to run the fleet on instead of local processes; "
            "its workers need capplan and Dask installed (pip install 'dask[distributed]')"
        ),
    )
    fleet.add_argument(
        "--cluster-timeout", default="5m", metavar="DURATION",
        help=(
            "with --cluster: how long to wait for the next forecast before the unfinished series are reported "
            "as failed, such as 90s or 10m (default: 5m)"
        ),
    )
    parser.set_defaults(handler=run_forecast)


def parse_level(text: str, option: str = "--level") -> float:
    """Parse an interval probability strictly between 0 and 1, such as ``0.8`` or ``80%``."""
    level = parse_fraction(text, option)
    if not 0.0 < level < 1.0:
        raise ConfigError(f"{option}: {text!r} must be between 0 and 1 (exclusive), such as 0.8 or 80%")
    return level


def parse_peak(text: str, option: str = "--peak") -> float | None:
    """Parse the daily peak statistic: None for ``max``, else a quantile in (0.5, 1) such as ``q0.95``."""
    raw = str(text).strip().lower()
    if raw == "max":
        return None
    quantile = parse_fraction(raw[1:] if raw.startswith("q") else raw, option)
    if not 0.5 < quantile < 1.0:
        raise ConfigError(f"{option}: {text!r} must be max or a quantile above 0.5 and below 1, such as q0.95")
    return quantile


def run_forecast(args: argparse.Namespace) -> int:
    """Forecast the series named on the command line, store the forecasts and print them."""
    from forecasting.forecast import RESOLUTIONS, ForecastOptions, describe_horizon
    from forecasting.models import DEFAULT_CANDIDATES, MODEL_NAMES

    horizon = parse_horizon(args.horizon)
    level = parse_level(args.level)
    peak_quantile = parse_peak(args.peak)
    resolutions = RESOLUTIONS if args.resolution == "all" else (args.resolution,)
    candidates = _candidates(args.models, DEFAULT_CANDIDATES, MODEL_NAMES, args.cap is not None)
    if args.folds is None:
        from forecasting.backtest import DEFAULT_FOLDS

        args.folds = DEFAULT_FOLDS
    if args.folds < 1:
        raise ConfigError(f"--folds {args.folds} is invalid; give 1 or more")
    if (args.latency_run is None) != (args.instances is None):
        raise ConfigError("--latency-run and --instances go together; give both or neither")
    scenarios = _scenarios(args)
    model_options = {"cap": args.cap, "floor": args.floor}
    if "prophet" in candidates:
        from forecasting.models.prophet_model import ProphetForecaster

        ProphetForecaster(cap=args.cap, floor=args.floor)  # checks cap and floor before any work

    if args.all or args.match or args.label:
        return _run_fleet(args, horizon, level, resolutions, candidates, model_options, peak_quantile, scenarios)
    if args.name is None:
        raise ConfigError("give a series NAME, or --all, --match GLOB or --label KEY=VALUE for many series")

    store = Store(args.db)
    with _progress() as progress:
        options = ForecastOptions(
            candidates=candidates, folds=args.folds, peak_quantile=peak_quantile,
            model_options=model_options, progress=progress,
        )
        stored = _forecast(store, args, horizon, level, resolutions, options, scenarios)
    latency = _latency(store, args, stored) if args.latency_run is not None else None

    if args.json:
        print_json(
            {
                "series": args.name,
                "level": level,
                "horizon": describe_horizon(horizon),
                "scenarios": [scenario.to_row() for scenario in scenarios],
                "forecasts": [_forecast_payload(forecast_id, result, scenarios) for forecast_id, result in stored],
                **({"latency": latency} if latency is not None else {}),
            }
        )
        return 0
    for forecast_id, result in stored:
        _print_forecast(forecast_id, result, scenarios)
    if latency is not None:
        console.print(
            f"latency ({latency['statistic']}) at {latency['instances']} instances, from run {latency['run_id']}: "
            f"highest {latency['max_latency_ms']} ms at the forecast, first saturated day {latency['first_saturated'] or 'none'}"
        )
    return 0


def _forecast(
    store: Store,
    args: argparse.Namespace,
    horizon: pd.DateOffset,
    level: float,
    resolutions: tuple[str, ...],
    options: Any,
    scenarios: list[Any],
) -> list[tuple[int, Any]]:
    """Forecast and store NAME, or with --users the users series converted to NAME's requests."""
    from forecasting.forecast import forecast_and_store, forecast_samples, store_forecast

    if args.users is None:
        return forecast_and_store(store, args.name, horizon, level, resolutions, options, scenarios)

    from dataclasses import replace

    from capplan.store.series import read_samples
    from forecasting.users import fit_requests_per_user, requests_from_users

    users = read_samples(store, args.users)
    requests = read_samples(store, args.name)
    fit = fit_requests_per_user(users, requests)
    results = forecast_samples(users, horizon, level, args.name, resolutions, options)
    stored = []
    for result in results:
        points = requests_from_users(result.points, fit, {"": level, "_80": 0.8, "_95": 0.95})
        converted = replace(
            result,
            model=f"users({result.model}) x {fit.ratio:.4g} requests per user",
            points=points,
            params={**result.params, "users_series": args.users, "requests_per_user": fit.ratio,
                    "requests_per_user_log_sigma": fit.log_sigma},
        )
        stored.append((store_forecast(store, converted, scenarios), converted))
    return stored


def _run_fleet(
    args: argparse.Namespace,
    horizon: pd.DateOffset,
    level: float,
    resolutions: tuple[str, ...],
    candidates: tuple[str, ...],
    model_options: dict[str, Any],
    peak_quantile: float | None,
    scenarios: list[Any],
) -> int:
    """Forecast many series with forecasting.fleet; exit 1 when any series failed."""
    import os

    from capplan.units import parse_duration_s
    from forecasting.fleet import forecast_fleet, select_series
    from forecasting.forecast import ForecastOptions

    if args.name is not None:
        raise ConfigError(f"NAME {args.name!r} and --all/--match/--label exclude each other; give one of them")
    if args.users or args.latency_run is not None or scenarios:
        raise ConfigError("--users, --latency-run and scenarios work on one series; drop them or give a series NAME")
    store = Store(args.db)
    names = select_series(store, None if args.all else args.match, args.label)
    if not names:
        raise ConfigError(f"no stored series match the selection in {store.path}; list them with 'capplan sql \"SELECT name, labels FROM series\"'")
    if args.cluster is not None and args.workers is not None:
        raise ConfigError("--workers and --cluster exclude each other: the cluster's worker threads set the parallelism")
    cluster_timeout_s = parse_duration_s(args.cluster_timeout, "--cluster-timeout")
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    options = ForecastOptions(candidates=candidates, folds=args.folds, peak_quantile=peak_quantile, model_options=model_options)
    progress = Progress(
        TextColumn("series"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )
    with progress:
        task = progress.add_task("", total=len(names))
        report = forecast_fleet(
            store, names, horizon, level, resolutions, options, workers=workers, cluster=args.cluster,
            cluster_timeout_s=cluster_timeout_s, progress=lambda done, total: progress.update(task, completed=done),
        )
    if args.json:
        print_json({**report.to_dict(), "cluster": args.cluster})
    else:
        where = f"{report.workers} worker thread(s) of {args.cluster}" if args.cluster else f"{report.workers} worker(s)"
        console.print(
            f"{len(report.stored)} of {len(names)} series forecast and stored with {where} in "
            f"{report.elapsed_s:.1f} s ({report.series_per_s:.2f} series/s)"
        )
        for failure in report.failures:
            console.print(f"failed: {failure.series_name}: {failure.error}")
    return 1 if report.failures else 0


def _candidates(text: str | None, defaults: tuple[str, ...], known: tuple[str, ...], with_cap: bool) -> tuple[str, ...]:
    if text is None:
        names = list(defaults)
    elif text.strip().lower() == "all":
        names = list(known)
    else:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise ConfigError(f"--models: unknown model {unknown[0] if unknown else text!r}; choose from {', '.join(known)}")
    if with_cap and "prophet" not in names:
        names.append("prophet")
    return tuple(names)


def _scenarios(args: argparse.Namespace) -> list[Any]:
    from forecasting.scenarios import parse_event, parse_growth_scenario, parse_step

    scenarios = []
    if args.growth:
        scenarios.append(parse_growth_scenario(args.growth))
    scenarios.extend(parse_step(text) for text in args.step)
    scenarios.extend(parse_event(text) for text in args.event)
    return scenarios


def _latency(store: Store, args: argparse.Namespace, stored: list[Any]) -> dict[str, Any]:
    from forecasting.capacity import run_report
    from forecasting.latency_forecast import latency_from_demand

    report = run_report(store, args.latency_run)
    if report.latency is None:
        raise ConfigError(f"run {args.latency_run} has no fitted latency model; choose a stepped run with latency data")
    daily = [result for _, result in stored if result.resolution == "daily_peak"] or [stored[0][1]]
    result = daily[0]
    frame = latency_from_demand(result.points, report.latency, args.instances, "p95")
    saturated = frame.loc[frame["saturated"], "ts"]
    return {
        "run_id": args.latency_run,
        "instances": args.instances,
        "statistic": "p95",
        "resolution": result.resolution,
        "max_latency_ms": None if frame["latency_ms"].isna().all() else round(float(frame["latency_ms"].max()), 1),
        "first_saturated": None if saturated.empty else pd.Timestamp(saturated.iloc[0]),
        "points": frame.rename(columns={"ts": "timestamp"}).to_dict("records"),
    }


def _forecast_payload(forecast_id: int, result: Any, scenarios: list[Any]) -> dict[str, Any]:
    selection = result.selection
    points = result.with_scenarios(scenarios) if scenarios else result.points
    models = [] if selection is None or selection.summary.empty else selection.summary.to_dict("records")
    return {
        "forecast_id": forecast_id,
        "resolution": result.resolution,
        "model": result.model,
        "step_s": result.step.total_seconds(),
        "peak_statistic": result.peak_statistic,
        "history_start": result.history_start,
        "history_end": result.history_end,
        "backtest": {
            "mase": result.mase,
            "folds": None if selection is None else selection.folds,
            "horizon_steps": None if selection is None else selection.backtest_horizon,
            "winner": None if selection is None else selection.winner,
            "reason": None if selection is None else selection.reason,
            "models": models,
        },
        "coverage": {
            "level": result.coverage(result.level),
            "80": result.coverage(0.8),
            "95": result.coverage(0.95),
            "method": None if selection is None else selection.calibration.method,
        },
        "points": [
            {"timestamp": row["ts"], **{key: row[key] for key in ("yhat", "lower", "upper", "lower_80", "upper_80", "lower_95", "upper_95")}}
            for row in points.to_dict("records")
        ],
    }


def _print_forecast(forecast_id: int, result: Any, scenarios: list[Any]) -> None:
    selection = result.selection
    percent = round(result.level * 100)
    if selection is not None and not selection.summary.empty:
        scores = Table(title=f"backtests of the {result.resolution} forecast of {result.series_name}")
        for column in ("model", "mean MASE", "80 % coverage", "95 % coverage", ""):
            scores.add_column(column, justify="left" if column in ("model", "") else "right")
        for row in selection.summary.to_dict("records"):
            note = "chosen" if row["selected"] else (row["rejected"] or "")
            scores.add_row(row["label"], _number(row["mase"], "{:.3f}"), _number(row["coverage_80"], "{:.0%}"),
                           _number(row["coverage_95"], "{:.0%}"), note)
        console.print(scores)

    points = result.with_scenarios(scenarios) if scenarios else result.points
    if result.resolution != "weekly_peak":
        grouped = points.groupby(points["ts"].dt.to_period("M")).agg(yhat=("yhat", "max"), upper=("upper", "max"))
        table = Table(title=f"{result.resolution} forecast of {result.series_name} ({result.model}, {percent}% interval)")
        table.add_column("month")
        table.add_column("max forecast", justify="right")
        table.add_column("max upper bound", justify="right")
        for month, row in grouped.iterrows():
            table.add_row(str(month), f"{row['yhat']:,.1f}", f"{row['upper']:,.1f}")
        console.print(table)
    for label, row in (("first point", points.iloc[0]), ("last point", points.iloc[-1])):
        console.print(
            f"{label} {pd.Timestamp(row['ts'])}: forecast {row['yhat']:,.1f}, interval {row['lower']:,.1f} .. {row['upper']:,.1f}"
        )
    coverage = result.coverage(result.level)
    if coverage is not None:
        method = selection.calibration.method if selection is not None else "model"
        console.print(f"measured coverage of the {percent}% interval in backtests: {coverage:.0%} ({method} intervals)")
    if scenarios:
        console.print(f"points include {len(scenarios)} scenario(s); the stored points do not (see view scenario_forecast_points)")
    console.print(
        f"history {result.history_start} .. {result.history_end}; stored as forecast {forecast_id} ({result.resolution})"
    )


def _number(value: Any, pattern: str) -> str:
    return "" if value is None or pd.isna(value) else pattern.format(value)


@contextmanager
def _progress() -> Iterator[Any]:
    """Yield a progress callback that draws the backtests' progress on stderr."""
    progress = Progress(
        TextColumn("backtests {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} fits"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    )
    task = progress.add_task("", total=1)

    def update(done: int, total: int, model: str) -> None:
        progress.update(task, completed=done, total=total, description=model)

    with progress:
        yield update
