"""Per-step reports of Locust workers, merged into one step's statistics.

Each worker keeps its own latency histogram and counts for the step in
progress and sends them to the master when the step ends. The master merges
the reports, judges the step, and appends one JSON line per step to the step
log, which capplan reads while the run goes on. Everything in a report is a
count or an HdrHistogram, so the merge is exact, as it is for the built-in
engine's worker processes.

This module does not import Locust: importing it patches the process with
gevent, which the CLI process must not be.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capplan.errors import InputDataError
from loadprobe.histogram import LatencyHistogram

__all__ = ["StepStats", "StepLogReader", "merge_reports", "step_log_line"]

PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p95_ms": 95.0, "p99_ms": 99.0}


@dataclass(frozen=True)
class StepStats:
    """One step measured by Locust workers: its window in unix seconds, counts and merged latency in ms."""

    step_index: int
    started_at_s: float
    span_s: float
    requests: int
    failures: int
    latency: LatencyHistogram
    workers_expected: int
    workers_reported: int

    @property
    def mean_ms(self) -> float | None:
        return self.latency.mean_ms()

    @property
    def percentiles_ms(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {name: self.latency.percentile_ms(p) for name, p in PERCENTILES.items()}
        values["max_ms"] = self.latency.max_ms()
        return values


def merge_reports(
    step_index: int, started_at_s: float, ended_at_s: float, reports: list[dict[str, Any]], workers_expected: int
) -> StepStats:
    """Merge the workers' reports of one step.

    A report is ``{"requests": int, "failures": int, "hdr": str}`` with the
    HdrHistogram's base64 encoding, as the workers send it.
    """
    latency = LatencyHistogram()
    requests = failures = 0
    for report in reports:
        requests += int(report["requests"])
        failures += int(report["failures"])
        if report.get("hdr"):
            latency.merge(LatencyHistogram.decode(report["hdr"]))
    return StepStats(
        step_index=step_index,
        started_at_s=started_at_s,
        span_s=max(ended_at_s - started_at_s, 0.0),
        requests=requests,
        failures=failures,
        latency=latency,
        workers_expected=workers_expected,
        workers_reported=len(reports),
    )


def step_log_line(
    step_index: int,
    started_at_s: float,
    ended_at_s: float,
    reports: list[dict[str, Any]],
    workers_expected: int,
    peak_cpu_percent: float,
) -> str:
    """Return the step log's JSON line for one finished step, newline included."""
    record = {
        "step": step_index,
        "started_at_s": started_at_s,
        "ended_at_s": ended_at_s,
        "workers_expected": workers_expected,
        "peak_cpu_percent": peak_cpu_percent,
        "reports": reports,
    }
    return json.dumps(record) + "\n"


class StepLogReader:
    """Read the step log as the master appends to it, one finished step per complete line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def new_steps(self) -> list[tuple[StepStats, float]]:
        """Return the steps finished since the last call, each with its peak worker CPU in % of one core."""
        if not self.path.is_file():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        # A line without its newline is still being written; it is read on the next call.
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        steps = []
        for line in complete.decode().splitlines():
            try:
                record = json.loads(line)
                stats = merge_reports(
                    int(record["step"]), float(record["started_at_s"]), float(record["ended_at_s"]),
                    list(record["reports"]), int(record["workers_expected"]),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise InputDataError(f"the Locust step log {self.path} has an unreadable line: {exc}") from exc
            steps.append((stats, float(record["peak_cpu_percent"])))
        return steps
