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

# Views for analysts and the quarterly review. They use only columns of the
# first schema version and never SELECT *, so later columns do not change
# them. Demand values are in the series' unit (series.unit); plans treat the
# demand as requests/s. Each view is documented column by column in docs/schema.md.
_ANALYST_VIEWS = [
    # Peak of each UTC day per series. A day is complete when it has at least
    # half of its expected samples (one day divided by the series' median
    # sample step), the rule forecasting.peaks uses before forecasting.
    """
    CREATE VIEW daily_peaks AS
    WITH gaps AS (
        SELECT series_name,
               date_diff('second', lag(ts) OVER (PARTITION BY series_name ORDER BY ts), ts) AS gap_s
        FROM samples
    ),
    cadence AS (
        SELECT series_name,
               CASE WHEN median(gap_s) >= 60 THEN greatest(60, round(median(gap_s) / 60) * 60)
                    ELSE greatest(1, round(median(gap_s))) END AS sample_step_s
        FROM gaps
        WHERE gap_s > 0
        GROUP BY series_name
    )
    SELECT x.series_name,
           CAST(x.ts AS DATE) AS day,
           max(x.value) AS peak_value,
           any_value(s.unit) AS unit,
           count(x.value) AS samples,
           coalesce(c.sample_step_s, 86400) AS sample_step_s,
           greatest(1, 86400 / coalesce(c.sample_step_s, 86400)) AS expected_samples,
           count(x.value) >= 0.5 * greatest(1, 86400 / coalesce(c.sample_step_s, 86400)) AS complete
    FROM samples x
    LEFT JOIN cadence c USING (series_name)
    LEFT JOIN series s ON s.name = x.series_name
    GROUP BY x.series_name, CAST(x.ts AS DATE), c.sample_step_s
    HAVING count(x.value) > 0
    """,
    """
    CREATE VIEW series_summary AS
    SELECT s.name AS series_name, s.source, s.unit, s.created_at, s.updated_at,
           count(x.value) AS samples, min(x.ts) AS first_ts, max(x.ts) AS last_ts,
           max(x.value) AS max_value
    FROM series s
    LEFT JOIN samples x ON x.series_name = s.name
    GROUP BY s.name, s.source, s.unit, s.created_at, s.updated_at
    """,
    # status uses the app's labels: a saturated step measured the generator, not the target.
    """
    CREATE VIEW step_summary AS
    SELECT s.run_id, r.kind AS run_kind, r.tool, r.target_url, r.started_at AS run_started_at,
           s.step_index, s.started_at, s.duration_s, s.offered_rps, s.achieved_rps,
           s.achieved_rps / nullif(s.offered_rps, 0) AS achieved_fraction,
           s.requests, s.ok_requests, s.errors, s.dropped, s.error_rate,
           s.mean_ms, s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.max_ms, s.service_p95_ms,
           r.slo_p95_ms, r.max_error_rate,
           s.send_lag_p99_ms, s.generator_cpu, s.generator_saturated, s.passed,
           CASE WHEN s.generator_saturated THEN 'generator saturated'
                WHEN s.passed THEN 'passed' ELSE 'failed' END AS status,
           s.fail_reason
    FROM steps s
    JOIN runs r USING (run_id)
    """,
    """
    CREATE VIEW run_summary AS
    SELECT r.run_id, r.kind, r.tool, r.target_url, r.started_at, r.finished_at, r.status, r.stop_reason,
           date_diff('millisecond', r.started_at, r.finished_at) / 1000.0 AS duration_s,
           r.slo_p95_ms, r.max_error_rate, r.breaking_point_rps, r.safe_rps, r.recommended_rps,
           count(s.step_index) AS steps,
           count(s.step_index) FILTER (WHERE s.passed) AS passed_steps,
           count(s.step_index) FILTER (WHERE s.generator_saturated) AS saturated_steps,
           max(s.offered_rps) AS max_offered_rps,
           max(s.achieved_rps) AS max_achieved_rps,
           max(s.offered_rps) FILTER (WHERE s.passed AND NOT s.generator_saturated) AS max_passed_rps,
           arg_max(s.p95_ms, s.offered_rps) FILTER (WHERE s.passed AND NOT s.generator_saturated)
               AS p95_ms_at_max_passed
    FROM runs r
    LEFT JOIN steps s USING (run_id)
    GROUP BY r.run_id, r.kind, r.tool, r.target_url, r.started_at, r.finished_at, r.status, r.stop_reason,
             r.slo_p95_ms, r.max_error_rate, r.breaking_point_rps, r.safe_rps, r.recommended_rps
    """,
    """
    CREATE VIEW latest_forecast AS
    WITH newest AS (
        SELECT forecast_id FROM forecasts
        QUALIFY row_number() OVER (PARTITION BY series_name ORDER BY created_at DESC, forecast_id DESC) = 1
    )
    SELECT f.forecast_id, f.series_name, f.created_at, f.model, f.resolution, f.level,
           f.history_end, CAST(p.ts AS DATE) AS day, p.yhat, p.lower, p.upper
    FROM newest n
    JOIN forecasts f ON f.forecast_id = n.forecast_id
    JOIN forecast_points p ON p.forecast_id = f.forecast_id
    """,
    # Every daily-peak forecast point that has a complete observed day after the
    # forecast's history: accuracy of forecasts made in the past.
    """
    CREATE VIEW forecast_vs_actual AS
    SELECT f.forecast_id, f.series_name, f.created_at AS forecast_created_at, f.model, f.level,
           CAST(f.history_end AS DATE) AS history_end_day,
           d.day,
           date_diff('day', CAST(f.history_end AS DATE), d.day) AS days_ahead,
           d.peak_value AS actual_peak,
           p.yhat, p.lower, p.upper,
           d.peak_value - p.yhat AS error,
           100.0 * abs(d.peak_value - p.yhat) / nullif(abs(d.peak_value), 0) AS abs_pct_error,
           d.peak_value BETWEEN p.lower AND p.upper AS within_interval,
           d.peak_value > p.upper AS above_upper
    FROM forecasts f
    JOIN forecast_points p ON p.forecast_id = f.forecast_id
    JOIN daily_peaks d ON d.series_name = f.series_name AND d.day = CAST(p.ts AS DATE)
    WHERE f.resolution = 'daily_peak' AND d.complete AND p.ts > f.history_end
    """,
    """
    CREATE VIEW forecast_accuracy AS
    SELECT forecast_id, series_name, forecast_created_at, model, level, history_end_day,
           min(day) AS first_day, max(day) AS last_day, count(*) AS days,
           max(days_ahead) AS max_days_ahead,
           avg(error) AS mean_error, avg(abs(error)) AS mean_abs_error, avg(abs_pct_error) AS mape_pct,
           avg(CAST(within_interval AS DOUBLE)) AS interval_coverage,
           count(*) FILTER (WHERE above_upper) AS days_above_upper
    FROM forecast_vs_actual
    GROUP BY forecast_id, series_name, forecast_created_at, model, level, history_end_day
    """,
    """
    CREATE VIEW forecast_accuracy_monthly AS
    SELECT forecast_id, series_name, forecast_created_at, level,
           CAST(date_trunc('month', day) AS DATE) AS month,
           count(*) AS days,
           avg(actual_peak) AS mean_actual_peak, avg(yhat) AS mean_yhat,
           max(actual_peak) AS max_actual_peak, max(yhat) AS max_yhat, max(upper) AS max_upper,
           avg(error) AS mean_error, avg(abs(error)) AS mean_abs_error, avg(abs_pct_error) AS mape_pct,
           avg(CAST(within_interval AS DOUBLE)) AS interval_coverage,
           count(*) FILTER (WHERE above_upper) AS days_above_upper
    FROM forecast_vs_actual
    GROUP BY forecast_id, series_name, forecast_created_at, level, CAST(date_trunc('month', day) AS DATE)
    """,
    """
    CREATE VIEW plan_summary AS
    SELECT p.plan_id, p.created_at, p.series_name, p.run_id, p.forecast_id, f.history_end,
           p.safe_rps_per_instance, p.redundancy, p.current_instances,
           (p.current_instances - p.redundancy) * p.safe_rps_per_instance AS fleet_capacity_rps,
           p.demand_quantile, p.runway_date,
           date_diff('day', CAST(f.history_end AS DATE), p.runway_date) AS runway_days,
           count(m.month) AS months, min(m.month) AS first_month, max(m.month) AS last_month,
           max(m.demand_rps) AS max_demand_rps, max(m.instances) AS max_instances,
           max(m.utilisation) AS max_utilisation
    FROM plans p
    LEFT JOIN forecasts f ON f.forecast_id = p.forecast_id
    LEFT JOIN plan_months m ON m.plan_id = p.plan_id
    GROUP BY p.plan_id, p.created_at, p.series_name, p.run_id, p.forecast_id, f.history_end,
             p.safe_rps_per_instance, p.redundancy, p.current_instances, p.demand_quantile, p.runway_date
    """,
    """
    CREATE VIEW latest_plan AS
    WITH newest AS (
        SELECT plan_id FROM plans
        QUALIFY row_number() OVER (PARTITION BY series_name ORDER BY created_at DESC, plan_id DESC) = 1
    )
    SELECT p.plan_id, p.created_at AS plan_created_at, p.series_name, p.run_id, p.forecast_id,
           p.safe_rps_per_instance, p.redundancy, p.current_instances, p.runway_date,
           m.month, m.months_ahead, m.demand_rps, m.demand_yhat_rps, m.instances,
           greatest(0, m.instances - p.current_instances) AS instances_to_add,
           (m.instances - p.redundancy) * p.safe_rps_per_instance AS capacity_rps,
           m.utilisation
    FROM newest n
    JOIN plans p ON p.plan_id = n.plan_id
    JOIN plan_months m ON m.plan_id = p.plan_id
    """,
    # Plan months against the complete days observed after the plan's forecast
    # history, with the instances that the observed peak would have needed.
    """
    CREATE VIEW plan_vs_actual AS
    SELECT p.plan_id, p.created_at AS plan_created_at, p.series_name, m.month, m.months_ahead,
           count(d.day) AS observed_days,
           m.demand_rps AS planned_demand_rps,
           max(d.peak_value) AS actual_peak_rps,
           m.instances AS planned_instances,
           CAST(greatest(1, ceil(round(max(d.peak_value) / p.safe_rps_per_instance, 9))) AS INTEGER)
               + p.redundancy AS instances_needed_for_actual,
           max(d.peak_value) > m.demand_rps AS actual_above_plan
    FROM plans p
    JOIN forecasts f ON f.forecast_id = p.forecast_id
    JOIN plan_months m ON m.plan_id = p.plan_id
    JOIN daily_peaks d ON d.series_name = p.series_name AND d.complete
        AND CAST(date_trunc('month', d.day) AS DATE) = m.month
        AND d.day > CAST(f.history_end AS DATE)
    GROUP BY p.plan_id, p.created_at, p.series_name, m.month, m.months_ahead, m.demand_rps, m.instances,
             p.safe_rps_per_instance, p.redundancy
    """,
]

