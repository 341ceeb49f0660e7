"""Cached, read-only store reads for the app.

Streamlit reruns the whole script on every interaction, so each read is cached
with ``st.cache_data`` under the store path and :func:`store_version`. A write
by another capplan command changes the version, and the next rerun reads the
new data. Every read goes through the functions in ``capplan.store`` on a
:class:`~capplan.store.readonly_query.ReadOnlyStore`, whose connections are
read-only with external access off.

While another process writes, a read can fail with StoreBusyError after a
short retry. :func:`read_or_last_good` then returns the last result read in
this process and shows a notice. The page therefore shows slightly older data
instead of an error, and the next rerun reads the new data.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from capplan.errors import NotFoundError
from capplan.store.forecasts import forecast_points, get_forecast, latest_forecast_id
from capplan.store.plans import get_plan, latest_plan_id, plan_months
from capplan.store.readonly_query import ReadOnlyStore, StoreBusyError, table_names
from capplan.store.runs import get_steps, list_runs
from capplan.store.series import list_series, read_samples

__all__ = [
    "StoreVersion",
    "StoreOverview",
    "DemandData",
    "store_version",
    "load_overview",
    "read_or_last_good",
    "last_good_on_busy",
    "load_steps",
    "load_demand",
    "label_step_status",
    "parse_json_object",
]

# Entries per cached function. Each entry is one store version, so a few are
# enough: older versions are never read again.
CACHE_MAX_ENTRIES = 16

StoreVersion = tuple[int, int, int, int]
T = TypeVar("T")

logger = logging.getLogger(__name__)

STATUS_PASSED = "passed"
STATUS_FAILED = "failed"
STATUS_SATURATED = "generator saturated"


@dataclass(frozen=True)
class StoreOverview:
    """All runs and series, the newest plan with its months, and the plan before it.

    The plan fields are None without a plan; the previous ones are None with
    fewer than two plans. ``tables`` names the store's tables and views, so
    pages can tell whether a table that a newer schema adds is there.
    """

    runs: pd.DataFrame
    series: pd.DataFrame
    plan: dict[str, Any] | None
    plan_months: pd.DataFrame | None
    previous_plan: dict[str, Any] | None = None
    previous_plan_months: pd.DataFrame | None = None
    tables: frozenset[str] = frozenset()

    @property
    def is_empty(self) -> bool:
        return self.runs.empty and self.series.empty and self.plan is None


@dataclass(frozen=True)
class DemandData:
    """Daily peaks of a series and, when one exists, a forecast of it.

    ``history`` has columns ``ts`` (midnight UTC of each day) and ``value``.
    ``forecast`` is the forecasts row and ``points`` its ``ts``, ``yhat``,
    ``lower`` and ``upper`` columns. Both are None when the series has no forecast.
    """

    history: pd.DataFrame
    forecast: dict[str, Any] | None
    points: pd.DataFrame | None


def store_version(path: Path) -> StoreVersion:
    """Return the modification time and size of the store file and its write-ahead log.

    DuckDB keeps recent commits in ``<file>.wal`` until a checkpoint, so the
    main file alone can look unchanged after a write.
    """
    parts: list[int] = []
    for candidate in (path, path.with_name(path.name + ".wal")):
        try:
            stat = candidate.stat()
        except FileNotFoundError:
            parts.extend((0, 0))
            continue
        parts.extend((stat.st_mtime_ns, stat.st_size))
    return (parts[0], parts[1], parts[2], parts[3])


_last_good: dict[tuple[Any, ...], Any] = {}
_last_good_lock = threading.Lock()


def last_good_on_busy(read: Callable[..., T]) -> Callable[..., T]:
    """Wrap a cached reader ``read(db_path, version, *args)`` with :func:`read_or_last_good`.

    The key leaves out the version, so the result read under an older
    version is returned while a writer keeps the store locked.
    """

    @functools.wraps(read)
    def wrapper(db_path: str, version: StoreVersion, *args: Any) -> T:
        return read_or_last_good((read.__qualname__, db_path, *args), lambda: read(db_path, version, *args))

    return wrapper


def read_or_last_good(key: tuple[Any, ...], read: Callable[[], T]) -> T:
    """Return ``read()``, or the last good result under ``key`` when a writer keeps the store locked.

    The result is remembered per process under ``key`` (which should not
    contain the store version, so an older version can stand in). Without a
    remembered result the StoreBusyError propagates.
    """
    try:
        result = read()
    except StoreBusyError as exc:
        with _last_good_lock:
            if key not in _last_good:
                raise
            stale = _last_good[key]
        logger.info("store busy, showing the last data read: %s", exc)
        show_busy_notice()
        return stale  # type: ignore[no-any-return]
    with _last_good_lock:
        _last_good[key] = result
    return result


def show_busy_notice() -> None:
    """Show, once per script run, that another process is writing and older data is shown."""
    if st.session_state.get("busy_notice_shown"):
        return
    st.session_state["busy_notice_shown"] = True
    st.info(
        "Another capplan process is writing to the store right now, so this page shows the data it read "
        "last. Refresh in a moment to see the new data.",
        icon=":material/hourglass_top:",
    )


@last_good_on_busy
@st.cache_data(max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def load_overview(db_path: str, version: StoreVersion) -> StoreOverview:
    """Read runs, series, the two newest plans and the table names. ``version`` is only part of the cache key."""
    store = ReadOnlyStore(db_path)
    with store.read() as con:
        tables = frozenset(table_names(con))
        plan_rows = (
            con.execute("SELECT plan_id FROM plans ORDER BY plan_id DESC LIMIT 2").fetchall()
            if "plans" in tables
            else []
        )
    if "runs" not in tables:
        # An empty DuckDB file, or one that no capplan command has migrated yet.
        empty = pd.DataFrame()
        return StoreOverview(runs=empty, series=empty, plan=None, plan_months=None, tables=tables)
    runs = list_runs(store)
    series = list_series(store)
    plan_id = latest_plan_id(store)
    if plan_id is None:
        return StoreOverview(runs=runs, series=series, plan=None, plan_months=None, tables=tables)
    previous_id = int(plan_rows[1][0]) if len(plan_rows) > 1 else None
    return StoreOverview(
        runs=runs,
        series=series,
        plan=get_plan(store, plan_id),
        plan_months=plan_months(store, plan_id),
        previous_plan=get_plan(store, previous_id) if previous_id is not None else None,
        previous_plan_months=plan_months(store, previous_id) if previous_id is not None else None,
        tables=tables,
    )


@last_good_on_busy
@st.cache_data(max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def load_steps(db_path: str, version: StoreVersion, run_id: int) -> pd.DataFrame:
    """Read the steps of one run in order, with a ``status`` column added.

    The latency histograms are dropped because the app does not draw them and
    they are the largest column.
    """
    steps = get_steps(ReadOnlyStore(db_path), run_id).drop(columns=["latency_hdr"], errors="ignore")
    return label_step_status(steps)


@last_good_on_busy
@st.cache_data(max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def load_demand(db_path: str, version: StoreVersion, series_name: str, forecast_id: int | None) -> DemandData:
    """Read a series' daily peaks and a forecast of it.

    ``forecast_id`` None means the newest forecast of the series, if any.
    """
    store = ReadOnlyStore(db_path)
    samples = read_samples(store, series_name)
    history = daily_peaks(samples)

    if forecast_id is None:
        try:
            forecast_id = latest_forecast_id(store, series_name)
        except NotFoundError:
            return DemandData(history=history, forecast=None, points=None)
    return DemandData(
        history=history,
        forecast=get_forecast(store, forecast_id),
        points=forecast_points(store, forecast_id),
    )


def daily_peaks(samples: pd.DataFrame) -> pd.DataFrame:
    """Reduce samples (``ts`` naive UTC, ``value``) to the maximum per UTC day.

    Days without samples are left out rather than filled.
    """
    if samples.empty:
        return pd.DataFrame({"ts": pd.Series(dtype="datetime64[us]"), "value": pd.Series(dtype="float64")})
    values = samples.set_index(pd.to_datetime(samples["ts"]))["value"]
    peaks = values.resample("D").max().dropna()
    return peaks.rename_axis("ts").reset_index()


def label_step_status(steps: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of the steps with ``status``: passed, failed or generator saturated.

    A saturated step gets that label whatever its result, because its latency
    measures the load generator falling behind, not the target.
    """
    labelled = steps.copy()
    status = pd.Series(STATUS_FAILED, index=labelled.index, dtype="object")
    if not labelled.empty:
        status[labelled["passed"].astype(bool)] = STATUS_PASSED
        status[labelled["generator_saturated"].astype(bool)] = STATUS_SATURATED
    labelled["status"] = status
    return labelled


def parse_json_object(text: Any) -> dict[str, Any]:
    """Parse a JSON column (runs.config, plans.policy) into a dict. An empty or invalid value gives {}."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
