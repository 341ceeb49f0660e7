"""Metric series and their samples in the store.

Samples are keyed by (series, timestamp). The ``samples`` table has no
primary key (see ``capplan.store.schema``), so a write deletes the stored
samples at the timestamps it writes and inserts the new ones in the same
transaction. Loading the same history twice therefore never duplicates rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from capplan.errors import NotFoundError
from capplan.store.connection import Store

__all__ = ["write_samples", "read_samples", "list_series", "series_exists"]


def write_samples(
    store: Store,
    name: str,
    samples: pd.DataFrame,
    *,
    source: str,
    unit: str | None = None,
    labels: Mapping[str, Any] | None = None,
) -> int:
    """Write samples (columns ``ts`` as naive UTC and ``value``) and return how many were written.

    A stored sample at a written timestamp is replaced. When ``samples``
    contains a timestamp twice, its last row is written.
    """
    frame = samples[["ts", "value"]].drop_duplicates("ts", keep="last")
    frame.insert(0, "series_name", name)
    with store.write() as con:
        con.execute(
            """
            INSERT INTO series (name, source, unit, labels, created_at, updated_at)
            VALUES (?, ?, ?, ?, now()::TIMESTAMP, now()::TIMESTAMP)
            ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at,
                source = excluded.source, unit = coalesce(excluded.unit, series.unit)
            """,
            [name, source, unit, json.dumps(dict(labels or {}))],
        )
        con.register("incoming_samples", frame)
        try:
            con.execute(
                "DELETE FROM samples WHERE series_name = ? AND ts IN (SELECT ts FROM incoming_samples)", [name]
            )
            con.execute("INSERT INTO samples SELECT series_name, ts, value FROM incoming_samples")
        finally:
            con.unregister("incoming_samples")
    return len(frame)


def series_exists(store: Store, name: str) -> bool:
    if not store.exists():
        return False
    with store.read() as con:
        row = con.execute("SELECT count(*) FROM series WHERE name = ?", [name]).fetchone()
    return bool(row and row[0])


def read_samples(store: Store, name: str) -> pd.DataFrame:
    """Return a series' samples (``ts``, ``value``) sorted by time, or raise NotFoundError."""
    with store.read() as con:
        known = [r[0] for r in con.execute("SELECT name FROM series ORDER BY name").fetchall()]
        if name not in known:
            hint = f"known series: {', '.join(known[:10])}" if known else "load one with 'capplan collect --csv FILE --name NAME'"
            raise NotFoundError(f"series {name!r} not found in {store.path}; {hint}")
        return con.execute(
            "SELECT ts, value FROM samples WHERE series_name = ? ORDER BY ts", [name]
        ).df()


def list_series(store: Store) -> pd.DataFrame:
    """Return each series with its sample count and time span."""
    with store.read() as con:
        return con.execute(
            """
            SELECT s.name, s.source, s.unit, count(x.ts) AS samples, min(x.ts) AS first_ts, max(x.ts) AS last_ts
            FROM series s LEFT JOIN samples x ON x.series_name = s.name
            GROUP BY ALL ORDER BY s.name
            """
        ).df()
