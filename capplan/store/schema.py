"""The DuckDB schema: tables, views, the schema version and its migrations.

This module is the only place that creates or alters tables. Every timestamp
column holds UTC as a naive ``TIMESTAMP``; conversion happens on the way in.
Column names carry their unit (``_ms``, ``_rps``, ``_s``).

A migration is a list of statements that moves the schema from version N-1 to
N. :func:`migrate` applies the missing ones, each in its own transaction, and
records the version in ``schema_version``.
"""

from __future__ import annotations

import logging

import duckdb

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "migrate", "current_version"]

logger = logging.getLogger(__name__)

_V1 = [
    "CREATE SEQUENCE IF NOT EXISTS run_id_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS forecast_id_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS plan_id_seq START 1",
    """
    CREATE TABLE runs (
        run_id              BIGINT PRIMARY KEY DEFAULT nextval('run_id_seq'),
        kind                VARCHAR NOT NULL,      -- baseline | step | imported
        tool                VARCHAR NOT NULL DEFAULT 'capplan',
        target_url          VARCHAR,
        started_at          TIMESTAMP NOT NULL,
        finished_at         TIMESTAMP,
        status              VARCHAR NOT NULL,      -- running | finished | interrupted | failed
        stop_reason         VARCHAR,
        slo_p95_ms          DOUBLE,
        max_error_rate      DOUBLE,
        breaking_point_rps  DOUBLE,                -- NULL when no step broke the SLO
        safe_rps            DOUBLE,
        recommended_rps     DOUBLE,
        config              JSON
    )
    """,
    """
    CREATE TABLE steps (
        run_id               BIGINT NOT NULL,
        step_index           INTEGER NOT NULL,
        started_at           TIMESTAMP NOT NULL,
        duration_s           DOUBLE NOT NULL,
        offered_rps          DOUBLE NOT NULL,
        achieved_rps         DOUBLE NOT NULL,
        requests             BIGINT NOT NULL,
        ok_requests          BIGINT NOT NULL,
        errors               BIGINT NOT NULL,
        dropped              BIGINT NOT NULL,
        error_rate           DOUBLE NOT NULL,
        errors_by_kind       JSON,
        mean_ms              DOUBLE,
        p50_ms               DOUBLE,
        p90_ms               DOUBLE,
        p95_ms               DOUBLE,
        p99_ms               DOUBLE,
        max_ms               DOUBLE,
        service_p95_ms       DOUBLE,
        send_lag_p99_ms      DOUBLE,
        generator_cpu        DOUBLE,               -- fraction of one core used by the generator
        generator_saturated  BOOLEAN NOT NULL,
        passed               BOOLEAN NOT NULL,
        fail_reason          VARCHAR,
        latency_hdr          VARCHAR,              -- base64 HdrHistogram of latency in microseconds
        PRIMARY KEY (run_id, step_index)
    )
    """,
    """
    CREATE TABLE series (
        name        VARCHAR PRIMARY KEY,
        source      VARCHAR NOT NULL,              -- csv | prometheus | demo
        unit        VARCHAR,
        labels      JSON,
        created_at  TIMESTAMP NOT NULL,
        updated_at  TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE samples (
        series_name  VARCHAR NOT NULL,
        ts           TIMESTAMP NOT NULL,
        value        DOUBLE,
        PRIMARY KEY (series_name, ts)
    )
    """,
    """
    CREATE TABLE forecasts (
        forecast_id    BIGINT PRIMARY KEY DEFAULT nextval('forecast_id_seq'),
        series_name    VARCHAR NOT NULL,
        created_at     TIMESTAMP NOT NULL,
        model          VARCHAR NOT NULL,
        resolution     VARCHAR NOT NULL,           -- what one point is, e.g. daily_peak
        level          DOUBLE NOT NULL,            -- interval coverage, e.g. 0.8
        history_start  TIMESTAMP NOT NULL,
        history_end    TIMESTAMP NOT NULL,
        horizon_end    TIMESTAMP NOT NULL,
        params         JSON
    )
    """,
    """
    CREATE TABLE forecast_points (
        forecast_id  BIGINT NOT NULL,
        ts           TIMESTAMP NOT NULL,
        yhat         DOUBLE NOT NULL,
        lower        DOUBLE NOT NULL,
        upper        DOUBLE NOT NULL,
        PRIMARY KEY (forecast_id, ts)
    )
    """,
    """
    CREATE TABLE plans (
        plan_id                BIGINT PRIMARY KEY DEFAULT nextval('plan_id_seq'),
        created_at             TIMESTAMP NOT NULL,
        run_id                 BIGINT NOT NULL,
        forecast_id            BIGINT NOT NULL,
        series_name            VARCHAR NOT NULL,
        safe_rps_per_instance  DOUBLE NOT NULL,
        redundancy             INTEGER NOT NULL,
        current_instances      INTEGER NOT NULL,
        demand_quantile        DOUBLE NOT NULL,    -- quantile of the forecast that the plan covers
        runway_date            DATE,               -- NULL when the fleet lasts the whole horizon
        policy                 JSON
    )
    """,
    """
    CREATE TABLE plan_months (
        plan_id          BIGINT NOT NULL,
        month            DATE NOT NULL,
        months_ahead     INTEGER NOT NULL,
        demand_rps       DOUBLE NOT NULL,
        demand_yhat_rps  DOUBLE NOT NULL,
        instances        INTEGER NOT NULL,
        utilisation      DOUBLE NOT NULL,          -- demand / capacity of the serving instances
        PRIMARY KEY (plan_id, month)
    )
    """,
]