# Runs imported from k6, JMeter, Locust and Gatling result files. The step
# columns model, users and concurrency_mean may already exist (the probe adds
# them too), hence IF NOT EXISTS.
_IMPORTED_RUNS = [
    "ALTER TABLE runs ADD COLUMN tool_version VARCHAR",  # version of the tool that wrote the file, when it says
    "ALTER TABLE runs ADD COLUMN workload_model VARCHAR",  # open | closed
    "ALTER TABLE runs ADD COLUMN source_file VARCHAR",  # absolute path of the imported file
    "ALTER TABLE runs ADD COLUMN source_format VARCHAR",  # k6-json | k6-csv | k6-summary | jmeter-csv | ...
    "ALTER TABLE runs ADD COLUMN utc_offset_min INTEGER",  # offset of the file's timestamps, minutes east of UTC
    "ALTER TABLE steps ADD COLUMN IF NOT EXISTS model VARCHAR",
    "ALTER TABLE steps ADD COLUMN IF NOT EXISTS users DOUBLE",
    "ALTER TABLE steps ADD COLUMN IF NOT EXISTS concurrency_mean DOUBLE",
    "ALTER TABLE steps ADD COLUMN ramp BOOLEAN",  # imported steps: true when the load level changed within the step
]

# What-if plans saved from the app's Scenarios page, one row per name. settings
# holds the overlays (in the row form of forecasting.scenarios.Scenario) and
# the policy: growth per year, SLO, headroom, redundancy, instance price, fleet.
_PLAN_SCENARIOS = [
    """
    CREATE TABLE plan_scenarios (
        name         VARCHAR PRIMARY KEY,
        created_at   TIMESTAMP NOT NULL,
        updated_at   TIMESTAMP NOT NULL,
        series_name  VARCHAR,                  -- demand series the scenario was made for
        run_id       BIGINT,                   -- load-test run whose steps gave the safe load
        settings     JSON NOT NULL
    )
    """,
]

