"""k6 end-of-test summaries: ``--summary-export`` and ``handleSummary()`` JSON.

A summary has totals only, so the run becomes one step without a latency
histogram. Two layouts exist:

- ``--summary-export`` (the legacy flat layout) puts statistics straight on
  each metric, and a threshold's boolean is true when the threshold
  **failed**.
- ``handleSummary()`` data nests them under ``values`` and gives each
  threshold ``{"ok": bool}``; ``state.testRunDurationMs`` is the duration.

In both, ``passes`` of the rate metric ``http_req_failed`` counts the
requests that failed (a rate metric's passes are its non-zero samples).
Neither layout has a start time: it comes from ``--started-at`` or, failing
that, the file's modification time minus the test duration.
"""

from __future__ import annotations

import json
import logging
from datetime import timezone
from typing import Any

from capplan.errors import InputDataError
from loadprobe.importers.detect import Detected
from loadprobe.importers.model import ImportOptions, ParsedRun, RunInfo
from loadprobe.importers.source import MalformedLines, SourceFile
from loadprobe.importers.step_rows import summary_step_row

__all__ = ["parse_k6_summary", "summary_start_s"]

logger = logging.getLogger(__name__)

_PERCENTILE_KEYS = {"mean": "avg", "p50": "med", "p90": "p(90)", "p95": "p(95)", "p99": "p(99)", "max": "max"}


def parse_k6_summary(
    source: SourceFile, detected: Detected, options: ImportOptions, malformed: MalformedLines
) -> list[ParsedRun]:
    try:
        with source.open_text() as stream:
            document = json.load(stream)
    except json.JSONDecodeError as exc:
        raise InputDataError(
            f"{source.path} line {exc.lineno}: invalid JSON in the k6 summary ({exc.msg}); check that the file is complete"
        ) from exc
    metrics = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(metrics, dict):
        raise InputDataError(f"{source.path} is JSON without a \"metrics\" object; expected a k6 summary export")
    nested = any(isinstance(metric, dict) and isinstance(metric.get("values"), dict) for metric in metrics.values())

    def stat(metric: str, key: str) -> float | None:
        entry = metrics.get(metric)
        if not isinstance(entry, dict):
            return None
        values = entry.get("values", {}) if nested else entry
        value = values.get(key) if isinstance(values, dict) else None
        return float(value) if isinstance(value, (int, float)) else None

    requests = stat("http_reqs", "count")
    if requests is None:
        raise InputDataError(f"{source.path}: the k6 summary has no http_reqs count, so the test made no HTTP requests")
    duration_s = _duration_s(document, nested, requests, stat("http_reqs", "rate"), source)

    info = RunInfo(tool="k6", source_format="k6-handle-summary" if nested else "k6-summary-export")
    errors = stat("http_req_failed", "passes")
    if errors is None:
        errors = 0.0
        info.notes.append("no http_req_failed metric (k6 before 0.31): failed requests are unknown and stored as 0")
    dropped_iterations = stat("dropped_iterations", "count") or 0.0
    iterations = stat("iterations", "count")
    requests_per_iteration = requests / iterations if iterations else 1.0
    info.workload_model = options.workload_model or ("open" if "dropped_iterations" in metrics else "closed")
    info.config["k6_thresholds"] = _thresholds(metrics, nested)
    failed_thresholds = [entry for entry in info.config["k6_thresholds"] if not entry["ok"]]
    if failed_thresholds:
        logger.info(
            "%s: %d k6 threshold(s) failed: %s",
            source.path,
            len(failed_thresholds),
            ", ".join(f"{entry['metric']} {entry['threshold']}" for entry in failed_thresholds),
        )

    percentiles = {name: stat("http_req_duration", key) for name, key in _PERCENTILE_KEYS.items()}
    users = None
    if info.workload_model == "closed":
        users = stat("vus_max", "max") or stat("vus_max", "value") or stat("vus", "max")
    row = summary_step_row(
        step_index=0,
        started_at_s=summary_start_s(source, options, duration_s, info),
        duration_s=duration_s,
        requests=int(requests),
        errors_by_kind={"unclassified": int(errors)} if errors else {},
        percentiles_ms=percentiles,
        dropped=int(round(dropped_iterations * requests_per_iteration)),
        users=users,
        model=info.workload_model,
    )
    return [ParsedRun(info=info, steps=[row])]


def summary_start_s(source: SourceFile, options: ImportOptions, duration_s: float, info: RunInfo) -> float:
    """Return the start of a run whose file has no timestamps, noting where it came from."""
    if options.started_at is not None:
        started = options.started_at
        if started.tzinfo is None:
            started = started.replace(tzinfo=timezone.utc)
        return started.timestamp()
    start_s = source.path.stat().st_mtime - duration_s
    info.notes.append("start time estimated as the file's modification time minus the test duration")
    logger.info(
        "%s has no timestamps; the run's start is taken as the file's modification time minus %.0f s. "
        "Pass --started-at to set it",
        source.path,
        duration_s,
    )
    return start_s


def _duration_s(document: dict[str, Any], nested: bool, requests: float, rate: float | None, source: SourceFile) -> float:
    state = document.get("state")
    if nested and isinstance(state, dict) and isinstance(state.get("testRunDurationMs"), (int, float)):
        duration_s = float(state["testRunDurationMs"]) / 1000.0
    elif rate:
        # k6 computes a counter's rate over the whole test, so count / rate is its duration.
        duration_s = requests / rate
    else:
        raise InputDataError(
            f"{source.path}: the k6 summary has neither a test duration nor an http_reqs rate, so rates cannot be computed"
        )
    if not duration_s > 0:
        raise InputDataError(f"{source.path}: the k6 summary gives a test duration of {duration_s:g} s; it must be positive")
    return duration_s


def _thresholds(metrics: dict[str, Any], nested: bool) -> list[dict[str, Any]]:
    results = []
    for name, entry in metrics.items():
        thresholds = entry.get("thresholds") if isinstance(entry, dict) else None
        if not isinstance(thresholds, dict):
            continue
        for expression, outcome in thresholds.items():
            if nested:
                ok = bool(outcome.get("ok")) if isinstance(outcome, dict) else bool(outcome)
            else:
                # --summary-export writes true for a threshold that failed.
                ok = not bool(outcome)
            results.append({"metric": name, "threshold": expression, "ok": ok})
    return results
