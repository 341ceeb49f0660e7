"""The read-only query guard behind ``capplan sql`` and the SQL page, against real DuckDB files.

Every rejected statement is checked twice: it raises with a message that says
why, and the store is unchanged afterwards.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from capplan.cli import main
from capplan.errors import StoreError
from capplan.store import Store
from capplan.store.readonly_query import (
    QueryError,
    QueryRejectedError,
    QueryTimeoutError,
    ReadOnlyStore,
    check_query,
    run_query,
)
from capplan.store.series import write_samples

SAMPLES = 50
REJECTED = [
    ("COPY samples TO '{outside}'", "COPY statements are rejected"),
    ("ATTACH '{outside}' AS other", "ATTACH statements are rejected"),
    ("SELECT * FROM read_csv('/etc/passwd')", "reading or writing files is disabled"),
    ("DROP TABLE samples", "DROP statements are rejected"),
    ("SELECT 1; DROP TABLE samples", "contains 2 statements"),
    ("EXPLAIN DROP TABLE samples", "DROP statements are rejected"),
    ("SET enable_external_access = true", "SET statements are rejected"),
    ("INSTALL httpfs", "INSTALL statements are rejected"),
    ("INSERT INTO series VALUES ('x', 'csv', NULL, NULL, now(), now())", "INSERT statements are rejected"),
    ("PRAGMA enable_profiling", "PRAGMA enable_profiling is rejected"),
    ("SELECT nextval('run_id_seq')", "opened read-only"),
]
REJECTED_IDS = ["copy", "attach", "read_csv", "drop", "two-statements", "explain-drop", "set", "install", "insert", "pragma", "nextval"]


@pytest.fixture
def sample_store(tmp_path: Path) -> Path:
    store = Store(tmp_path / "capplan.duckdb")
    timestamps = pd.date_range("2026-01-01", periods=SAMPLES, freq="h")
    write_samples(store, "api_rps", pd.DataFrame({"ts": timestamps, "value": range(SAMPLES)}), source="csv", unit="rps")
    return store.path


def sample_count(path: Path) -> int:
    with ReadOnlyStore(path).read() as con:
        row = con.execute("SELECT count(*) FROM samples").fetchone()
    assert row is not None
    return int(row[0])


def test_run_query_select_returns_rows(sample_store: Path) -> None:
    result = run_query(ReadOnlyStore(sample_store), "SELECT ts, value FROM samples ORDER BY ts")

    assert result.columns == ["ts", "value"]
    assert len(result.frame) == SAMPLES
    assert result.frame["value"].iloc[-1] == SAMPLES - 1
    assert not result.truncated


@pytest.mark.parametrize("query", ["DESCRIBE samples", "SHOW TABLES", "SUMMARIZE samples", "PRAGMA table_info('samples')",
                                   "EXPLAIN SELECT * FROM samples", "WITH x AS (SELECT 1 AS a) SELECT * FROM x"])
def test_run_query_reading_statements_allowed(query: str, sample_store: Path) -> None:
    result = run_query(ReadOnlyStore(sample_store), query)

    assert len(result.frame) >= 1


@pytest.mark.parametrize(("query", "message"), REJECTED, ids=REJECTED_IDS)
def test_run_query_rejects_statement(query: str, message: str, sample_store: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.duckdb"

    with pytest.raises(QueryRejectedError, match=message):
        run_query(ReadOnlyStore(sample_store), query.format(outside=outside))

    assert not outside.exists()
    assert sample_count(sample_store) == SAMPLES


def test_run_query_row_limit_truncates(sample_store: Path) -> None:
    result = run_query(ReadOnlyStore(sample_store), "SELECT * FROM range(1000000000)", row_limit=10)

    assert len(result.frame) == 10
    assert result.truncated


def test_run_query_time_limit_interrupts(sample_store: Path) -> None:
    started = time.monotonic()

    with pytest.raises(QueryTimeoutError, match="time limit of 0.5 s"):
        run_query(ReadOnlyStore(sample_store), "SELECT count(*) FROM range(1000000000000)", timeout_s=0.5)

    assert time.monotonic() - started < 30.0


def test_check_query_empty_and_invalid() -> None:
    with pytest.raises(QueryError, match="the query is empty"):
        check_query("   ")
    with pytest.raises(QueryError, match="invalid SQL"):
        check_query("SELEC 1")


def test_run_query_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        run_query(ReadOnlyStore(tmp_path / "absent.duckdb"), "SELECT 1")

    assert not (tmp_path / "absent.duckdb").exists()


def test_readonly_store_write_raises(sample_store: Path) -> None:
    with pytest.raises(StoreError, match="read-only"):
        with ReadOnlyStore(sample_store).write():
            pass


def test_cli_sql_table(sample_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sql", "SELECT count(*) AS samples FROM samples", "--db", str(sample_store)])

    output = capsys.readouterr().out
    assert code == 0
    assert "samples" in output
    assert str(SAMPLES) in output
    assert "1 rows" in output


def test_cli_sql_json_one_object(sample_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sql", "SELECT value FROM samples ORDER BY ts LIMIT 3", "--db", str(sample_store), "--json"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(lines) == 1
    payload = json.loads(lines[0])
    assert payload["columns"] == ["value"]
    assert payload["rows"] == [[0.0], [1.0], [2.0]]
    assert payload["truncated"] is False


def test_cli_sql_csv(sample_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sql", "SELECT value FROM samples ORDER BY ts", "--db", str(sample_store), "--csv", "--limit", "2"])

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines() == ["value", "0.0", "1.0"]
    assert "more than 2 rows" in captured.err


@pytest.mark.parametrize(("query", "message"), REJECTED[:4], ids=REJECTED_IDS[:4])
def test_cli_sql_rejects_statement(
    query: str, message: str, sample_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside.duckdb"

    code = main(["sql", query.format(outside=outside), "--db", str(sample_store), "--json"])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert message in captured.err
    assert not outside.exists()
    assert sample_count(sample_store) == SAMPLES


def test_cli_sql_json_and_csv_conflict(sample_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sql", "SELECT 1", "--db", str(sample_store), "--json", "--csv"])

    assert code == 2
    assert "choose one output format" in capsys.readouterr().err