# Prometheus collections, analyzer results, and the target's resources per
# load-test step. A Prometheus series is stored in series/samples as NAME or
# NAME{label="value",...}; prometheus_series splits that name back into the
# NAME given to 'capplan collect' (base_name) and the labels.
_PROMETHEUS = [
    "CREATE SEQUENCE IF NOT EXISTS prometheus_collection_id_seq START 1",
    """
    CREATE TABLE prometheus_collections (
        collection_id     BIGINT PRIMARY KEY DEFAULT nextval('prometheus_collection_id_seq'),
        series_name       VARCHAR NOT NULL,        -- NAME given to collect
        prometheus_url    VARCHAR NOT NULL,        -- base URL; credentials are never stored
        requested_query   VARCHAR NOT NULL,        -- the query as given
        query             VARCHAR NOT NULL,        -- the query sent (a bare counter wrapped in rate())
        step_s            INTEGER NOT NULL,
        window_start      TIMESTAMP NOT NULL,      -- first grid point requested
        window_end        TIMESTAMP NOT NULL,      -- last grid point requested
        started_at        TIMESTAMP NOT NULL,
        finished_at       TIMESTAMP,
        status            VARCHAR NOT NULL,        -- running | finished | failed | interrupted
        collected_until   TIMESTAMP,               -- last grid point of the last chunk written
        chunks_written    INTEGER NOT NULL DEFAULT 0,
        samples_written   BIGINT NOT NULL DEFAULT 0,
        error             VARCHAR
    )
    """,
    """
    CREATE VIEW prometheus_series AS
    SELECT s.name AS series_name,
           CASE WHEN strpos(s.name, '{') > 0 THEN left(s.name, strpos(s.name, '{') - 1) ELSE s.name END AS base_name,
           s.unit, s.labels, s.created_at, s.updated_at
    FROM series s
    WHERE s.source = 'prometheus'
    """,
    "CREATE SEQUENCE IF NOT EXISTS analysis_id_seq START 1",
    """
    CREATE TABLE analyses (
        analysis_id         BIGINT PRIMARY KEY DEFAULT nextval('analysis_id_seq'),
        created_at          TIMESTAMP NOT NULL,
        prometheus_url      VARCHAR NOT NULL,
        selector            VARCHAR,               -- label matchers added to every metric
        window_start        TIMESTAMP NOT NULL,
        window_end          TIMESTAMP NOT NULL,
        status              VARCHAR NOT NULL,      -- ok | warning | critical (worst bottleneck) | no_data
        throughput_rps      DOUBLE,                -- NULL when the metric has no data in the window
        error_rate          DOUBLE,                -- fraction of requests
        p95_ms              DOUBLE,
        p99_ms              DOUBLE,
        mean_ms             DOUBLE,
        cpu_cores           DOUBLE,                -- all instances together
        cpu_utilisation     DOUBLE,                -- busiest instance, fraction of its cores
        memory_bytes        DOUBLE,                -- largest instance, peak in the window
        memory_utilisation  DOUBLE,                -- largest instance, fraction of its limit
        instances           DOUBLE,                -- targets with up == 1
        thresholds          JSON NOT NULL,
        config              JSON NOT NULL          -- metric names and queries used
    )
    """,
    """
    CREATE TABLE analysis_bottlenecks (
        analysis_id     BIGINT NOT NULL,
        metric          VARCHAR NOT NULL,          -- p95_ms | p99_ms | error_rate | cpu_utilisation | ...
        severity        VARCHAR NOT NULL,          -- warning | critical
        value           DOUBLE NOT NULL,
        threshold       DOUBLE NOT NULL,
        unit            VARCHAR NOT NULL,
        recommendation  VARCHAR NOT NULL,
        PRIMARY KEY (analysis_id, metric)
    )
    """,
    "ALTER TABLE steps ADD COLUMN target_cpu_cores DOUBLE",  # cores the target used during the step
    "ALTER TABLE steps ADD COLUMN target_memory_bytes DOUBLE",  # the target's peak resident memory in the step
]

