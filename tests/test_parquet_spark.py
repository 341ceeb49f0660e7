"""A Parquet export read by a real local Spark, compared value for value with the store.

pyspark is installed by the test extra, so a failed import fails these tests
instead of skipping them. pyspark starts Spark in a JVM child process with
one core (``local[1]``), bound only to 127.0.0.1. Spark 4 needs Java 17 or
newer: without a ``java`` binary the tests skip outside CI and fail with
CI=true, as for the other real servers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, TimestampNTZType, TimestampType

from capplan.cli import main
from capplan.store import Store
from capplan.store.forecasts import insert_forecast
from capplan.store.parquet_io import SINGLE_FILE_TABLES
from capplan.store.runs import add_step, create_run
from capplan.store.series import write_samples
from conftest import require_binary

pytestmark = pytest.mark.slow

MIN_JAVA_MAJOR = 17  # the classes in pyspark 4.3.0's jars are Java 17 class files (version 61)
ODD_NAME = "api/requests rate=5m"  # stored in the partition path as api%2Frequests%20rate%3D5m
NUMERIC_NAME = "42"  # Spark and DuckDB read this partition value as an integer unless inference is off
SERIES = ("web_rps", ODD_NAME, NUMERIC_NAME)
# Spark reads a partition value such as "42" or "0042" as a number unless
# this setting is off, so both the docs and the tests read with it off.
PARTITION_INFERENCE = "spark.sql.sources.partitionColumnTypeInference.enabled"
# Spark 4.3.0 reads a Parquet timestamp without a UTC adjustment as TIMESTAMP_NTZ.
# With this setting off it reads the same timestamp as an instant in UTC.
INFER_NTZ = "spark.sql.parquet.inferTimestampNTZ.enabled"


def _require_java() -> str:
    """Return the java binary, or skip (outside CI) / fail (CI=true) when it is missing or older than 17."""
    java = require_binary("java")
    banner = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    match = re.search(r'version "(\d+)', banner)
    major = int(match.group(1)) if match else 0
    if major < MIN_JAVA_MAJOR:
        reason = f"{java} is Java {major or 'of unknown version'}; Spark 4 needs Java {MIN_JAVA_MAJOR} or newer: install default-jre-headless"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return java


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """One local Spark session for the module, on 127.0.0.1 only, with the session time zone UTC."""
    _require_java()
    scratch = tmp_path_factory.mktemp("spark")
    with pytest.MonkeyPatch.context() as env:
        # Without SPARK_LOCAL_IP, Spark names its host by the first non-loopback
        # interface address even with driver.host set, although it binds to 127.0.0.1.
        env.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        session = (
            SparkSession.builder.master("local[1]")
            .appName("capplan-parquet-test")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.memory", "512m")
            .config("spark.sql.shuffle.partitions", "1")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
            .config("spark.local.dir", str(scratch / "local"))
            .config(PARTITION_INFERENCE, "false")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        # py4j logs its socket closing at INFO when the interpreter exits, through the CLI's handler.
        logging.getLogger("py4j").setLevel(logging.WARNING)
        try:
            yield session
        finally:
            session.stop()


def _fill(store: Store) -> None:
    """Write three series across January and February 2026, a stepped run and a forecast into February and March."""
    hourly = pd.date_range("2026-01-30", periods=72, freq="h")
    for offset, name in enumerate(SERIES):
        # Thirds are not exact in binary, so an equal double proves no rounding on the way.
        values = [index / 3 + offset for index in range(len(hourly))]
        write_samples(store, name, pd.DataFrame({"ts": hourly, "value": values}), source="csv", unit="rps")
    # The last microsecond of January belongs to the month=2026-01 partition.
    edge = pd.DataFrame({"ts": [pd.Timestamp("2026-01-31 23:59:59.999999")], "value": [-0.1]})
    write_samples(store, "web_rps", edge, source="csv", unit="rps")

    run_id = create_run(
        store, kind="step", target_url="http://127.0.0.1:1/", started_at=datetime(2026, 2, 1, 9, 30),
        slo_p95_ms=200.0, max_error_rate=0.01, config={"start_rps": 10},
    )
    for index, (offered, p95) in enumerate([(10.0, 12.5), (20.0, 250.125)]):
        add_step(store, run_id, {
            "step_index": index, "started_at": datetime(2026, 2, 1, 9, 30 + index, 0, 250_000), "duration_s": 60.0,
            "offered_rps": offered, "achieved_rps": offered * 0.99, "requests": int(offered * 60),
            "ok_requests": int(offered * 60) - index * 7, "errors": index * 7, "dropped": 0,
            "error_rate": index * 7 / (offered * 60), "errors_by_kind": {"timeout": index * 7},
            "p95_ms": p95, "generator_saturated": False, "passed": index == 0,
        }, [])

    days = pd.date_range("2026-02-02", periods=40, freq="D")
    points = pd.DataFrame({"ts": days, "yhat": [5.0 + i / 7 for i in range(40)], "lower": 4.0, "upper": 6.5})
    insert_forecast(
        store, series_name="web_rps", created_at=datetime(2026, 2, 2), model="seasonal_naive",
        resolution="daily_peak", level=0.8, history_start=datetime(2026, 1, 30), history_end=datetime(2026, 2, 1, 23),
        points=points, params={"season": 7},
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path]:
    """A filled store and its export, written by the CLI as a user runs it."""
    root = tmp_path_factory.mktemp("export")
    store = Store(root / "capplan.duckdb")
    _fill(store)
    folder = root / "parquet"
    assert main(["export", "--db", str(store.path), "--parquet", str(folder), "--json"]) == 0
    return store, folder


def _store_rows(store: Store, query: str) -> list[tuple[object, ...]]:
    with store.read() as con:
        return [tuple(row) for row in con.execute(query).fetchall()]


def _spark_rows(frame: DataFrame) -> list[tuple[object, ...]]:
    return [tuple(row) for row in frame.collect()]


def test_spark_samples_counts_per_partition(spark: SparkSession, exported: tuple[Store, Path]) -> None:
    store, folder = exported

    samples = spark.read.parquet(str(folder / "samples"))
    counts = _spark_rows(samples.groupBy("series_name", "month").count().orderBy("series_name", "month"))

    expected = _store_rows(
        store, "SELECT series_name, strftime(ts, '%Y-%m'), count(*) FROM samples GROUP BY ALL ORDER BY ALL"
    )
    assert counts == expected
    assert ("web_rps", "2026-01", 49) in counts  # 48 hours and the last microsecond of January


def test_spark_partition_columns_are_strings(spark: SparkSession, exported: tuple[Store, Path]) -> None:
    _, folder = exported

    samples = spark.read.parquet(str(folder / "samples"))

    assert samples.columns == ["ts", "value", "series_name", "month"]
    assert samples.schema["series_name"].dataType == StringType()
    assert samples.schema["month"].dataType == StringType()
    assert sorted(row.series_name for row in samples.select("series_name").distinct().collect()) == sorted(SERIES)
    assert sorted(row.month for row in samples.select("month").distinct().collect()) == ["2026-01", "2026-02"]


def test_spark_one_series_keeps_numeric_name(spark: SparkSession, exported: tuple[Store, Path]) -> None:
    _, folder = exported
    base = folder / "samples"

    # basePath keeps series_name as a column when only one series folder is read.
    one = spark.read.option("basePath", str(base)).parquet(str(base / f"series_name={NUMERIC_NAME}"))

    assert one.schema["series_name"].dataType == StringType()
    assert {row.series_name for row in one.select("series_name").distinct().collect()} == {NUMERIC_NAME}
    assert one.count() == 72


def test_spark_samples_timestamps_and_values(spark: SparkSession, exported: tuple[Store, Path]) -> None:
    store, folder = exported

    samples = spark.read.parquet(str(folder / "samples")).orderBy("series_name", "ts")
    rows = _spark_rows(samples.select("series_name", "ts", "value"))
    micros = [row[0] for row in samples.selectExpr("unix_micros(CAST(ts AS TIMESTAMP))").collect()]

    expected = _store_rows(store, "SELECT series_name, ts, value FROM samples ORDER BY series_name, ts")
    assert samples.schema["ts"].dataType == TimestampNTZType()
    assert [row[1] for row in rows] == [row[1] for row in expected]  # naive UTC wall times, to the microsecond
    assert [row[2] for row in rows] == [row[2] for row in expected]
    assert [row[0] for row in rows] == [row[0] for row in expected]
    assert micros == [row[0] for row in _store_rows(store, "SELECT epoch_us(ts) FROM samples ORDER BY series_name, ts")]


def test_spark_timestamps_ignore_session_zone(spark: SparkSession, exported: tuple[Store, Path]) -> None:
    store, folder = exported
    expected = [row[0] for row in _store_rows(store, "SELECT ts FROM samples ORDER BY series_name, ts")]

    spark.conf.set("spark.sql.session.timeZone", "Asia/Kolkata")  # UTC+05:30, no daylight saving
    try:
        shifted_zone = [row.ts for row in spark.read.parquet(str(folder / "samples")).orderBy("series_name", "ts").collect()]
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")

    assert shifted_zone == expected


def test_spark_without_ntz_reads_utc_instants(spark: SparkSession, exported: tuple[Store, Path]) -> None:
    store, folder = exported

    spark.conf.set(INFER_NTZ, "false")
    try:
        samples = spark.read.parquet(str(folder / "samples"))
        kind = samples.schema["ts"].dataType
        micros = [row[0] for row in samples.orderBy("series_name", "ts").selectExpr("unix_micros(ts)").collect()]
    finally:
        spark.conf.unset(INFER_NTZ)

    assert kind == TimestampType()
    assert micros == [row[0] for row in _store_rows(store, "SELECT epoch_us(ts) FROM samples ORDER BY series_name, ts")]


def test_spark_steps_equal_store(spark: SparkSession, exported: tuple[Store, Path]) -> None:
    store, folder = exported
    columns = "run_id, step_index, started_at, offered_rps, achieved_rps, requests, errors, error_rate, p95_ms, passed, errors_by_kind"

    steps = spark.read.parquet(str(folder / "steps.parquet"))
    rows = _spark_rows(steps.selectExpr(*columns.split(", ")).orderBy("run_id", "step_index"))

    expected = _store_rows(store, f"SELECT {columns.replace('errors_by_kind', 'errors_by_kind::VARCHAR')} FROM steps ORDER BY run_id, step_index")
    assert len(rows) == 2
    assert rows == expected
    assert steps.schema["started_at"].dataType == TimestampNTZType()
    assert json.loads(rows[1][-1]) == {"timeout": 7}


def test_spark_forecast_points_equal_store(spark: SparkSession, exported: tuple[Store, Path]) -> None:
    store, folder = exported

    points = spark.read.parquet(str(folder / "forecast_points"))
    counts = _spark_rows(points.groupBy("series_name", "month").count().orderBy("series_name", "month"))
    rows = _spark_rows(points.select("forecast_id", "ts", "yhat", "lower", "upper").orderBy("forecast_id", "ts"))

    assert counts == [("web_rps", "2026-02", 27), ("web_rps", "2026-03", 13)]
    assert rows == _store_rows(store, "SELECT forecast_id, ts, yhat, lower, upper FROM forecast_points ORDER BY forecast_id, ts")


def test_spark_reads_every_table_file(spark: SparkSession, exported: tuple[Store, Path]) -> None:
    _, folder = exported
    manifest = json.loads((folder / "manifest.json").read_text())

    counts = {table: spark.read.parquet(str(folder / f"{table}.parquet")).count() for table in SINGLE_FILE_TABLES}

    assert counts == {table: manifest["rows"][table] for table in SINGLE_FILE_TABLES}


def test_duckdb_one_series_keeps_numeric_name(exported: tuple[Store, Path]) -> None:
    _, folder = exported

    # hive_types as in docs/scale.md: without it DuckDB casts the name "42" to BIGINT.
    rows = duckdb.connect().execute(
        f"SELECT series_name, count(*) FROM read_parquet('{folder}/samples/series_name={NUMERIC_NAME}/*/*.parquet', "
        "hive_partitioning = true, hive_types = {'series_name': VARCHAR, 'month': VARCHAR}) GROUP BY ALL"
    ).fetchall()

    assert rows == [(NUMERIC_NAME, 72)]
