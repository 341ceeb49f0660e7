"""Stored forecasts: one row of metadata, one row per forecast point, backtest scores and scenarios.

A forecast's ``lower`` and ``upper`` bound the central interval of
probability ``level``. The columns ``lower_80``/``upper_80`` and
``lower_95``/``upper_95`` contain the 80 % and 95 % intervals when the
forecaster made them. The
backtest scores of every candidate model and fold are stored with the
forecast they chose, so the choice can be checked later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from capplan.errors import NotFoundError
from capplan.store.connection import Store

__all__ = [
    "DAILY_PEAK",
    "POINT_COLUMNS",
    "SELECTION_COLUMNS",
    "insert_forecast",
    "get_forecast",
    "latest_forecast_id",
    "forecast_points",
    "backtest_scores",
    "forecast_scenarios",
    "insert_scenarios",
]

DAILY_PEAK = "daily_peak"
POINT_COLUMNS = ("ts", "yhat", "lower", "upper", "lower_80", "upper_80", "lower_95", "upper_95")
# Optional forecasts columns that insert_forecast takes through ``selection``.
SELECTION_COLUMNS = (
    "step_s",
    "peak_statistic",
    "backtest_mase",
    "backtest_folds",
    "backtest_horizon_steps",
    "coverage_80",
    "coverage_95",
    "coverage_level",
    "interval_method",
    "selection_reason",
)
SCORE_COLUMNS = (
    "model", "fold", "origin", "train_points", "test_points", "mae", "mase", "coverage_80", "coverage_95", "selected",
)
SCENARIO_COLUMNS = ("kind", "start_ts", "end_ts", "growth_per_year", "factor", "label")


def insert_forecast(
    store: Store,
    *,
    series_name: str,
    created_at: datetime,
    model: str,
    resolution: str,
    level: float,
    history_start: datetime,
    history_end: datetime,
    points: pd.DataFrame,
    params: Mapping[str, Any],
    selection: Mapping[str, Any] | None = None,
    scores: pd.DataFrame | None = None,
    scenarios: Sequence[Mapping[str, Any]] = (),
) -> int:
    """Store a forecast with its points, backtest scores and scenarios in one transaction and return its id.

    ``points`` has ``ts``, ``yhat``, ``lower`` and ``upper``, and optionally
    the 80 % and 95 % bounds. ``selection`` contains values for SELECTION_COLUMNS,
    ``scores`` one row per model and fold (the backtest_scores columns
    without forecast_id), and ``scenarios`` rows with SCENARIO_COLUMNS.
    """
    frame = points.copy()
    for column in POINT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[list(POINT_COLUMNS)]
    extra = {column: (selection or {}).get(column) for column in SELECTION_COLUMNS}
    with store.write() as con:
        row = con.execute(
            f"""
            INSERT INTO forecasts (series_name, created_at, model, resolution, level,
                                   history_start, history_end, horizon_end, params, {", ".join(SELECTION_COLUMNS)})
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {", ".join("?" for _ in SELECTION_COLUMNS)}) RETURNING forecast_id
            """,
            [
                series_name,
                created_at,
                model,
                resolution,
                level,
                history_start,
                history_end,
                pd.Timestamp(frame["ts"].max()).to_pydatetime(),
                json.dumps(dict(params), default=str),
                *extra.values(),
            ],
        ).fetchone()
        assert row is not None
        forecast_id = int(row[0])
        frame.insert(0, "forecast_id", forecast_id)
        con.register("incoming_points", frame)
        con.execute(f"INSERT INTO forecast_points (forecast_id, {', '.join(POINT_COLUMNS)}) SELECT * FROM incoming_points")
        con.unregister("incoming_points")

        if scores is not None and not scores.empty:
            score_frame = scores.copy()
            for column in SCORE_COLUMNS:
                if column not in score_frame.columns:
                    score_frame[column] = None
            score_frame = score_frame[list(SCORE_COLUMNS)]
            score_frame.insert(0, "forecast_id", forecast_id)
            con.register("incoming_scores", score_frame)
            con.execute(f"INSERT INTO backtest_scores (forecast_id, {', '.join(SCORE_COLUMNS)}) SELECT * FROM incoming_scores")
            con.unregister("incoming_scores")

        _insert_scenario_rows(con, forecast_id, scenarios, created_at)
    return forecast_id


def insert_scenarios(store: Store, forecast_id: int, scenarios: Sequence[Mapping[str, Any]]) -> None:
    """Store scenario rows (SCENARIO_COLUMNS) for an existing forecast, after the ones it has."""
    get_forecast(store, forecast_id)
    with store.write() as con:
        _insert_scenario_rows(con, forecast_id, scenarios, pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime())


def _insert_scenario_rows(con: Any, forecast_id: int, scenarios: Sequence[Mapping[str, Any]], created_at: datetime) -> None:
    row = con.execute("SELECT count(*) FROM forecast_scenarios WHERE forecast_id = ?", [forecast_id]).fetchone()
    start = int(row[0]) if row else 0
    for position, scenario in enumerate(scenarios, start=start + 1):
        con.execute(
            f"""
            INSERT INTO forecast_scenarios (forecast_id, position, {", ".join(SCENARIO_COLUMNS)}, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [forecast_id, position, *(_plain(scenario.get(column)) for column in SCENARIO_COLUMNS), created_at],
        )


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def get_forecast(store: Store, forecast_id: int) -> dict[str, Any]:
    """Return a forecast's metadata row, or raise NotFoundError."""
    with store.read() as con:
        df = con.execute("SELECT * FROM forecasts WHERE forecast_id = ?", [forecast_id]).df()
    if df.empty:
        raise NotFoundError(f"forecast {forecast_id} not found in {store.path}; list them with 'capplan sql \"SELECT * FROM forecasts\"'")
    return df.iloc[0].to_dict()


