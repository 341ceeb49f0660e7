"""The DuckDB store: schema creation, migrations, read-only access and upserts."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd
import pytest

from capplan.errors import NotFoundError, StoreError
from capplan.store import SCHEMA_VERSION, Store, resolve_db_path
from capplan.store import runs as run_store
from capplan.store import schema
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


def test_samples_duplicate_input_last_wins(store):
    frame = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01 00:00", "2026-01-01 01:00", "2026-01-01 00:00"]),
                          "value": [1.0, 2.0, 3.0]})

    written = series_store.write_samples(store, "rps", frame, source="csv")

    stored = series_store.read_samples(store, "rps")
    assert written == 2
    assert stored["value"].tolist() == [3.0, 2.0]


def test_samples_rewrite_keeps_other_series(store):
    frame = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=4, freq="h"), "value": [1.0, 2.0, 3.0, 4.0]})
    series_store.write_samples(store, "a", frame, source="csv")
    series_store.write_samples(store, "b", frame, source="csv")

    series_store.write_samples(store, "a", frame.iloc[2:].assign(value=[30.0, 40.0]), source="csv")

    assert series_store.read_samples(store, "a")["value"].tolist() == [1.0, 2.0, 30.0, 40.0]
    assert series_store.read_samples(store, "b")["value"].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_daily_peaks_skip_nan_sample(store):
    # Prometheus stores NaN for a value such as 0/0; DuckDB orders NaN above every number.
    frame = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=24, freq="h"), "value": [float(v) for v in range(24)]})
    series_store.write_samples(store, "rps", frame, source="prometheus")
    with store.write() as con:
        con.execute("UPDATE samples SET value = 'NaN'::DOUBLE WHERE series_name = 'rps' AND ts = '2026-01-01 05:00:00'")

    with store.read() as con:
        peak, samples = con.execute("SELECT peak_value, samples FROM daily_peaks WHERE series_name = 'rps'").fetchone()
        max_value = con.execute("SELECT max_value FROM series_summary WHERE series_name = 'rps'").fetchone()[0]

    assert peak == 23.0
    assert samples == 23
    assert max_value == 23.0


def build_store_at(path, version: int) -> None:
    """Create a store file at schema ``version`` the way migrate() would have."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
        for target in range(1, version + 1):
            for statement in schema.MIGRATIONS[target - 1]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [target])


def test_migration_drops_samples_key_keeps_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    keyed_version = schema.MIGRATIONS.index(schema._SAMPLES_WITHOUT_KEY)
    build_store_at(path, keyed_version)
    rows = [("b", datetime(2026, 1, 1, hour), float(hour)) for hour in range(24)]
    rows += [("a", datetime(2026, 1, 1, hour), None if hour == 5 else hour * 2.0) for hour in range(24)]
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO series VALUES ('a', 'csv', 'rps', '{}', now(), now()), ('b', 'csv', 'rps', '{}', now(), now())")
        con.executemany("INSERT INTO samples VALUES (?, ?, ?)", rows)
        keys = con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'samples' AND constraint_type = 'PRIMARY KEY'"
        ).fetchone()
        assert keys == (1,)

    store = Store(path)
    with store.write():
        pass

    with store.read() as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        keys = con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'samples' AND constraint_type = 'PRIMARY KEY'"
        ).fetchone()
        stored = con.execute("SELECT series_name, ts, value FROM samples ORDER BY series_name, ts").fetchall()
        peaks = con.execute("SELECT series_name, peak_value FROM daily_peaks ORDER BY series_name").fetchall()
    assert keys == (0,)
    assert stored == sorted(rows, key=lambda row: (row[0], row[1]))
    assert peaks == [("a", 46.0), ("b", 23.0)]

    frame = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=24, freq="h"), "value": 7.0})
    series_store.write_samples(store, "a", frame, source="csv")
    assert series_store.read_samples(store, "a")["value"].tolist() == [7.0] * 24


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
