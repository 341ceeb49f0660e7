"""Forecast many stored series at once: a local process pool, or a Dask cluster.

The parent reads the series in chunks of CHUNK_PER_WORKER series per worker,
one read connection per chunk, and sends each series' samples to a worker.
Workers only compute, so they never open the DuckDB file and a Dask worker
needs no access to it. The parent stores each chunk's forecasts in one write
transaction, because DuckDB allows one writing process per file, and because
opening and checkpointing the file for each forecast costs several times more
than inserting it. While workers compute one chunk, the parent stores
the one before, so at most two chunks of samples and forecasts are in memory.
A series that fails is reported in :class:`FleetReport` and does not stop the
others.

Dask rather than Ray for clusters: ``distributed.Client.get_executor()``
returns a ``concurrent.futures.Executor``, so the cluster path is the same code
as the local pool, and Dask needs no object store sized in advance.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import duckdb
import pandas as pd

from capplan.errors import ConfigError
from capplan.store import Store
from forecasting.forecast import RESOLUTIONS, ForecastOptions, ForecastResult, forecast_samples, store_forecast

__all__ = ["CHUNK_PER_WORKER", "FleetFailure", "FleetReport", "select_series", "forecast_fleet"]

logger = logging.getLogger(__name__)

CHUNK_PER_WORKER = 8  # series per worker in one chunk: one read and one write transaction per chunk

FleetProgress = Callable[[int, int], None]  # (series done, series total)


@dataclass(frozen=True)
class FleetFailure:
    """A series whose forecast failed, with the error type and message."""

    series_name: str
    error: str


@dataclass
class FleetReport:
    """Outcome of a fleet forecast: stored forecast ids per series, failures and wall time in seconds."""

    workers: int
    stored: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # series -> (id, resolution, model)
    failures: list[FleetFailure] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def series_per_s(self) -> float:
        done = len(self.stored) + len(self.failures)
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "series": len(self.stored) + len(self.failures),
            "succeeded": len(self.stored),
            "failed": [{"series": f.series_name, "error": f.error} for f in self.failures],
            "elapsed_s": round(self.elapsed_s, 3),
            "series_per_s": round(self.series_per_s, 3),
            "forecasts": [
                {"series": name, "forecast_id": forecast_id, "resolution": resolution, "model": model}
                for name, rows in self.stored.items()
                for forecast_id, resolution, model in rows
            ],
        }


def select_series(store: Store, pattern: str | None = None, labels: Sequence[str] = ()) -> list[str]:
    """Return the stored series names that match the glob ``pattern`` and every ``KEY=VALUE`` label, sorted."""
    required: dict[str, str] = {}
    for text in labels:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"--label {text!r} is invalid; give KEY=VALUE, such as team=payments")
        required[key] = value
    with store.read() as con:
        rows = con.execute("SELECT name, labels FROM series ORDER BY name").fetchall()
    names = []
    for name, labels_json in rows:
        if pattern and not fnmatch.fnmatchcase(name, pattern):
            continue
        stored_labels = json.loads(labels_json) if labels_json else {}
        if all(str(stored_labels.get(key)) == value for key, value in required.items()):
            names.append(name)
    return names


def forecast_fleet(
    store: Store,
    names: Sequence[str],
    horizon: pd.DateOffset,
    level: float,
    resolutions: tuple[str, ...] = RESOLUTIONS,
    options: ForecastOptions | None = None,
    *,
    workers: int = 1,
    cluster: str | None = None,
    progress: FleetProgress | None = None,
) -> FleetReport:
    """Forecast and store every series in ``names``; ``workers=1`` without a cluster computes in this process.

    ``options.progress`` is dropped, because a callback cannot cross a process boundary.
    """
    if workers < 1:
        raise ConfigError(f"--workers {workers} is invalid; give 1 or more")
    base = ForecastOptions() if options is None else options
    task_options = ForecastOptions(
        candidates=base.candidates, folds=base.folds, peak_quantile=base.peak_quantile,
        model_options=dict(base.model_options), progress=None,
    )
    report = FleetReport(workers=workers)
    started = time.monotonic()
    size = workers * CHUNK_PER_WORKER
    chunks = [list(names[index : index + size]) for index in range(0, len(names), size)]

    def submit_all(executor: Executor | None, chunk: list[str]) -> list[Future[Outcome]]:
        samples = _read_chunk(store, chunk)
        futures = []
        for name in chunk:
            args = (name, samples.get(name), horizon, level, resolutions, task_options)
            futures.append(executor.submit(_forecast_one, *args) if executor is not None else _done(_forecast_one(*args)))
        return futures

    with _executor(workers, cluster) as executor:
        previous: list[Future[Outcome]] = []
        for chunk in chunks:
            current = submit_all(executor, chunk)
            _store_chunk(store, [future.result() for future in previous], report, len(names), progress)
            previous = current
        _store_chunk(store, [future.result() for future in previous], report, len(names), progress)

    report.elapsed_s = time.monotonic() - started
    logger.info(
        "forecast %d series with %d worker(s) in %.1f s: %d stored, %d failed",
        len(names), workers, report.elapsed_s, len(report.stored), len(report.failures),
    )
    return report


Outcome = tuple[str, list[ForecastResult] | None, str | None]


def _forecast_one(
    name: str,
    samples: pd.DataFrame | None,
    horizon: pd.DateOffset,
    level: float,
    resolutions: tuple[str, ...],
    options: ForecastOptions,
) -> Outcome:
    """Forecast one series; return (name, results, None) or (name, None, error text). Runs in a worker."""
    if samples is None or samples.empty:
        return name, None, "InputDataError: the series has no samples"
    try:
        return name, forecast_samples(samples, horizon, level, name, resolutions, options), None
    except Exception as exc:  # noqa: BLE001 - any failure of one series is reported, and the fleet goes on
        return name, None, f"{type(exc).__name__}: {exc}"


def _done(outcome: Outcome) -> Future[Outcome]:
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future


def _read_chunk(store: Store, names: list[str]) -> dict[str, pd.DataFrame]:
    """Return each named series' samples (``ts``, ``value``) in time order, read over one connection."""
    with store.read() as con:
        frame = con.execute(
            "SELECT series_name, ts, value FROM samples WHERE series_name IN (SELECT unnest(?)) ORDER BY series_name, ts",
            [names],
        ).df()
    return {
        str(name): group[["ts", "value"]].reset_index(drop=True)
        for name, group in frame.groupby("series_name", sort=False)
    }