# Forecast selection: backtest scores per model and fold, measured interval
# coverage, 80 % and 95 % bounds per point, and scenario overlays. A forecast
# point at ts stands for [ts, ts + step_s); scenario_forecast_points applies
# the overlays the way forecasting.scenarios.apply_scenarios does.
_FORECAST_SELECTION = [
    "ALTER TABLE forecasts ADD COLUMN step_s DOUBLE",  # spacing of the points, 86400 for daily peaks
    "ALTER TABLE forecasts ADD COLUMN peak_statistic VARCHAR",  # max | q0.95 ...; NULL at the native resolution
    "ALTER TABLE forecasts ADD COLUMN backtest_mase DOUBLE",  # mean MASE of the chosen model; NULL without backtests
    "ALTER TABLE forecasts ADD COLUMN backtest_folds INTEGER",
    "ALTER TABLE forecasts ADD COLUMN backtest_horizon_steps INTEGER",
    "ALTER TABLE forecasts ADD COLUMN coverage_80 DOUBLE",  # measured in the backtests, of the stored 80 % bounds
    "ALTER TABLE forecasts ADD COLUMN coverage_95 DOUBLE",
    "ALTER TABLE forecasts ADD COLUMN coverage_level DOUBLE",  # the same, of the stored lower/upper at level
    "ALTER TABLE forecasts ADD COLUMN interval_method VARCHAR",  # model | conformal
    "ALTER TABLE forecasts ADD COLUMN selection_reason VARCHAR",
    "ALTER TABLE forecast_points ADD COLUMN lower_80 DOUBLE",
    "ALTER TABLE forecast_points ADD COLUMN upper_80 DOUBLE",
    "ALTER TABLE forecast_points ADD COLUMN lower_95 DOUBLE",
    "ALTER TABLE forecast_points ADD COLUMN upper_95 DOUBLE",
    """
    CREATE TABLE backtest_scores (
        forecast_id   BIGINT NOT NULL,
        model         VARCHAR NOT NULL,         -- model name, or median_ensemble
        fold          INTEGER NOT NULL,         -- 1 is the oldest origin
        origin        TIMESTAMP NOT NULL,       -- first forecast step of the fold
        train_points  INTEGER NOT NULL,
        test_points   INTEGER NOT NULL,         -- observed values scored
        mae           DOUBLE,
        mase          DOUBLE,                   -- MAE / mean absolute seasonal difference of the training data
        coverage_80   DOUBLE,                   -- of the model's own intervals, before recalibration
        coverage_95   DOUBLE,
        selected      BOOLEAN NOT NULL,
        PRIMARY KEY (forecast_id, model, fold)
    )
    """,
    "CREATE SEQUENCE IF NOT EXISTS forecast_scenario_id_seq START 1",
    """
    CREATE TABLE forecast_scenarios (
        scenario_id      BIGINT PRIMARY KEY DEFAULT nextval('forecast_scenario_id_seq'),
        forecast_id      BIGINT NOT NULL,
        position         INTEGER NOT NULL,      -- order given; the factors multiply, so order does not change values
        kind             VARCHAR NOT NULL,      -- growth | step | event
        start_ts         TIMESTAMP,             -- growth: from this time (the first point when NULL)
        end_ts           TIMESTAMP,             -- event: until this time, exclusive
        growth_per_year  DOUBLE,                -- growth: 0.2 is 20 % a year, compounded
        factor           DOUBLE,                -- step and event: 1.3 is +30 %
        label            VARCHAR,
        created_at       TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE VIEW scenario_forecast_points AS
    WITH first_points AS (
        SELECT forecast_id, min(ts) AS first_ts FROM forecast_points GROUP BY forecast_id
    ),
    factors AS (
        SELECT p.forecast_id, p.ts,
               product(CASE s.kind
                   WHEN 'growth' THEN power(1 + s.growth_per_year,
                        greatest(epoch(p.ts) - epoch(coalesce(s.start_ts, fp.first_ts)), 0) / (365.25 * 86400))
                   WHEN 'step' THEN CASE WHEN epoch(p.ts) + coalesce(f.step_s, 0) > epoch(s.start_ts)
                                         THEN s.factor ELSE 1 END
                   ELSE CASE WHEN epoch(p.ts) + coalesce(f.step_s, 0) > epoch(s.start_ts) AND p.ts < s.end_ts
                             THEN s.factor ELSE 1 END
               END) AS scenario_factor
        FROM forecast_points p
        JOIN forecasts f ON f.forecast_id = p.forecast_id
        JOIN first_points fp ON fp.forecast_id = p.forecast_id
        JOIN forecast_scenarios s ON s.forecast_id = p.forecast_id
        GROUP BY p.forecast_id, p.ts
    )
    SELECT p.forecast_id, p.ts,
           p.yhat * coalesce(x.scenario_factor, 1) AS yhat,
           p.lower * coalesce(x.scenario_factor, 1) AS lower,
           p.upper * coalesce(x.scenario_factor, 1) AS upper,
           p.lower_95 * coalesce(x.scenario_factor, 1) AS lower_95,
           p.upper_95 * coalesce(x.scenario_factor, 1) AS upper_95,
           coalesce(x.scenario_factor, 1) AS scenario_factor
    FROM forecast_points p
    LEFT JOIN factors x ON x.forecast_id = p.forecast_id AND x.ts = p.ts
    """,
    """
    CREATE VIEW backtest_summary AS
    SELECT forecast_id, model, count(*) AS folds, avg(mase) AS mean_mase, avg(mae) AS mean_mae,
           sum(coverage_80 * test_points) / nullif(sum(test_points), 0) AS coverage_80,
           sum(coverage_95 * test_points) / nullif(sum(test_points), 0) AS coverage_95,
           bool_or(selected) AS selected
    FROM backtest_scores
    GROUP BY forecast_id, model
    """,
    # Forecasts now come at several resolutions; this view keeps showing the
    # newest daily-peak forecast per series, which its day column assumes.
    """
    CREATE OR REPLACE VIEW latest_forecast AS
    WITH newest AS (
        SELECT forecast_id FROM forecasts
        WHERE resolution = 'daily_peak'
        QUALIFY row_number() OVER (PARTITION BY series_name ORDER BY created_at DESC, forecast_id DESC) = 1
    )
    SELECT f.forecast_id, f.series_name, f.created_at, f.model, f.resolution, f.level,
           f.history_end, CAST(p.ts AS DATE) AS day, p.yhat, p.lower, p.upper
    FROM newest n
    JOIN forecasts f ON f.forecast_id = n.forecast_id
    JOIN forecast_points p ON p.forecast_id = f.forecast_id
    """,
]

