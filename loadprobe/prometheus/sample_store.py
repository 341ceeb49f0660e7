"""Reads and writes of Prometheus collections in the capplan store.

The tables are created by ``capplan.store.schema``; this module only reads
and writes rows. A collection's series are NAME and every ``NAME{...}``
(see :mod:`loadprobe.prometheus.matrix`), called the family of NAME here.

Each chunk is written in one transaction together with the progress of its
collection, so a crash or a failed query after chunk *k* leaves chunks 1..k
stored and the collection row saying how far it got.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from capplan.store import Store
from loadprobe.prometheus.matrix import MatrixChunk

__all__ = [
    "FamilyStats",
    "PriorCollection",
    "family_stats",
    "family_series",
    "prior_collection",
    "foreign_series",
    "write_chunk",
    "finish_collection",
]

# Samples of NAME and of NAME{...}; starts_with keeps '%' and '_' in NAME literal.
_FAMILY_FILTER = "(series_name = ? OR starts_with(series_name, ? || '{'))"


@dataclass(frozen=True)
class FamilyStats:
    """Sample count, time span and value range (NaN and NULL skipped) of a family."""

    samples_total: int
    first_ts: datetime | None
    last_ts: datetime | None
    min_value: float | None
    max_value: float | None


@dataclass(frozen=True)
class PriorCollection:
    """The latest earlier collection of a NAME."""

    collection_id: int
    query: str
    step_s: int
    status: str


def family_stats(store: Store, name: str) -> FamilyStats:
    """Return the statistics of everything stored under NAME; all empty when the store does not exist."""
    if not store.exists():
        return FamilyStats(0, None, None, None, None)
    with store.read() as con:
        row = con.execute(
            f"""
            SELECT count(*), min(ts), max(ts),
                   min(value) FILTER (WHERE NOT isnan(value)),
                   max(value) FILTER (WHERE NOT isnan(value))
            FROM samples WHERE {_FAMILY_FILTER}
            """,
            [name, name],
        ).fetchone()
    assert row is not None
    return FamilyStats(
        samples_total=int(row[0]),
        first_ts=row[1],
        last_ts=row[2],
        min_value=None if row[3] is None else float(row[3]),
        max_value=None if row[4] is None else float(row[4]),
    )


def family_series(store: Store, name: str) -> list[dict[str, Any]]:
    """Return the stored series of NAME with their labels, sorted by series name."""
    if not store.exists():
        return []
    with store.read() as con:
        rows = con.execute(
            f"""
            SELECT name, labels FROM series
            WHERE source = 'prometheus' AND (name = ? OR starts_with(name, ? || '{{'))
            ORDER BY name
            """,
            [name, name],
        ).fetchall()
    return [{"name": series_name, "labels": json.loads(labels) if labels else {}} for series_name, labels in rows]


def prior_collection(store: Store, name: str) -> PriorCollection | None:
    """Return the latest collection of NAME, or None."""
    if not store.exists():
        return None
    with store.read() as con:
        row = con.execute(
            """
            SELECT collection_id, query, step_s, status FROM prometheus_collections
            WHERE series_name = ? ORDER BY collection_id DESC LIMIT 1
            """,
            [name],
        ).fetchone()
    if row is None:
        return None
    return PriorCollection(int(row[0]), str(row[1]), int(row[2]), str(row[3]))


def foreign_series(store: Store, name: str) -> list[tuple[str, str]]:
    """Return (series, source) of series in the family of NAME that did not come from Prometheus."""
    if not store.exists():
        return []
    with store.read() as con:
        return [
            (str(r[0]), str(r[1]))
            for r in con.execute(
                """
                SELECT name, source FROM series
                WHERE source <> 'prometheus' AND (name = ? OR starts_with(name, ? || '{'))
                ORDER BY name
                """,
                [name, name],
            ).fetchall()
        ]


def write_chunk(
    store: Store,
    *,
    collection_id: int | None,
    collection_row: dict[str, Any],
    chunk: MatrixChunk,
    chunk_end: datetime,
    unit: str | None,
    now: datetime,
) -> int:
    """Upsert one chunk's series and samples and record the progress; return the collection id.

    With ``collection_id`` None the collection row is created first, in the
    same transaction, from ``collection_row``.
    """
    with store.write() as con:
        if collection_id is None:
            collection_id = _insert_collection(con, collection_row, now)
        if chunk.samples:
            _upsert_series(con, chunk, unit, now)
            _upsert_samples(con, chunk)
        con.execute(
            """
            UPDATE prometheus_collections
            SET collected_until = ?, chunks_written = chunks_written + 1,
                samples_written = samples_written + ?
            WHERE collection_id = ?
            """,
            [chunk_end, chunk.samples, collection_id],
        )
    return collection_id


def _insert_collection(con: duckdb.DuckDBPyConnection, row: dict[str, Any], now: datetime) -> int:
    created = con.execute(
        """
        INSERT INTO prometheus_collections (series_name, prometheus_url, requested_query, query, step_s,
                                            window_start, window_end, started_at, status)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running') RETURNING collection_id
        """,
        [
            row["series_name"],
            row["prometheus_url"],
            row["requested_query"],
            row["query"],
            row["step_s"],
            row["window_start"],
            row["window_end"],
            now,
        ],
    ).fetchone()
    assert created is not None
    return int(created[0])


def _upsert_samples(con: duckdb.DuckDBPyConnection, chunk: MatrixChunk) -> None:
    """Insert the chunk's samples, replacing stored values at the same (series, timestamp).

    ``samples`` has no primary key (see ``capplan.store.schema``), so the
    stored rows at the chunk's keys are deleted first, in the caller's
    transaction. The delete runs only when some series of the chunk already
    has a sample in the chunk's time span. A first collection never has one.
    A resumed collection has one in its first chunk, which fetches the last
    stored timestamp again, and ``--no-resume`` in every chunk it fetches
    again. The chunk's own keys are unique because matrix_to_chunk rejects a
    series whose timestamps do not strictly increase.
    """
    span = pc.min_max(chunk.table.column("ts"))
    chunk_start, chunk_end = span["min"].as_py(), span["max"].as_py()
    names = pa.table({"name": [s.name for s in chunk.series]})
    con.register("incoming_names", names)
    con.register("incoming_samples", chunk.table)
    try:
        overlap = con.execute(
            """
            SELECT EXISTS (
                SELECT 1 FROM samples
                WHERE ts BETWEEN ? AND ? AND series_name IN (SELECT name FROM incoming_names)
            )
            """,
            [chunk_start, chunk_end],
        ).fetchone()
        if overlap and overlap[0]:
            con.execute(
                """
                DELETE FROM samples USING incoming_samples AS incoming
                WHERE samples.ts BETWEEN ? AND ?
                  AND samples.series_name = incoming.series_name::VARCHAR AND samples.ts = incoming.ts
                """,
                [chunk_start, chunk_end],
            )
        con.execute("INSERT INTO samples SELECT series_name::VARCHAR, ts, value FROM incoming_samples")
    finally:
        con.unregister("incoming_samples")
        con.unregister("incoming_names")


def _upsert_series(con: duckdb.DuckDBPyConnection, chunk: MatrixChunk, unit: str | None, now: datetime) -> None:
    rows = pa.table(
        {
            "name": [s.name for s in chunk.series],
            "labels": [s.labels_json for s in chunk.series],
        }
    )
    con.register("incoming_series", rows)
    try:
        con.execute(
            """
            INSERT INTO series (name, source, unit, labels, created_at, updated_at)
            SELECT name, 'prometheus', ?, labels::JSON, ?, ? FROM incoming_series
            ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at, source = excluded.source,
                unit = coalesce(excluded.unit, series.unit), labels = excluded.labels
            """,
            [unit, now, now],
        )
    finally:
        con.unregister("incoming_series")


def finish_collection(store: Store, collection_id: int, *, status: str, finished_at: datetime, error: str | None) -> None:
    """Record how a collection ended: ``finished``, ``failed`` or ``interrupted``."""
    with store.write() as con:
        con.execute(
            "UPDATE prometheus_collections SET status = ?, finished_at = ?, error = ? WHERE collection_id = ?",
            [status, finished_at, error, collection_id],
        )
