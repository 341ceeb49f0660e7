"""Forecast many stored series at once: a local process pool, or a Dask cluster.

The parent reads the series in chunks of CHUNK_PER_WORKER series per worker,
one read connection per chunk, and sends each series' samples to a worker.
Workers only compute, so they never open the DuckDB file and a Dask worker
needs no access to it. The parent stores each chunk's forecasts in one write
transaction, because DuckDB allows one writing process per file, and because
opening and checkpointing the file for each forecast costs several times more
than inserting it. While workers compute one chunk, the parent stores
the one before, so at most two chunks of samples and forecasts are in memory.
A series that fails, or whose task raises in the executor (a worker that
died, a result that could not be sent back), is reported in
:class:`FleetReport` and does not stop the others.

Dask rather than Ray for clusters: ``distributed.Client.get_executor()``
returns a ``concurrent.futures.Executor``, so the cluster path is the same code
as the local pool (see :mod:`forecasting.fleet_cluster`). On a cluster a chunk
contains CHUNK_PER_WORKER series per worker thread, and the run stops waiting
when no forecast has come back for ``cluster_timeout_s``: the unfinished and
the not yet submitted series are then reported as failed.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import duckdb
import pandas as pd

from capplan.errors import ConfigError
from capplan.store import Store
from forecasting.forecast import RESOLUTIONS, ForecastOptions, ForecastResult, forecast_samples, store_forecast

__all__ = ["CHUNK_PER_WORKER", "CLUSTER_TIMEOUT_S", "FleetFailure", "FleetReport", "select_series", "forecast_fleet"]

logger = logging.getLogger(__name__)

CHUNK_PER_WORKER = 8  # series per worker in one chunk: one read and one write transaction per chunk
CLUSTER_TIMEOUT_S = 300.0  # maximum wait for the next forecast from a cluster before the rest count as failed
POLL_S = 1.0  # interval at which the lead, waiting for a cluster, checks the timeout and the workers

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
    cluster_timeout_s: float = CLUSTER_TIMEOUT_S,
    progress: FleetProgress | None = None,
) -> FleetReport:
    """Forecast and store every series in ``names``; ``workers=1`` without a cluster computes in this process.

    With ``cluster`` (a Dask scheduler address) ``workers`` is ignored and the
    cluster's worker threads set the chunk size. ``options.progress`` is
    dropped, because a callback cannot cross a process boundary.
    """
    if workers < 1:
        raise ConfigError(f"--workers {workers} is invalid; give 1 or more")
    if cluster_timeout_s <= 0:
        raise ConfigError(f"--cluster-timeout {cluster_timeout_s:g} s is invalid; give a duration above zero, such as 5m")
    base = ForecastOptions() if options is None else options
    task_options = ForecastOptions(
        candidates=base.candidates, folds=base.folds, peak_quantile=base.peak_quantile,
        model_options=dict(base.model_options), progress=None,
    )
    started = time.monotonic()

    with _pool(workers, cluster, cluster_timeout_s) as pool:
        report = FleetReport(workers=pool.slots)
        size = pool.slots * CHUNK_PER_WORKER
        chunks = [list(names[index : index + size]) for index in range(0, len(names), size)]
        args = (horizon, level, resolutions, task_options)
        previous: list[Submitted] = []
        skipped: list[str] = []
        for position, chunk in enumerate(chunks):
            current = _submit_chunk(pool, _read_chunk(store, chunk), chunk, args)
            _store_chunk(store, _collect(pool, previous), report, len(names), progress)
            previous = current
            if pool.watch is not None and pool.stop_reason is None:
                pool.stop_reason = pool.watch()
            if pool.stop_reason is not None:
                skipped = [name for later in chunks[position + 1 :] for name in later]
                break
        _store_chunk(store, _collect(pool, previous), report, len(names), progress)
        if pool.stop_reason is not None:
            _skip(skipped, report, pool.stop_reason, len(names), progress)

    report.elapsed_s = time.monotonic() - started
    logger.info(
        "forecast %d series with %d worker(s) in %.1f s: %d stored, %d failed",
        len(names), report.workers, report.elapsed_s, len(report.stored), len(report.failures),
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


Submitted = tuple[str, Future[Outcome]]

CANCELLED_ERROR = "CancelledError: the task was cancelled, as Dask does when the connection to its scheduler is lost"


@dataclass
class _Pool:
    """Executor of the fleet's tasks (None: compute in this process) and ``slots``, the number of parallel tasks.

    ``stall_timeout_s`` None waits for every task without limit (the local
    pool). ``watch`` returns why the cluster cannot finish the run, or None
    while it can. Once ``stop_reason`` is set, no task is awaited or
    submitted again.
    """

    executor: Executor | None
    slots: int
    stall_timeout_s: float | None = None
    watch: Callable[[], str | None] | None = None
    stop_reason: str | None = None


def _submit_chunk(
    pool: _Pool, samples: dict[str, pd.DataFrame], chunk: list[str], args: tuple[Any, ...]
) -> list[Submitted]:
    submitted = []
    for name in chunk:
        task = (name, samples.get(name), *args)
        if pool.executor is None:
            submitted.append((name, _done(_forecast_one(*task))))
            continue
        try:
            submitted.append((name, pool.executor.submit(_forecast_one, *task)))
        except Exception as exc:  # noqa: BLE001 - a broken pool rejects every submission; each series reports it
            submitted.append((name, _done((name, None, f"{type(exc).__name__}: {exc}"))))
    return submitted


def _collect(pool: _Pool, submitted: list[Submitted]) -> list[Outcome]:
    """Wait for a chunk's tasks and return their outcomes in submission order.

    A task that raised in the executor becomes a failed outcome. On a cluster
    the wait ends when no task finished for ``pool.stall_timeout_s``, or when
    the watch reports the cluster lost. The unfinished tasks are then
    cancelled and reported as failed.
    """
    pending = {future for _, future in submitted}
    last_result_at = time.monotonic()
    while pending and pool.stop_reason is None:
        if pool.stall_timeout_s is None:
            _, pending = wait(pending)
            continue
        done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
        if done:
            last_result_at = time.monotonic()
        elif time.monotonic() - last_result_at >= pool.stall_timeout_s:
            pool.stop_reason = (
                f"TimeoutError: no forecast came back from the cluster for {pool.stall_timeout_s:g} s; "
                "check that its workers are running, or raise --cluster-timeout for slow series"
            )
        if pool.watch is not None and pool.stop_reason is None:
            pool.stop_reason = pool.watch()
    if pending:
        logger.error("%s; cancelling %d unfinished series", pool.stop_reason, len(pending))

    outcomes = []
    for name, future in submitted:
        if not future.done():
            future.cancel()
            outcomes.append((name, None, pool.stop_reason))
        elif future.cancelled():
            # Dask cancels every pending task of a client that lost its scheduler connection.
            outcomes.append((name, None, CANCELLED_ERROR))
        else:
            outcomes.append(_result(name, future))
    return outcomes


def _result(name: str, future: Future[Outcome]) -> Outcome:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a lost worker or a failed transfer fails one series, not the run
        return name, None, f"{type(exc).__name__}: {exc}"


def _skip(names: list[str], report: FleetReport, error: str, total: int, progress: FleetProgress | None) -> None:
    """Report ``names`` as failed without running them, with one log line for all of them."""
    if not names:
        return
    logger.error("%d series not submitted: %s", len(names), error)
    report.failures.extend(FleetFailure(name, f"not submitted: {error}") for name in names)
    if progress is not None:
        progress(len(report.stored) + len(report.failures), total)


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
    failed: dict[str, list[str]] = {}  # error text -> series names, so one lost worker or timeout logs one line
    with store.write() as con:
        # NOTE: relies on store_forecast writing only through store.write(), which insert_forecast does today.
        shared = cast(Store, _OpenTransaction(con, store.path))
        for name, results, error in outcomes:
            if results is None:
                report.failures.append(FleetFailure(name, error or "unknown error"))
                failed.setdefault(error or "unknown error", []).append(name)
                continue
            report.stored[name] = [(store_forecast(shared, result), result.resolution, result.model) for result in results]
    for error, names in failed.items():
        if len(names) == 1:
            logger.warning("series %r not forecast: %s", names[0], error)
        else:
            logger.warning("%d series not forecast, from %r to %r: %s", len(names), names[0], names[-1], error)
    if progress is not None:
        progress(len(report.stored) + len(report.failures), total)


@contextmanager
def _pool(workers: int, cluster: str | None, cluster_timeout_s: float) -> Iterator[_Pool]:
    if cluster is not None:
        from forecasting.fleet_cluster import dask_executor

        with dask_executor(cluster) as (executor, watch):
            yield _Pool(executor, watch.threads, cluster_timeout_s, watch.check)
        return
    if workers == 1:
        yield _Pool(None, 1)
        return
    # spawn, not fork: the parent may hold DuckDB and rich threads that a forked child must not inherit.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield _Pool(executor, workers)
