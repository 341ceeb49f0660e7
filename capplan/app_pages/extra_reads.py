"""Cached reads for the newer pages: capacity fits, saved scenarios, bottlenecks, forecasts and the schema.

Like ``capplan.app_pages.data``, each read is cached under the store path and
version, opens the store through a ReadOnlyStore and falls back to its last
good result while a writer keeps the store locked. Tables that only newer
schemas add (``plan_scenarios``, ``analyses``, ``backtest_summary``) may be
missing in an older store, and the callers check ``StoreOverview.tables`` first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from capplan.app_pages.data import CACHE_MAX_ENTRIES, StoreVersion, last_good_on_busy
from capplan.errors import CapplanError
from capplan.store.readonly_query import ReadOnlyStore, StoreBusyError, describe_schema
from capplan.store.scenarios import list_plan_scenarios

__all__ = [
    "ANALYSES_TABLE",
    "BOTTLENECKS_TABLE",
    "BACKTEST_VIEW",
    "CapacityFit",
    "load_capacity_fit",
    "load_plan_scenarios",
    "load_latest_analysis",
    "load_backtest_summary",
    "load_forecasts",
    "load_schema",
]

logger = logging.getLogger(__name__)

ANALYSES_TABLE = "analyses"
BOTTLENECKS_TABLE = "analysis_bottlenecks"
BACKTEST_VIEW = "backtest_summary"


@dataclass(frozen=True)
class CapacityFit:
    """The capacity report of one run (``forecasting.capacity.CapacityReport``), or why there is none."""

    report: Any
    problem: str | None


@last_good_on_busy
@st.cache_data(max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def load_capacity_fit(db_path: str, version: StoreVersion, run_id: int) -> CapacityFit:
    """Fit the scalability and latency models to a run's steps, as ``capplan capacity RUN`` does."""
    try:
        from forecasting.capacity import run_report
    except ImportError as exc:
        return CapacityFit(report=None, problem=f"the capacity models are not installed ({exc})")
    try:
        return CapacityFit(report=run_report(ReadOnlyStore(db_path), run_id), problem=None)
    except StoreBusyError:
        raise
    except CapplanError as exc:
        logger.info("no capacity fit for run %d: %s", run_id, exc)
        return CapacityFit(report=None, problem=str(exc))
    except (ValueError, ArithmeticError) as exc:
        # A numerical failure inside a fit must not take the page down; the page shows it as the reason.
        logger.warning("capacity fit of run %d failed: %s", run_id, exc)
        return CapacityFit(report=None, problem=f"the fit failed ({exc})")


@last_good_on_busy
@st.cache_data(max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def load_plan_scenarios(db_path: str, version: StoreVersion) -> pd.DataFrame:
    """Read the saved what-if scenarios, newest first."""
    return list_plan_scenarios(ReadOnlyStore(db_path))


@last_good_on_busy
@st.cache_data(max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def load_latest_analysis(db_path: str, version: StoreVersion) -> tuple[dict[str, Any] | None, pd.DataFrame]:
    """Read the newest row of ``analyses`` and its rows of ``analysis_bottlenecks`` (None and empty without one)."""
    with ReadOnlyStore(db_path).read() as con:
        analysis = con.execute(f"SELECT * FROM {ANALYSES_TABLE} ORDER BY analysis_id DESC LIMIT 1").df()
        if analysis.empty:
            return None, pd.DataFrame()
        row = analysis.iloc[0].to_dict()
        bottlenecks = con.execute(
            f"SELECT metric, severity, value, threshold, unit, recommendation FROM {BOTTLENECKS_TABLE} "
            "WHERE analysis_id = ?",
            [int(row["analysis_id"])],
        ).df()
    return row, bottlenecks


@last_good_on_busy
@st.cache_data(max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def load_backtest_summary(db_path: str, version: StoreVersion, forecast_id: int) -> pd.DataFrame:
    """Read the backtest score of every candidate model of a forecast, best first."""
    with ReadOnlyStore(db_path).read() as con:
        return con.execute(
            f"SELECT model, folds, mean_mase, coverage_80, coverage_95, selected FROM {BACKTEST_VIEW} "
            "WHERE forecast_id = ? ORDER BY mean_mase NULLS LAST, model",
            [forecast_id],
        ).df()


@last_good_on_busy
@st.cache_data(max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def load_forecasts(db_path: str, version: StoreVersion, series_name: str) -> pd.DataFrame:
    """Read every forecast of a series (metadata and params JSON), newest first."""
    with ReadOnlyStore(db_path).read() as con:
        return con.execute(
            "SELECT * FROM forecasts WHERE series_name = ? ORDER BY created_at DESC, forecast_id DESC",
            [series_name],
        ).df()


@last_good_on_busy
@st.cache_data(max_entries=CACHE_MAX_ENTRIES, show_spinner=False)
def load_schema(db_path: str, version: StoreVersion) -> pd.DataFrame:
    """Read the columns of every table and view, for the SQL page's schema panel."""
    return describe_schema(ReadOnlyStore(db_path))

