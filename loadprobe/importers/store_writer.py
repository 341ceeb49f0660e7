"""Writing imported runs and their steps to the store in one transaction.

Everything in a file is parsed and judged before this is called, so a file
that fails to parse leaves the store untouched, and a file with several runs
is stored completely or not at all.
"""

from __future__ import annotations

import json
from datetime import timedelta
from dataclasses import dataclass
from typing import Any

from capplan.store import Store
from capplan.store.runs import STEP_COLUMNS
from loadprobe.importers.model import RunInfo
from loadprobe.importers.verdict import RunVerdict

__all__ = ["StoredRun", "write_runs", "STEP_INSERT_COLUMNS"]

# The probe's step columns plus the ramp flag that only imported steps fill.
STEP_INSERT_COLUMNS = (*STEP_COLUMNS, "ramp")
# Values for probe-only columns that an imported step leaves out: NULL would
# read as unknown where the answer is known to be "no".
_STEP_DEFAULTS = {"target_saturated": False, "interrupted": False}


@dataclass
class StoredRun:
    """A run ready to be written: its facts, its steps and its verdict."""

    info: RunInfo
    steps: list[dict[str, Any]]
    verdict: RunVerdict
    source_file: str
    slo_p95_ms: float | None
    max_error_rate: float | None
    config: dict[str, Any]


def write_runs(store: Store, runs: list[StoredRun]) -> list[int]:
    """Insert every run and its steps in one transaction and return the new run ids in order."""
    run_ids = []
    placeholders = ", ".join("?" for _ in range(len(STEP_INSERT_COLUMNS) + 1))
    insert_step = f"INSERT INTO steps (run_id, {', '.join(STEP_INSERT_COLUMNS)}) VALUES ({placeholders})"
    with store.write() as con:
        for run in runs:
            first = run.steps[0]
            last = run.steps[-1]
            finished_at = last["started_at"] + timedelta(seconds=last["duration_s"])
            row = con.execute(
                """
                INSERT INTO runs (kind, tool, target_url, started_at, finished_at, status, stop_reason,
                    slo_p95_ms, max_error_rate, breaking_point_rps, safe_rps, recommended_rps, config,
                    tool_version, workload_model, source_file, source_format, utc_offset_min)
                VALUES ('imported', ?, ?, ?, ?, 'finished', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                RETURNING run_id
                """,
                [
                    run.info.tool,
                    run.info.target_url,
                    first["started_at"],
                    finished_at,
                    run.verdict.stop_reason,
                    run.slo_p95_ms,
                    run.max_error_rate,
                    run.verdict.breaking_point_rps,
                    run.verdict.safe_rps,
                    run.verdict.recommended_rps,
                    json.dumps(run.config, default=str),
                    run.info.tool_version,
                    run.info.workload_model,
                    run.source_file,
                    run.info.source_format,
                    run.info.utc_offset_min,
                ],
            ).fetchone()
            assert row is not None
            run_id = int(row[0])
            con.executemany(insert_step, [[run_id, *_step_values(step)] for step in run.steps])
            run_ids.append(run_id)
    return run_ids


def _step_values(step: dict[str, Any]) -> list[Any]:
    values = []
    for column in STEP_INSERT_COLUMNS:
        value = step.get(column, _STEP_DEFAULTS.get(column))
        if column == "errors_by_kind":
            value = json.dumps(value or {})
        values.append(value)
    return values
