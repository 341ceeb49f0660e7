"""Parquet export and import of the store, on real DuckDB files in tmp_path."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from capplan.cli import main
from capplan.errors import ConfigError, StoreError
from capplan.store import Store
from capplan.store.forecasts import insert_forecast
from capplan.store.parquet_io import export_parquet, import_parquet
from capplan.store.runs import add_step, create_run, get_steps
from capplan.store.series import read_samples, write_samples

ODD_NAME = "api/requests rate=5m"  # needs percent-encoding in a Hive partition path


def _fill(store: Store) -> None:
    hourly = pd.DataFrame({"ts": pd.date_range("2026-01-30", periods=72, freq="h"), "value": range(72)})
    write_samples(store, "web_rps", hourly, source="csv", unit="rps")
    write_samples(store, ODD_NAME, hourly.assign(value=hourly["value"] * 2.0), source="csv")
    run_id = create_run(
        store, kind="step", target_url="http://127.0.0.1:1/", started_at=datetime(2026, 2, 1),
        slo_p95_ms=200.0, max_error_rate=0.01, config={"start_rps": 10},
    )
    add_step(store, run_id, {
        "step_index": 0, "started_at": datetime(2026, 2, 1), "duration_s": 10.0, "offered_rps": 10.0,
        "achieved_rps": 9.9, "requests": 99, "ok_requests": 99, "errors": 0, "dropped": 0, "error_rate": 0.0,
        "p95_ms": 12.5, "generator_saturated": False, "passed": True,
    }, [])
    points = pd.DataFrame({"ts": pd.date_range("2026-02-02", periods=40, freq="D"), "yhat": 5.0, "lower": 4.0, "upper": 6.0})
    insert_forecast(
        store, series_name="web_rps", created_at=datetime(2026, 2, 2), model="seasonal_naive",
        resolution="daily_peak", level=0.8, history_start=datetime(2026, 1, 30), history_end=datetime(2026, 2, 1, 23),
        points=points, params={"season": 7},
    )


def test_export_partitions_by_series_and_month(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.duckdb")
    _fill(store)

    summary = export_parquet(store, tmp_path / "out")

    assert summary.rows["samples"] == 144
    assert summary.rows["forecast_points"] == 40
    assert summary.rows["runs"] == 1
    months = sorted(p.name for p in (tmp_path / "out" / "samples" / "series_name=web_rps").iterdir())
    assert months == ["month=2026-01", "month=2026-02"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rows"]["steps"] == 1


def test_export_readable_by_plain_duckdb(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.duckdb")
    _fill(store)
    export_parquet(store, tmp_path / "out")

    con = duckdb.connect()
    rows = con.execute(
        f"SELECT series_name, month, count(*), sum(value) FROM read_parquet('{tmp_path}/out/samples/**/*.parquet', "
        "hive_partitioning = true) GROUP BY ALL ORDER BY ALL"
    ).fetchall()

    assert (ODD_NAME, "2026-01", 48, 2.0 * sum(range(48))) in rows
    assert ("web_rps", "2026-02", 24, float(sum(range(48, 72)))) in rows
    assert len(rows) == 4


def test_import_round_trip_into_new_store(tmp_path: Path) -> None:
    source = Store(tmp_path / "a.duckdb")
    _fill(source)
    export_parquet(source, tmp_path / "out")
    target = Store(tmp_path / "b.duckdb")

    summary = import_parquet(target, tmp_path / "out")

    assert summary.rows["samples"] == 144
    pd.testing.assert_frame_equal(read_samples(target, ODD_NAME), read_samples(source, ODD_NAME))
    steps = get_steps(target, 1)
    assert steps["p95_ms"].tolist() == [12.5]
    with target.read() as con:
        assert con.execute("SELECT count(*) FROM forecast_points WHERE forecast_id = 1").fetchone() == (40,)


def test_import_moves_sequences_past_ids(tmp_path: Path) -> None:
    source = Store(tmp_path / "a.duckdb")
    _fill(source)
    _fill(source)  # a second run and forecast: ids 2
    export_parquet(source, tmp_path / "out")
    target = Store(tmp_path / "b.duckdb")
    import_parquet(target, tmp_path / "out")

    run_id = create_run(
        target, kind="step", target_url=None, started_at=datetime(2026, 3, 1),
        slo_p95_ms=None, max_error_rate=None, config={},
    )

    assert run_id == 3


def test_import_twice_rejects_existing_run_ids(tmp_path: Path) -> None:
    source = Store(tmp_path / "a.duckdb")
    _fill(source)
    export_parquet(source, tmp_path / "out")
    target = Store(tmp_path / "b.duckdb")
    import_parquet(target, tmp_path / "out")

    with pytest.raises(StoreError, match=r"runs ids \(1\.\.1\).*--db"):
        import_parquet(target, tmp_path / "out")

    with target.read() as con:
        assert con.execute("SELECT count(*) FROM samples").fetchone() == (144,)


def test_import_samples_replace_stored_keys(tmp_path: Path) -> None:
    source = Store(tmp_path / "a.duckdb")
    hourly = pd.DataFrame({"ts": pd.date_range("2026-01-30", periods=48, freq="h"), "value": range(48)})
    write_samples(source, "web_rps", hourly, source="csv", unit="rps")
    export_parquet(source, tmp_path / "out")
    target = Store(tmp_path / "b.duckdb")
    earlier = pd.DataFrame({"ts": pd.date_range("2026-01-29", periods=48, freq="h"), "value": -1.0})
    write_samples(target, "web_rps", earlier, source="csv", unit="rps")
    write_samples(target, "other", earlier, source="csv", unit="rps")

    import_parquet(target, tmp_path / "out")
    import_parquet(target, tmp_path / "out")

    stored = read_samples(target, "web_rps")
    assert len(stored) == 72  # 24 hours only in the store, then the 48 imported ones
    assert stored["value"].tolist() == [-1.0] * 24 + [float(v) for v in range(48)]
    assert len(read_samples(target, "other")) == 48
    with target.read() as con:
        assert con.execute("SELECT count(*) FROM (SELECT series_name, ts FROM samples GROUP BY ALL HAVING count(*) > 1)").fetchone() == (0,)


def test_export_rejects_non_empty_folder(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.duckdb")
    _fill(store)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")

    with pytest.raises(ConfigError, match="not empty"):
        export_parquet(store, tmp_path / "out")


def test_cli_export_and_import_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(Store(tmp_path / "a.duckdb"))

    assert main(["export", "--db", str(tmp_path / "a.duckdb"), "--parquet", str(tmp_path / "out"), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert main(["import-parquet", str(tmp_path / "out"), "--db", str(tmp_path / "b.duckdb"), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)

    assert exported["rows"]["samples"] == 144
    assert imported["rows"] == exported["rows"]


def test_cli_import_missing_manifest_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()

    code = main(["import-parquet", str(tmp_path / "empty"), "--db", str(tmp_path / "b.duckdb")])

    assert code == 2
    assert "manifest.json" in capsys.readouterr().err