# Probe at full depth: workload model, generator health and target saturation
# per step, and per-scenario results with their own histograms.
_PROBE_DETAIL = [
    "ALTER TABLE steps ADD COLUMN model VARCHAR DEFAULT 'open'",  # open | closed
    "ALTER TABLE steps ADD COLUMN users DOUBLE",  # closed model: users at the step's peak
    "ALTER TABLE steps ADD COLUMN service_hdr VARCHAR",  # base64 HdrHistogram of service time, microseconds
    "ALTER TABLE steps ADD COLUMN send_lag_hdr VARCHAR",  # base64 HdrHistogram of send lag, microseconds
    "ALTER TABLE steps ADD COLUMN in_flight_max BIGINT",
    "ALTER TABLE steps ADD COLUMN concurrency_mean DOUBLE",  # Little's law: achieved rps x mean latency
    "ALTER TABLE steps ADD COLUMN target_saturated BOOLEAN DEFAULT false",
    "ALTER TABLE steps ADD COLUMN generator_processes INTEGER DEFAULT 1",
    "ALTER TABLE steps ADD COLUMN machine_cpu_busy DOUBLE",  # fraction of all cores busy during the step
    "ALTER TABLE steps ADD COLUMN interrupted BOOLEAN DEFAULT false",
    """
    CREATE TABLE step_scenarios (
        run_id          BIGINT NOT NULL,
        step_index      INTEGER NOT NULL,
        scenario        VARCHAR NOT NULL,
        requests        BIGINT NOT NULL,
        ok_requests     BIGINT NOT NULL,
        errors          BIGINT NOT NULL,
        error_rate      DOUBLE NOT NULL,
        errors_by_kind  JSON,
        mean_ms         DOUBLE,
        p50_ms          DOUBLE,
        p90_ms          DOUBLE,
        p95_ms          DOUBLE,
        p99_ms          DOUBLE,
        max_ms          DOUBLE,
        latency_hdr     VARCHAR,
        service_hdr     VARCHAR,
        PRIMARY KEY (run_id, step_index, scenario)
    )
    """,
    "ALTER TABLE runs ADD COLUMN exit_reason VARCHAR",  # threshold | breaking_point | interrupted | completed
]

MIGRATIONS: list[list[str]] = [_V1, _PROBE_DETAIL]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """Return the schema version of an open database; 0 for an empty file."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()
    if not exists or exists[0] == 0:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply the migrations the database lacks and return the version reached."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
    )
    version = current_version(con)
    if version > SCHEMA_VERSION:
        from capplan.errors import StoreError

        raise StoreError(
            f"database schema version {version} is newer than this capplan supports ({SCHEMA_VERSION}); upgrade capplan"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in MIGRATIONS[target - 1]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [target])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        logger.info("store schema migrated to version %d", target)
    return SCHEMA_VERSION
