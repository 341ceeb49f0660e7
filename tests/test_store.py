"""The DuckDB store: schema creation, migrations, read-only access and upserts."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd
import pytest

from capplan.errors import NotFoundError, StoreError
from capplan.store import SCHEMA_VERSION, Store, resolve_db_path
from capplan.store import runs as run_store
from capplan.store import series as series_store


def test_db_path_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("CAPPLAN_DB", raising=False)
    assert str(resolve_db_path()) == "data/capplan.duckdb"
    monkeypatch.setenv("CAPPLAN_DB", str(tmp_path / "env.duckdb"))
    assert resolve_db_path() == tmp_path / "env.duckdb"
    assert resolve_db_path(tmp_path / "arg.duckdb") == tmp_path / "arg.duckdb"


def test_first_write_creates_schema(store):
    with store.write() as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"runs", "steps", "series", "samples", "forecasts", "forecast_points", "plans", "plan_months"} <= tables
    with store.read() as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_read_missing_store_names_fix(tmp_path):
    with pytest.raises(StoreError) as excinfo:
        with Store(tmp_path / "absent.duckdb").read():
            pass
    assert "absent.duckdb" in str(excinfo.value)
    assert "capplan demo" in str(excinfo.value)


def test_read_connection_rejects_writes(store):
    with store.write():
        pass
    with store.read() as con:
        with pytest.raises(duckdb.Error):
            con.execute("CREATE TABLE sneaky (x INTEGER)")


def test_newer_schema_rejected(store):
    with store.write() as con:
        con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [SCHEMA_VERSION + 1])
    with pytest.raises(StoreError, match="newer"):
        with Store(store.path).write():
            pass


def test_samples_upsert_no_duplicates(store):
    frame = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=48, freq="h"), "value": range(48)})
    series_store.write_samples(store, "rps", frame, source="csv")
    frame["value"] = frame["value"] * 2.0
    series_store.write_samples(store, "rps", frame, source="csv")

    stored = series_store.read_samples(store, "rps")
    assert len(stored) == 48
    assert stored["value"].iloc[-1] == 94.0


def test_failed_write_rolls_back(store):
    frame = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=3, freq="h"), "value": [1.0, 2.0, 3.0]})
    series_store.write_samples(store, "rps", frame, source="csv")
    with pytest.raises(RuntimeError):
        with store.write() as con:
            con.execute("DELETE FROM samples")
            raise RuntimeError("crash mid-write")
    assert len(series_store.read_samples(store, "rps")) == 3


def test_unknown_run_lists_known_ids(store):
    run_id = run_store.create_run(
        store, kind="step", target_url="http://127.0.0.1:1/", started_at=datetime(2026, 1, 1),
        slo_p95_ms=500.0, max_error_rate=0.01, config={},
    )  # fmt: skip
    with pytest.raises(NotFoundError) as excinfo:
        run_store.get_run(store, run_id + 41)
    assert f"run {run_id + 41} not found" in str(excinfo.value)
    assert f"known runs: {run_id}" in str(excinfo.value)
