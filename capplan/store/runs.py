"""Load-test runs and their steps in the store.

A run row is written before the first request is sent, each step is written in
its own transaction as soon as it finishes, and the run row is updated at the
end. An interrupted or crashed run therefore keeps every finished step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from capplan.errors import NotFoundError
from capplan.store.connection import Store

__all__ = [
    "STEP_COLUMNS",
    "SCENARIO_COLUMNS",
    "create_run",
    "add_step",
    "finish_run",
    "get_run",
    "list_runs",
    "get_steps",
    "get_step_scenarios",
]

STEP_COLUMNS = (
    "step_index",
    "started_at",
    "duration_s",
    "offered_rps",
    "achieved_rps",
    "requests",
    "ok_requests",
    "errors",
    "dropped",
    "error_rate",
    "errors_by_kind",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "service_p95_ms",
    "send_lag_p99_ms",
    "generator_cpu",
    "generator_saturated",
    "passed",
    "fail_reason",
    "latency_hdr",
    "model",
    "users",
    "service_hdr",
    "send_lag_hdr",
    "in_flight_max",
    "concurrency_mean",
    "target_saturated",
    "generator_processes",
    "machine_cpu_busy",
    "interrupted",
    "target_cpu_cores",
    "target_memory_bytes",
)

SCENARIO_COLUMNS = (
    "scenario",
    "requests",
    "ok_requests",
    "errors",
    "error_rate",
    "errors_by_kind",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "latency_hdr",
    "service_hdr",
)


def create_run(
    store: Store,
    *,
    kind: str,
    target_url: str | None,
    started_at: datetime,
    slo_p95_ms: float | None,
    max_error_rate: float | None,
    config: Mapping[str, Any],
    tool: str = "capplan",
) -> int:
    """Insert a run with status ``running`` and return its id."""
    with store.write() as con:
        row = con.execute(
            """
            INSERT INTO runs (kind, tool, target_url, started_at, status, slo_p95_ms, max_error_rate, config)
            VALUES (?, ?, ?, ?, 'running', ?, ?, ?)
            RETURNING run_id
            """,
            [kind, tool, target_url, started_at, slo_p95_ms, max_error_rate, json.dumps(dict(config))],
        ).fetchone()
    assert row is not None
    return int(row[0])


def _row_values(row: Mapping[str, Any], columns: tuple[str, ...]) -> list[Any]:
    values = []
    for column in columns:
        value = row.get(column)
        if column == "errors_by_kind":
            value = json.dumps(value or {})
        values.append(value)
    return values


def add_step(
    store: Store,
    run_id: int,
    step: Mapping[str, Any],
    scenarios: list[Mapping[str, Any]] | None = None,
) -> None:
    """Insert one finished step of a run and its per-scenario rows, in one transaction.

    Columns missing from ``step`` are stored as NULL.
    """
    step_placeholders = ", ".join("?" for _ in range(len(STEP_COLUMNS) + 1))
    scenario_placeholders = ", ".join("?" for _ in range(len(SCENARIO_COLUMNS) + 2))
    with store.write() as con:
        con.execute(
            f"INSERT INTO steps (run_id, {', '.join(STEP_COLUMNS)}) VALUES ({step_placeholders})",
            [run_id, *_row_values(step, STEP_COLUMNS)],
        )
        for scenario in scenarios or []:
            con.execute(
                f"INSERT INTO step_scenarios (run_id, step_index, {', '.join(SCENARIO_COLUMNS)}) "
                f"VALUES ({scenario_placeholders})",
                [run_id, step["step_index"], *_row_values(scenario, SCENARIO_COLUMNS)],
            )


def finish_run(
    store: Store,
    run_id: int,
    *,
    status: str,
    finished_at: datetime,
    stop_reason: str | None,
    exit_reason: str | None = None,
    breaking_point_rps: float | None,
    safe_rps: float | None,
    recommended_rps: float | None,
) -> None:
    """Record how a run ended and the load levels derived from its steps."""
    with store.write() as con:
        con.execute(
            """
            UPDATE runs SET status = ?, finished_at = ?, stop_reason = ?, exit_reason = ?,
                breaking_point_rps = ?, safe_rps = ?, recommended_rps = ?
            WHERE run_id = ?
            """,
            [status, finished_at, stop_reason, exit_reason, breaking_point_rps, safe_rps, recommended_rps, run_id],
        )


def get_run(store: Store, run_id: int) -> dict[str, Any]:
    """Return one run as a dict, or raise NotFoundError naming the known ids."""
    with store.read() as con:
        df = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).df()
        if df.empty:
            known = [int(r[0]) for r in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]
    if df.empty:
        hint = f"known runs: {', '.join(map(str, known[-10:]))}" if known else "the store has no runs yet; run 'capplan probe step' first"
        raise NotFoundError(f"run {run_id} not found in {store.path}; {hint}")
    return df.iloc[0].to_dict()


def list_runs(store: Store) -> pd.DataFrame:
    """Return all runs, newest first."""
    with store.read() as con:
        return con.execute("SELECT * FROM runs ORDER BY run_id DESC").df()


def get_steps(store: Store, run_id: int) -> pd.DataFrame:
    """Return the steps of a run in order."""
    with store.read() as con:
        return con.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY step_index", [run_id]).df()


def get_step_scenarios(store: Store, run_id: int) -> pd.DataFrame:
    """Return the per-scenario rows of a run's steps, in step and scenario order."""
    with store.read() as con:
        return con.execute(
            "SELECT * FROM step_scenarios WHERE run_id = ? ORDER BY step_index, scenario", [run_id]
        ).df()
