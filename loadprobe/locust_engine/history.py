"""Cutting Locust's stats history CSV into steps.

``locust --csv PREFIX --csv-full-history`` appends one ``Aggregated`` row to
``PREFIX_stats_history.csv`` about once a second (Locust 2.47). Its totals
(``Total Request Count``, ``Total Failure Count``, ``Total Average Response
Time``) are cumulative since the start, so a step's counts and mean latency
are exact differences between the rows at its boundaries. Its percentile
columns are Locust's own estimates over the last ~10 seconds
(``CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW`` in locust.stats), with response
times rounded into buckets. A step's percentiles are those of the last row
inside the step, so a step shorter than 10 s mixes in the previous step.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from capplan.errors import InputDataError

__all__ = ["HistoryRow", "StepStats", "read_history", "read_step_log", "cut_steps"]

AGGREGATED = "Aggregated"
PERCENTILE_COLUMNS = {"p50_ms": "50%", "p90_ms": "90%", "p95_ms": "95%", "p99_ms": "99%", "max_ms": "100%"}


@dataclass(frozen=True)
class HistoryRow:
    """One Aggregated row: unix time in s, cumulative counts, cumulative mean and window percentiles in ms."""

    time_s: int
    users: int
    total_requests: int
    total_failures: int
    total_mean_ms: float
    percentiles_ms: dict[str, float | None]


@dataclass(frozen=True)
class StepStats:
    """One step's statistics from the history: counts, the seconds they span, and latency in ms."""

    step_index: int
    started_at_s: float
    span_s: float
    requests: int
    failures: int
    mean_ms: float | None
    percentiles_ms: dict[str, float | None]


def _number(text: str) -> float | None:
    return None if text in ("", "N/A") else float(text)


def read_history(path: Path) -> list[HistoryRow]:
    """Return the Aggregated rows of a stats history CSV in time order."""
    if not path.is_file():
        raise InputDataError(f"Locust wrote no stats history at {path}; check the master's log next to it")
    rows = []
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            if record.get("Name") != AGGREGATED:
                continue
            rows.append(
                HistoryRow(
                    time_s=int(record["Timestamp"]),
                    users=int(record["User Count"]),
                    total_requests=int(record["Total Request Count"]),
                    total_failures=int(record["Total Failure Count"]),
                    total_mean_ms=float(record["Total Average Response Time"]),
                    percentiles_ms={key: _number(record[column]) for key, column in PERCENTILE_COLUMNS.items()},
                )
            )
    rows.sort(key=lambda row: row.time_s)
    return rows


def read_step_log(path: Path) -> tuple[list[float], list[float]]:
    """Return the step boundaries (unix s; the last is the end) and each step's peak worker CPU in % of one core."""
    if not path.is_file():
        raise InputDataError(f"the Locust shape wrote no step log at {path}; the master did not start the test")
    entries: dict[int, tuple[float, float]] = {}
    for line in path.read_text().splitlines():
        index, moment, cpu = line.split(",")
        entries.setdefault(int(index), (float(moment), float(cpu)))
    ordered = [entries[index] for index in sorted(entries)]
    # Each line carries the peak CPU of the step before it.
    return [moment for moment, _ in ordered], [cpu for _, cpu in ordered[1:]]


def cut_steps(rows: list[HistoryRow], boundaries_s: list[float]) -> list[StepStats]:
    """Return one StepStats per interval between consecutive ``boundaries_s`` (unix seconds)."""
    steps = []
    for index, (start, end) in enumerate(zip(boundaries_s, boundaries_s[1:])):
        first = _last_at_or_before(rows, start)
        last = _last_at_or_before(rows, end)
        if first is None or last is None or last.time_s <= first.time_s:
            continue  # the history has no row inside this step yet
        requests = last.total_requests - first.total_requests
        failures = last.total_failures - first.total_failures
        mean_ms = None
        if requests > 0:
            summed_ms = last.total_mean_ms * last.total_requests - first.total_mean_ms * first.total_requests
            mean_ms = summed_ms / requests
        steps.append(
            StepStats(
                step_index=index,
                started_at_s=start,
                span_s=float(last.time_s - first.time_s),
                requests=requests,
                failures=failures,
                mean_ms=mean_ms,
                percentiles_ms=dict(last.percentiles_ms),
            )
        )
    return steps


def _last_at_or_before(rows: list[HistoryRow], moment_s: float) -> HistoryRow | None:
    found = None
    for row in rows:
        if row.time_s > moment_s:
            break
        found = row
    return found