class _OpenTransaction:
    """A Store stand-in whose ``write()`` yields one already open transaction, so many inserts share it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self._con = con
        self.path = path

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        yield self._con


def _store_chunk(
    store: Store, outcomes: list[Outcome], report: FleetReport, total: int, progress: FleetProgress | None
) -> None:
    if not outcomes:
        return
    with store.write() as con:
        # NOTE: relies on store_forecast writing only through store.write(), which insert_forecast does today.
        shared = cast(Store, _OpenTransaction(con, store.path))
        for name, results, error in outcomes:
            if results is None:
                logger.warning("series %r not forecast: %s", name, error)
                report.failures.append(FleetFailure(name, error or "unknown error"))
                continue
            report.stored[name] = [(store_forecast(shared, result), result.resolution, result.model) for result in results]
    if progress is not None:
        progress(len(report.stored) + len(report.failures), total)


@contextmanager
def _executor(workers: int, cluster: str | None) -> Iterator[Executor | None]:
    if cluster is None and workers == 1:
        yield None
        return
    if cluster is None:
        # spawn, not fork: the parent may hold DuckDB and rich threads that a forked child must not inherit.
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
        return
    try:
        from distributed import Client  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ConfigError(
            f"--cluster {cluster} needs Dask's distributed scheduler, which is not installed; "
            "run 'pip install \"dask[distributed]\"' or drop --cluster to use local processes"
        ) from exc
    # NOTE: not run against a real Dask cluster; the workers need capplan and its model packages installed.
    client = Client(cluster)
    try:
        yield client.get_executor()
    finally:
        client.close()
