"""Export the store's samples and results to Parquet, and import them back.

Layout of an export folder, readable by DuckDB, Spark or Trino:

- ``samples/series_name=NAME/month=YYYY-MM/*.parquet`` and
  ``forecast_points/series_name=NAME/month=YYYY-MM/*.parquet``: Hive-style
  partitions by series and UTC month. DuckDB percent-encodes characters such
  as ``/`` and ``=`` in NAME, as Hive does, and decodes them on read.
- ``TABLE.parquet`` for every other exported table (series, runs, steps,
  forecasts and their detail), one file each.
- ``manifest.json``: the schema version and the row count of each table.

DuckDB writes and reads the files itself (``COPY ... PARTITION_BY`` and
``read_parquet(..., hive_partitioning = true)``), so no Arrow package is needed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from capplan.errors import ConfigError, InputDataError, StoreError
from capplan.store.connection import Store
from capplan.store.schema import SCHEMA_VERSION

__all__ = ["PARTITIONED_TABLES", "SINGLE_FILE_TABLES", "export_parquet", "import_parquet"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "capplan-parquet"
FORMAT_VERSION = 1

# Tables written as Hive partitions by (series_name, month), with the query that adds both columns.
PARTITIONED_TABLES: dict[str, str] = {
    "samples": "SELECT series_name, strftime(ts, '%Y-%m') AS month, * EXCLUDE (series_name) FROM samples",
    "forecast_points": (
        "SELECT f.series_name, strftime(p.ts, '%Y-%m') AS month, p.* "
        "FROM forecast_points p JOIN forecasts f USING (forecast_id)"
    ),
}
# Tables written as one file each, in an order that puts parents before children.
SINGLE_FILE_TABLES = (
    "series",
    "runs",
    "steps",
    "step_scenarios",
    "forecasts",
    "backtest_scores",
    "forecast_scenarios",
    "plans",
    "plan_months",
)
# Tables whose ids come from a sequence: an import checks these ids against the store
# and moves the sequence past the largest imported id.
ID_SEQUENCES = {
    "runs": ("run_id", "run_id_seq"),
    "forecasts": ("forecast_id", "forecast_id_seq"),
    "forecast_scenarios": ("scenario_id", "forecast_scenario_id_seq"),
    "plans": ("plan_id", "plan_id_seq"),
}
# Natural keys of the tables an import merges into existing rows rather than rejecting.
# series has a primary key, so INSERT ... ON CONFLICT merges it. samples has none
# (see capplan.store.schema), so the stored rows at the imported keys are deleted
# before the insert, in the same transaction.
UPSERT_KEYS = {"series": ("name",)}
REPLACE_KEYS = {"samples": ("series_name", "ts")}


@dataclass(frozen=True)
class ParquetSummary:
    """Rows per table written or read, and the folder."""

    folder: Path
    rows: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "rows": dict(self.rows)}


def export_parquet(store: Store, folder: str | Path) -> ParquetSummary:
    """Write the store's samples and results under ``folder``, which must be missing or empty."""
    out = Path(folder)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"export folder {out} exists and is not empty; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)

    rows: dict[str, int] = {}
    with store.read() as con:
        for table, query in PARTITIONED_TABLES.items():
            rows[table] = _count(con, f"SELECT count(*) FROM ({query})")
            if rows[table]:
                con.execute(
                    f"COPY ({query}) TO '{_sql_path(out / table)}' (FORMAT PARQUET, PARTITION_BY (series_name, month))"
                )
        for table in SINGLE_FILE_TABLES:
            rows[table] = _count(con, f"SELECT count(*) FROM {table}")
            con.execute(f"COPY {table} TO '{_sql_path(out / f'{table}.parquet')}' (FORMAT PARQUET)")

    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "schema_version": SCHEMA_VERSION, "rows": rows}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("exported %d samples and %d forecast points to %s", rows["samples"], rows["forecast_points"], out)
    return ParquetSummary(out, rows)


def import_parquet(store: Store, folder: str | Path) -> ParquetSummary:
    """Load an export folder into ``store`` in one transaction and return the rows read per table.

    Series and samples are merged by their natural keys, so importing the
    same export twice changes nothing. Runs, forecasts and plans keep their
    ids, so an id that the store already has raises StoreError and nothing
    is written.
    """
    source = Path(folder)
    manifest = _read_manifest(source)
    rows: dict[str, int] = {}
    with store.write() as con:
        _check_id_conflicts(con, source)
        for table in SINGLE_FILE_TABLES:
            rows[table] = _insert(con, table, f"read_parquet('{_sql_path(source / f'{table}.parquet')}')")
            if table == "series":
                rows["samples"] = _insert_partitioned(con, source, "samples")
            if table == "forecasts":
                rows["forecast_points"] = _insert_partitioned(con, source, "forecast_points")
        for table, (column, sequence) in ID_SEQUENCES.items():
            _advance_sequence(con, table, column, sequence)

    expected = manifest.get("rows", {})
    short = {table: (count, expected[table]) for table, count in rows.items() if expected.get(table, count) != count}
    if short:
        logger.warning("row counts differ from the manifest of %s (read, expected): %s", source, short)
    logger.info("imported %d samples and %d forecast points from %s", rows["samples"], rows["forecast_points"], source)
    return ParquetSummary(source, rows)


