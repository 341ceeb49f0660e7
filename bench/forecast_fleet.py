"""Series per second of a fleet forecast: sequential in one process against a local process pool.

Usage: .venv/bin/python bench/forecast_fleet.py [--series 1000] [--days 60] [--workers 2]

The script writes ``--series`` synthetic hourly series (daily cycle, weekly
cycle, trend and noise, each with its own seed) to a DuckDB file in a
temporary folder. It then forecasts the daily peaks of all of them twice,
with the default candidate models and a 30-day horizon: once with
``workers=1`` (in this process) and once with a pool of ``--workers`` processes. The rate
is series forecast and stored per wall-clock second, pool start-up included.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.store import Store
from forecasting.fleet import forecast_fleet, select_series
from forecasting.forecast import ForecastOptions

HORIZON = pd.DateOffset(days=30)
LEVEL = 0.8


def write_fleet(store: Store, series: int, days: int) -> None:
    """Write ``series`` hourly series of ``days`` days in one transaction."""
    ts = pd.date_range("2026-01-01", periods=24 * days, freq="h")
    hours = np.arange(len(ts))
    frames = []
    for index in range(series):
        rng = np.random.default_rng(index)
        level = rng.uniform(50, 500)
        values = level * (1 + 0.3 * np.sin(2 * np.pi * hours / 24) + 0.1 * np.sin(2 * np.pi * hours / 168))
        values = values * (1 + 0.002 * hours / 24) + rng.normal(0, 0.03 * level, len(ts))
        frames.append(pd.DataFrame({"series_name": f"svc_{index:04d}", "ts": ts, "value": values}))
    samples = pd.concat(frames, ignore_index=True)
    with store.write() as con:
        con.register("bench_samples", samples)
        con.execute(
            "INSERT INTO series SELECT DISTINCT series_name, 'bench', 'rps', '{}', now()::TIMESTAMP, now()::TIMESTAMP "
            "FROM bench_samples"
        )
        con.execute("INSERT INTO samples SELECT series_name, ts, value FROM bench_samples")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=60, help="history length per series in days")
    parser.add_argument("--workers", type=int, default=2, help="processes of the parallel run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "fleet.duckdb")
        write_fleet(store, args.series, args.days)
        names = select_series(store)
        rates = {}
        for workers in (1, args.workers):
            started = time.monotonic()
            report = forecast_fleet(store, names, HORIZON, LEVEL, ("daily_peak",), ForecastOptions(), workers=workers)
            elapsed = time.monotonic() - started
            rates[workers] = len(names) / elapsed
            print(
                f"workers={workers}: {len(names)} series in {elapsed:.1f} s, {rates[workers]:.2f} series/s, "
                f"{len(report.failures)} failed"
            )
        print(f"speed-up {args.workers} workers vs 1: {rates[args.workers] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