# Plan detail: per month the rate each serving instance carries, its predicted
# p95, the cost, the current fleet's probability of falling short and the
# scaling efficiency; per plan the price and the inputs behind every number.
_PLAN_DETAIL = [
    "ALTER TABLE plans ADD COLUMN inputs JSON",                     # run, capacity report, forecast and policy used
    "ALTER TABLE plans ADD COLUMN price_per_instance_hour DOUBLE",  # NULL when no price was given
    "ALTER TABLE plans ADD COLUMN fleet_capacity_rps DOUBLE",       # safe capacity of the current fleet's serving instances
    "ALTER TABLE plan_months ADD COLUMN per_instance_rps DOUBLE",   # demand / effective serving instances
    "ALTER TABLE plan_months ADD COLUMN p95_ms DOUBLE",             # predicted p95 at per_instance_rps; NULL without a latency model
    "ALTER TABLE plan_months ADD COLUMN hours DOUBLE",              # forecast hours of the month in the plan
    "ALTER TABLE plan_months ADD COLUMN cost DOUBLE",               # instances x hours x price; NULL without a price
    "ALTER TABLE plan_months ADD COLUMN shortfall_probability DOUBLE",           # P(some day exceeds the current fleet), days independent
    "ALTER TABLE plan_months ADD COLUMN shortfall_probability_peak_day DOUBLE",  # P(the riskiest day exceeds it), a lower bound
    "ALTER TABLE plan_months ADD COLUMN scaling_efficiency DOUBLE", # throughput of the serving instances / (n x one instance)
]