def _read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST_NAME
    if not path.is_file():
        raise InputDataError(f"{source} has no {MANIFEST_NAME}; give a folder written by 'capplan export --parquet'")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read {path}: {exc}; export the store again") from exc
    if manifest.get("format") != FORMAT_NAME:
        raise InputDataError(f"{path} is not a capplan Parquet manifest; give a folder written by 'capplan export --parquet'")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InputDataError(
            f"{path} has schema version {version!r}, newer than this capplan's {SCHEMA_VERSION}; upgrade capplan to import it"
        )
    return manifest


def _check_id_conflicts(con: duckdb.DuckDBPyConnection, source: Path) -> None:
    for table, (column, _) in ID_SEQUENCES.items():
        path = _sql_path(source / f"{table}.parquet")
        clash = con.execute(
            f"SELECT count(*), min({column}), max({column}) FROM read_parquet('{path}') "
            f"WHERE {column} IN (SELECT {column} FROM {table})"
        ).fetchone()
        if clash and clash[0]:
            raise StoreError(
                f"{clash[0]} {table} ids ({clash[1]}..{clash[2]}) in {source} already exist in the store; "
                "import into a new store file with --db NEW.duckdb"
            )


def _insert(con: duckdb.DuckDBPyConnection, table: str, relation: str) -> int:
    """Insert rows by column name, so an export of an older schema fills only the columns it has."""
    columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    known = {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}
    selected = ", ".join(f'"{name}"' for name in columns if name in known)
    conflict = ""
    if table in UPSERT_KEYS:
        keys = UPSERT_KEYS[table]
        updates = ", ".join(f'"{name}" = excluded."{name}"' for name in columns if name in known and name not in keys)
        conflict = f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    if table in REPLACE_KEYS:
        relation = _replace_rows(con, table, REPLACE_KEYS[table], relation)
    count = _count(con, f"SELECT count(*) FROM {relation}")
    con.execute(f"INSERT INTO {table} BY NAME SELECT {selected} FROM {relation}{conflict}")
    return count


def _replace_rows(con: duckdb.DuckDBPyConnection, table: str, keys: tuple[str, ...], relation: str) -> str:
    """Delete the rows of ``table`` at the keys in ``relation`` and return a relation with one row per key.

    An export of a store has one row per key. When ``relation`` contains a key
    more than once anyway, one of those rows is kept, and which one is not defined.
    """
    key_list = ", ".join(f'"{name}"' for name in keys)
    matched = " AND ".join(f'{table}."{name}" = incoming."{name}"' for name in keys)
    con.execute(f"DELETE FROM {table} USING (SELECT DISTINCT {key_list} FROM {relation}) AS incoming WHERE {matched}")
    return f"(SELECT DISTINCT ON ({key_list}) * FROM {relation})"


def _insert_partitioned(con: duckdb.DuckDBPyConnection, source: Path, table: str) -> int:
    folder = source / table
    if not folder.is_dir():
        return 0  # the export writes no folder for an empty table
    relation = (
        f"read_parquet('{_sql_path(folder)}/**/*.parquet', hive_partitioning = true, "
        "hive_types = {'series_name': VARCHAR, 'month': VARCHAR})"
    )
    return _insert(con, table, relation)


def _advance_sequence(con: duckdb.DuckDBPyConnection, table: str, column: str, sequence: str) -> None:
    """Move ``sequence`` past the largest id in ``table`` so new rows do not reuse an imported id.

    DuckDB cannot ALTER a sequence that a column default depends on, so this
    draws values until the sequence is past the largest id.
    """
    row = con.execute(f"SELECT max({column}) FROM {table}").fetchone()
    largest = int(row[0]) if row and row[0] is not None else 0
    current = con.execute(
        "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = ?", [sequence]
    ).fetchone()
    start = int(current[0]) if current and current[0] is not None else 0
    if largest > start:
        con.execute(f"SELECT max(nextval('{sequence}')) FROM range({largest - start})")


def _count(con: duckdb.DuckDBPyConnection, query: str) -> int:
    row = con.execute(query).fetchone()
    return int(row[0]) if row else 0


def _sql_path(path: Path) -> str:
    """Quote a path for a SQL string literal."""
    return str(path).replace("'", "''")
