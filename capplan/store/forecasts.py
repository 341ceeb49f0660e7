"""Stored forecasts: one row of metadata and one row per forecast point."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from capplan.errors import NotFoundError
from capplan.store.connection import Store

__all__ = ["insert_forecast", "get_forecast", "latest_forecast_id", "forecast_points"]


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
) -> int:
    """Store a forecast with its points (``ts``, ``yhat``, ``lower``, ``upper``) and return its id."""
    frame = points[["ts", "yhat", "lower", "upper"]].copy()
    with store.write() as con:
        row = con.execute(
            """
            INSERT INTO forecasts (series_name, created_at, model, resolution, level,
                                   history_start, history_end, horizon_end, params)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING forecast_id
            """,
            [
                series_name,
                created_at,
                model,
                resolution,
                level,
                history_start,
                history_end,
                frame["ts"].max().to_pydatetime(),
                json.dumps(dict(params), default=str),
            ],
        ).fetchone()
        assert row is not None
        forecast_id = int(row[0])
        frame.insert(0, "forecast_id", forecast_id)
        con.register("incoming_points", frame)
        con.execute("INSERT INTO forecast_points SELECT forecast_id, ts, yhat, lower, upper FROM incoming_points")
        con.unregister("incoming_points")
    return forecast_id


def get_forecast(store: Store, forecast_id: int) -> dict[str, Any]:
    """Return a forecast's metadata row, or raise NotFoundError."""
    with store.read() as con:
        df = con.execute("SELECT * FROM forecasts WHERE forecast_id = ?", [forecast_id]).df()
    if df.empty:
        raise NotFoundError(f"forecast {forecast_id} not found in {store.path}; list them with 'capplan sql \"SELECT * FROM forecasts\"'")
    return df.iloc[0].to_dict()


def latest_forecast_id(store: Store, series_name: str) -> int:
    """Return the newest forecast of a series, or raise NotFoundError with the command that makes one."""
    with store.read() as con:
        row = con.execute(
            "SELECT max(forecast_id) FROM forecasts WHERE series_name = ?", [series_name]
        ).fetchone()
    if not row or row[0] is None:
        raise NotFoundError(
            f"no forecast of series {series_name!r} in {store.path}; run 'capplan forecast {series_name} --horizon 12mo' first"
        )
    return int(row[0])


def forecast_points(store: Store, forecast_id: int) -> pd.DataFrame:
    """Return the points of a forecast in time order."""
    with store.read() as con:
        return con.execute(
            "SELECT ts, yhat, lower, upper FROM forecast_points WHERE forecast_id = ? ORDER BY ts", [forecast_id]
        ).df()
