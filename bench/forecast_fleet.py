"""Series per second of a fleet forecast: sequential in one process against a process pool or a Dask cluster.

Usage: .venv/bin/python bench/forecast_fleet.py [--series 1000] [--days 60] [--workers 2] [--cluster]

The script writes ``--series`` synthetic hourly series (daily cycle, weekly
cycle, trend and noise, each with its own seed) to a DuckDB file in a
temporary folder. It then forecasts the daily peaks of all of them twice,
with the default candidate models and a 30-day horizon: once with
``workers=1`` (in this process) and once with a pool of ``--workers`` processes.
With ``--cluster`` the second run goes to a Dask cluster that the script
starts on 127.0.0.1: ``dask scheduler`` and ``--workers`` single-thread
``dask worker`` processes, each a subprocess. The rate is series forecast and
stored per wall-clock second, pool start-up or cluster connection included,
cluster start-up excluded.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.store import Store
from forecasting.fleet import forecast_fleet, select_series
from forecasting.forecast import ForecastOptions
from loadprobe.target_process import free_port

HORIZON = pd.DateOffset(days=30)
LEVEL = 0.8
CLUSTER_START_TIMEOUT_S = 60.0


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


@contextmanager
def local_dask_cluster(folder: Path, workers: int) -> Iterator[str]:
    """Start ``dask scheduler`` and ``workers`` single-thread workers on 127.0.0.1; yield the scheduler address."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    loopback = ["--dashboard-address", "127.0.0.1:0"]
    commands = [[sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), *loopback]]
    commands += [
        [sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
         "--local-directory", str(folder / f"worker{index}"), *loopback]
        for index in range(workers)
    ]
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for command in commands]
    try:
        with Client(address, timeout=CLUSTER_START_TIMEOUT_S, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=CLUSTER_START_TIMEOUT_S)
        yield address
    finally:
        # Workers first, while the scheduler still runs: stopped together, a worker outlived a 10 s wait.
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=int, default=60, help="history length per series in days")
    parser.add_argument("--workers", type=int, default=2, help="processes of the parallel run")
    parser.add_argument(
        "--cluster", action="store_true",
        help="run the parallel run on a Dask scheduler and --workers single-thread workers started on 127.0.0.1",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "fleet.duckdb")
        write_fleet(store, args.series, args.days)
        names = select_series(store)
        parallel = f"Dask cluster, {args.workers} workers" if args.cluster else f"process pool, {args.workers} workers"
        rates = {}
        for label in ("sequential", parallel):
            with _parallel_target(label == parallel and args.cluster, Path(folder), args.workers) as cluster:
                workers = 1 if label == "sequential" else args.workers
                started = time.monotonic()
                report = forecast_fleet(
                    store, names, HORIZON, LEVEL, ("daily_peak",), ForecastOptions(), workers=workers, cluster=cluster,
                )
                elapsed = time.monotonic() - started
            rates[label] = len(names) / elapsed
            print(
                f"{label}: {len(names)} series in {elapsed:.1f} s, {rates[label]:.2f} series/s, "
                f"{len(report.failures)} failed"
            )
        print(f"speed-up {parallel} vs sequential: {rates[parallel] / rates['sequential']:.2f}x")


@contextmanager
def _parallel_target(cluster: bool, folder: Path, workers: int) -> Iterator[str | None]:
    if not cluster:
        yield None
        return
    with local_dask_cluster(folder, workers) as address:
        yield address


if __name__ == "__main__":
    main()