# samples without its primary key. Keeping the index of (series_name, ts) up
# to date made inserts 5 to 8 times slower (DuckDB 2.0.1, measured with
# bench/prometheus_ingest.py --stages). Every writer now deletes the stored
# rows at the keys it writes before inserting them, in one transaction
# (capplan.store.series, capplan.store.parquet_io and
# loadprobe.prometheus.sample_store), so a key still has at most one row.
# DuckDB 2.0.1 has no ALTER TABLE that drops a primary key, so the table is
# rebuilt. The views over samples are bound by name when queried, so they
# keep working.
_SAMPLES_WITHOUT_KEY = [
    """
    CREATE TABLE samples_without_key (
        series_name  VARCHAR NOT NULL,
        ts           TIMESTAMP NOT NULL,
        value        DOUBLE
    )
    """,
    "INSERT INTO samples_without_key SELECT series_name, ts, value FROM samples",
    "DROP TABLE samples",
    "ALTER TABLE samples_without_key RENAME TO samples",
]

# Peaks that skip NaN. Prometheus stores NaN for a value such as 0/0, and
# DuckDB orders NaN above every number, so max() over a day with one NaN
# sample was NaN. A NaN sample now counts as no sample, as forecasting.peaks
# treats it.
_PEAKS_SKIP_NAN = [
    """
    CREATE OR REPLACE VIEW daily_peaks AS
    WITH gaps AS (
        SELECT series_name,
               date_diff('second', lag(ts) OVER (PARTITION BY series_name ORDER BY ts), ts) AS gap_s
        FROM samples
    ),
    cadence AS (
        SELECT series_name,
               CASE WHEN median(gap_s) >= 60 THEN greatest(60, round(median(gap_s) / 60) * 60)
                    ELSE greatest(1, round(median(gap_s))) END AS sample_step_s
        FROM gaps
        WHERE gap_s > 0
        GROUP BY series_name
    ),
    numbers AS (
        SELECT series_name, ts, value FROM samples WHERE NOT isnan(value)
    )
    SELECT x.series_name,
           CAST(x.ts AS DATE) AS day,
           max(x.value) AS peak_value,
           any_value(s.unit) AS unit,
           count(x.value) AS samples,
           coalesce(c.sample_step_s, 86400) AS sample_step_s,
           greatest(1, 86400 / coalesce(c.sample_step_s, 86400)) AS expected_samples,
           count(x.value) >= 0.5 * greatest(1, 86400 / coalesce(c.sample_step_s, 86400)) AS complete
    FROM numbers x
    LEFT JOIN cadence c USING (series_name)
    LEFT JOIN series s ON s.name = x.series_name
    GROUP BY x.series_name, CAST(x.ts AS DATE), c.sample_step_s
    HAVING count(x.value) > 0
    """,
    """
    CREATE OR REPLACE VIEW series_summary AS
    SELECT s.name AS series_name, s.source, s.unit, s.created_at, s.updated_at,
           count(x.value) AS samples, min(x.ts) AS first_ts, max(x.ts) AS last_ts,
           max(x.value) FILTER (WHERE NOT isnan(x.value)) AS max_value
    FROM series s
    LEFT JOIN samples x ON x.series_name = s.name
    GROUP BY s.name, s.source, s.unit, s.created_at, s.updated_at
    """,
]

MIGRATIONS: list[list[str]] = [
    _V1,
    _PROBE_DETAIL,
    _ANALYST_VIEWS,
    _IMPORTED_RUNS,
    _PLAN_SCENARIOS,
    _PROMETHEUS,
    _FORECAST_SELECTION,
    _PLAN_DETAIL,
    _SAMPLES_WITHOUT_KEY,
    _PEAKS_SKIP_NAN,
]
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