def latest_forecast_id(store: Store, series_name: str, resolution: str = DAILY_PEAK) -> int:
    """Return the newest forecast of a series at ``resolution`` (daily peaks by default), or raise NotFoundError."""
    with store.read() as con:
        row = con.execute(
            "SELECT max(forecast_id) FROM forecasts WHERE series_name = ? AND resolution = ?", [series_name, resolution]
        ).fetchone()
    if not row or row[0] is None:
        raise NotFoundError(
            f"no {resolution} forecast of series {series_name!r} in {store.path}; "
            f"run 'capplan forecast {series_name} --horizon 12mo' first"
        )
    return int(row[0])


def forecast_points(store: Store, forecast_id: int) -> pd.DataFrame:
    """Return the points of a forecast (``ts``, ``yhat``, ``lower``, ``upper``) in time order.

    The 80 % and 95 % bounds are the extra columns ``lower_80`` .. ``upper_95``
    (NaN where the forecast did not store them).
    """
    with store.read() as con:
        return con.execute(
            f"SELECT {', '.join(POINT_COLUMNS)} FROM forecast_points WHERE forecast_id = ? ORDER BY ts", [forecast_id]
        ).df()


def backtest_scores(store: Store, forecast_id: int) -> pd.DataFrame:
    """Return the backtest scores behind a forecast, one row per model and fold."""
    with store.read() as con:
        return con.execute(
            f"SELECT {', '.join(SCORE_COLUMNS)} FROM backtest_scores WHERE forecast_id = ? ORDER BY model, fold",
            [forecast_id],
        ).df()


def forecast_scenarios(store: Store, forecast_id: int) -> list[dict[str, Any]]:
    """Return the scenario rows stored with a forecast, in the order given."""
    with store.read() as con:
        frame = con.execute(
            f"SELECT {', '.join(SCENARIO_COLUMNS)} FROM forecast_scenarios WHERE forecast_id = ? ORDER BY position",
            [forecast_id],
        ).df()
    return frame.to_dict("records")
