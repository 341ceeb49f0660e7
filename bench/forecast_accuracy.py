"""Forecast accuracy and speed on real public series: capplan's selection against Prophet and seasonal naive.

Usage: .venv/bin/python bench/forecast_accuracy.py ../shared/data/real [--origins 2] [--limit N] [--folds 3]

For each series (request rates, CPU and network traffic; see SERIES), the last
``origins`` blocks of one horizon are held out in turn. At each origin the
three methods see the same history:

- capplan: the whole model selection (its own inner backtests included) on
  the history, then the chosen model's forecast with recalibrated intervals;
- Prophet 1.x with its defaults (80 % interval), fit and predict;
- seasonal naive with the daily season.

MASE is the held-out MAE divided by the in-sample MAE of the daily seasonal
naive forecast, the usual M4 scaling. Coverage is the share of held-out
values inside the 80 % interval, and for capplan also the 95 % one (Prophet's
default interval is 80 % only). Times are wall-clock seconds of fit plus
predict in this process, so the ratio capplan / Prophet compares both on the
same machine in the same run. The data stay in the folder given; nothing is
copied.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecasting.backtest import DEFAULT_FOLDS, mase_scale  # noqa: E402
from forecasting.models.seasonal_naive import SeasonalNaive  # noqa: E402
from forecasting.seasonality import usable_seasons  # noqa: E402
from forecasting.selection import select_and_forecast  # noqa: E402

FIVE_MINUTES = pd.Timedelta(minutes=5)
ONE_HOUR = pd.Timedelta(hours=1)

# (relative path, resampling step, kind). Request rates, CPU and network
# traffic only: road traffic (realTraffic) is not service demand and has gaps
# of days, and temperatures, latencies, crash and 503 counts are not demand.
SERIES: tuple[tuple[str, pd.Timedelta, str], ...] = (
    ("nab/realAWSCloudwatch/elb_request_count_8c0756.csv", FIVE_MINUTES, "requests"),
    ("nab/realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv", FIVE_MINUTES, "cpu"),
    ("nab/realAWSCloudwatch/ec2_network_in_257a54.csv", FIVE_MINUTES, "network"),
    ("nab/realAWSCloudwatch/ec2_network_in_5abac7.csv", FIVE_MINUTES, "network"),
    ("nab/realKnownCause/cpu_utilization_asg_misconfiguration.csv", ONE_HOUR, "cpu"),
    ("nab/realKnownCause/nyc_taxi.csv", ONE_HOUR, "requests"),
    ("ms-cloud-monitoring/mongodb-application-rps/mongo-01.csv", FIVE_MINUTES, "requests"),
    ("ms-cloud-monitoring/mongodb-application-rps/mongo-02.csv", FIVE_MINUTES, "requests"),
    ("ms-cloud-monitoring/mongodb-application-rps/mongo-03.csv", FIVE_MINUTES, "requests"),
    ("ms-cloud-monitoring/mongodb-application-rps/mongo-04.csv", FIVE_MINUTES, "requests"),
    ("ms-cloud-monitoring/mongodb-machine-rps/machine-01.csv", ONE_HOUR, "requests"),
    ("ms-cloud-monitoring/data-ingress-rate/ingress-01.csv", ONE_HOUR, "network"),
    ("ms-cloud-monitoring/data-ingress-rate/ingress-02.csv", ONE_HOUR, "network"),
    ("ms-cloud-monitoring/consumer-purchase-rate/purchase-02.csv", ONE_HOUR, "requests"),
)
HORIZON = {FIVE_MINUTES: pd.Timedelta(days=1), ONE_HOUR: pd.Timedelta(days=7)}


@dataclass
class Score:
    series: str
    step: str
    origin: int
    train_points: int
    model: str
    mase: dict[str, float]
    coverage: dict[str, float]
    seconds: dict[str, float]


def load_series(path: Path, step: pd.Timedelta) -> pd.Series:
    """Read a NAB or ms-cloud-monitoring CSV and return its mean per ``step`` on a regular grid, NaN for gaps.

    Handles what the files contain: quoted values, unsorted rows, exact
    duplicates and the duplicated hour of a daylight-saving change (averaged
    into their grid cell), NaN values, and a trailing ``Z`` on UTC timestamps.
    """
    frame = pd.read_csv(path)
    frame.columns = [column.lower() for column in frame.columns]
    ts = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601").dt.tz_convert(None)
    values = pd.to_numeric(frame["value"], errors="coerce")
    series = pd.Series(values.to_numpy(dtype=float), index=ts).sort_index()
    binned = series.groupby(series.index.floor(step)).mean()
    grid = pd.date_range(binned.index.min(), binned.index.max(), freq=step)
    return binned.reindex(grid)


def prophet_forecast(train: pd.Series, horizon: int, step: pd.Timedelta) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from prophet import Prophet

    model = Prophet()
    model.fit(pd.DataFrame({"ds": train.index, "y": train.to_numpy()}).dropna())
    future = pd.DataFrame({"ds": pd.date_range(train.index[-1] + step, periods=horizon, freq=step)})
    forecast = model.predict(future)
    return forecast["yhat"].to_numpy(), forecast["yhat_lower"].to_numpy(), forecast["yhat_upper"].to_numpy()


def evaluate(name: str, series: pd.Series, step: pd.Timedelta, origins: int, folds: int = DEFAULT_FOLDS) -> list[Score]:
    season = int(pd.Timedelta(days=1) / step)
    # At most a sixth of the history per held-out block, in whole days, so two blocks leave two thirds to fit on.
    horizon = min(int(HORIZON[step] / step), max(1, len(series) // 6 // season) * season)
    scores = []
    for k in range(origins, 0, -1):
        origin = len(series) - k * horizon
        train, actual = series.iloc[:origin], series.iloc[origin : origin + horizon].to_numpy()
        observed = np.isfinite(actual)
        scale = mase_scale(train.to_numpy(), season)

        started = time.perf_counter()
        seasons = usable_seasons(step, len(train))
        selection = select_and_forecast(train, seasons, horizon, folds=folds)
        ours_s = time.perf_counter() - started

        started = time.perf_counter()
        prophet_mean, prophet_lower, prophet_upper = prophet_forecast(train, horizon, step)
        prophet_s = time.perf_counter() - started

        naive = SeasonalNaive((season,)).fit(train).predict(horizon)

        def mase(mean: np.ndarray) -> float:
            return float(np.mean(np.abs(actual[observed] - mean[observed])) / scale)

        def coverage(lower: np.ndarray, upper: np.ndarray) -> float:
            return float(np.mean((actual[observed] >= lower[observed]) & (actual[observed] <= upper[observed])))

        ours_lower, ours_upper = selection.prediction.bounds[0.8]
        ours_lower_95, ours_upper_95 = selection.prediction.bounds[0.95]
        scores.append(
            Score(
                series=name, step=f"{int(step / pd.Timedelta(minutes=1))}min", origin=origin, train_points=origin,
                model=selection.model,
                mase={"capplan": mase(selection.prediction.mean), "prophet": mase(prophet_mean), "naive": mase(naive.mean)},
                coverage={
                    "capplan": coverage(ours_lower, ours_upper),
                    "prophet": coverage(prophet_lower, prophet_upper),
                    "capplan_95": coverage(ours_lower_95, ours_upper_95),
                },
                seconds={"capplan": ours_s, "prophet": prophet_s},
            )
        )
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the real data folder, such as ../shared/data/real")
    parser.add_argument("--origins", type=int, default=2, help="held-out horizons per series (default: 2)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N series")
    parser.add_argument(
        "--folds", type=int, default=DEFAULT_FOLDS,
        help=f"capplan's model-choice backtest folds, as capplan forecast --folds (default: {DEFAULT_FOLDS})",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("cmdstanpy", "prophet", "forecasting"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")

    rows: list[Score] = []
    chosen = SERIES[: args.limit] if args.limit else SERIES
    for index, (relative, step, _kind) in enumerate(chosen, start=1):
        path = args.folder / relative
        series = load_series(path, step)
        for score in evaluate(path.stem, series, step, args.origins, args.folds):
            rows.append(score)
            print(
                f"[{index}/{len(chosen)}] {score.series} {score.step} origin {score.origin}: "
                f"MASE capplan {score.mase['capplan']:.3f} prophet {score.mase['prophet']:.3f} "
                f"naive {score.mase['naive']:.3f}; cov80 {score.coverage['capplan']:.2f}/{score.coverage['prophet']:.2f}; "
                f"{score.seconds['capplan']:.2f}s vs {score.seconds['prophet']:.2f}s ({score.model})",
                file=sys.stderr, flush=True,
            )

    print("| series | step | history | chosen model | MASE capplan | MASE Prophet | MASE seasonal naive "
          "| 80 % coverage capplan | 80 % coverage Prophet | 95 % coverage capplan | s capplan | s Prophet |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.series} | {r.step} | {r.train_points} | {r.model} | {r.mase['capplan']:.3f} | {r.mase['prophet']:.3f} "
            f"| {r.mase['naive']:.3f} | {r.coverage['capplan']:.0%} | {r.coverage['prophet']:.0%} "
            f"| {r.coverage['capplan_95']:.0%} | {r.seconds['capplan']:.2f} | {r.seconds['prophet']:.2f} |"
        )
    mean = {key: float(np.mean([r.mase[key] for r in rows])) for key in ("capplan", "prophet", "naive")}
    cover = {key: float(np.mean([r.coverage[key] for r in rows])) for key in ("capplan", "prophet", "capplan_95")}
    in_goal = sum(0.75 <= r.coverage["capplan"] <= 0.85 for r in rows)
    seconds = {key: float(np.sum([r.seconds[key] for r in rows])) for key in ("capplan", "prophet")}
    slower = sum(r.seconds["capplan"] > r.seconds["prophet"] for r in rows)
    print()
    print(f"forecasts: {len(rows)} ({len(chosen)} series x {args.origins} origins)")
    print(f"mean MASE: capplan {mean['capplan']:.3f}, Prophet {mean['prophet']:.3f}, seasonal naive {mean['naive']:.3f}")
    print(f"capplan / Prophet MASE: {mean['capplan'] / mean['prophet']:.3f}; capplan / seasonal naive: {mean['capplan'] / mean['naive']:.3f}")
    print(f"mean 80 % coverage: capplan {cover['capplan']:.1%}, Prophet {cover['prophet']:.1%}; "
          f"capplan within 75-85 % on {in_goal} of {len(rows)} forecasts")
    print(f"mean 95 % coverage: capplan {cover['capplan_95']:.1%}")
    print(f"time: capplan {seconds['capplan']:.1f} s, Prophet {seconds['prophet']:.1f} s, ratio {seconds['capplan'] / seconds['prophet']:.2f}; "
          f"capplan slower than Prophet on {slower} of {len(rows)} forecasts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
