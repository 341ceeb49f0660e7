"""Locust ``--csv PREFIX`` files: ``_stats_history.csv``, ``_stats.csv``, ``_failures.csv``.

Any of the three may be given; the others are found beside it by the shared
prefix. Locust 1.0 and later write the columns read here (source read:
locust 2.47 ``locust/stats.py``):

- ``_stats_history.csv``: a row a second with ``User Count``, cumulative
  totals (``Total Request Count``, ``Total Failure Count``, ``Total Average
  Response Time``, ``Total Max Response Time``) and percentile columns
  (``50%`` ... ``100%``), which are ``N/A`` before the first request. The
  percentiles cover the last 10 s only with ``--csv-full-history``, and the
  file then also has a row per endpoint. Without it they are cumulative since
  the start.
- ``_stats.csv``: the totals of the whole test, one row per endpoint and an
  ``Aggregated`` row.
- ``_failures.csv``: ``Error`` and ``Occurrences`` per endpoint, for the
  run as a whole.

Locust keeps response times rounded to two significant digits above 100 ms,
so a percentile can exceed the exact maximum and a higher percentile can
read lower than a lower one. Percentiles are therefore made non-decreasing
and capped at the exact ``Max Response Time``, which is the maximum stored.

Steps come from the history's user count. Per step, requests, failures and
the mean are exact differences of the cumulative totals. The percentiles are
estimates: the median of the step's 10-second windows (full history), or
the distribution of the step's own requests recovered from the cumulative
distributions at the step's start and end, interpolated between the
percentile columns.
"""

from __future__ import annotations

import bisect
import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capplan.errors import InputDataError
from loadprobe.importers.detect import Detected, detect_format
from loadprobe.importers.error_kinds import kind_from_text
from loadprobe.importers.k6_summary import summary_start_s
from loadprobe.importers.model import ImportOptions, ParsedRun, RunInfo
from loadprobe.importers.source import MalformedLines, SourceFile
from loadprobe.importers.step_rows import summary_step_row
from loadprobe.importers.step_split import split_steps

__all__ = ["parse_locust_csv", "monotone_percentiles"]

logger = logging.getLogger(__name__)

_SUFFIXES = {"locust-history": "_stats_history.csv", "locust-stats": "_stats.csv", "locust-failures": "_failures.csv"}
_PERCENTILE_COLUMN = re.compile(r"^(\d+(?:\.\d+)?)%$")
_STORED_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
WINDOW_S = 10  # Locust's CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW


@dataclass
class _HistoryRow:
    time_s: int
    users: float
    total_requests: int
    total_failures: int
    total_mean_ms: float
    total_min_ms: float
    total_max_ms: float
    percentiles: dict[float, float]  # percentile (0-100) -> ms; empty before the first request


def monotone_percentiles(values: dict[float, float], max_ms: float | None) -> dict[float, float]:
    """Return the percentiles made non-decreasing and capped at the exact maximum."""
    result = {}
    running = 0.0
    for percentile in sorted(values):
        running = max(running, values[percentile])
        result[percentile] = min(running, max_ms) if max_ms is not None else running
    return result


def parse_locust_csv(
    source: SourceFile, detected: Detected, options: ImportOptions, malformed: MalformedLines
) -> list[ParsedRun]:
    files = _sibling_files(source, detected)
    info = RunInfo(tool="locust", source_format="locust-csv", workload_model=options.workload_model or "closed")
    kinds = _read_failures(files["locust-failures"], malformed) if "locust-failures" in files else {}
    if kinds:
        info.config["locust_failures"] = kinds
    if "locust-history" in files:
        steps = _history_steps(files["locust-history"], options, info, kinds, malformed)
        info.config["locust_files"] = {key: str(value.path) for key, value in files.items()}
        return [ParsedRun(info=info, steps=steps)]
    if "locust-stats" in files:
        steps = [_stats_step(files["locust-stats"], options, info, kinds, malformed)]
        info.notes.append("no _stats_history.csv beside the stats: the whole test is one step")
        return [ParsedRun(info=info, steps=steps)]
    raise InputDataError(
        f"{source.path} contains only Locust failures; import the _stats_history.csv (or _stats.csv) file of the same run, "
        "and the failures beside it are read too"
    )


def _sibling_files(source: SourceFile, detected: Detected) -> dict[str, SourceFile]:
    files = {detected.format: source}
    name = source.path.name
    suffix = _SUFFIXES[detected.format]
    gz = ".gz" if name.endswith(".gz") else ""
    stem = name[: -len(gz)] if gz else name
    if not stem.endswith(suffix):
        return files
    prefix = stem[: -len(suffix)]
    for kind, other_suffix in _SUFFIXES.items():
        if kind in files:
            continue
        for candidate in (source.path.with_name(prefix + other_suffix), source.path.with_name(prefix + other_suffix + ".gz")):
            if candidate.is_file():
                sibling = SourceFile(candidate)
                try:
                    sibling_format = detect_format(sibling).format
                except InputDataError as exc:
                    logger.warning("%s: ignoring %s beside it: %s", source.path, candidate.name, exc)
                    break
                if sibling_format == kind:
                    files[kind] = sibling
                    logger.info("%s: reading %s beside it", source.path, candidate.name)
                break
    return files


def _rows(source: SourceFile, malformed: MalformedLines) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    with source.open_text(newline="") as stream:
        reader = csv.reader(stream)
        header = [name.strip() for name in next(reader, [])]
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                malformed.add(reader.line_num, f"{len(row)} fields where the header has {len(header)} ({source.path.name})")
                continue
            rows.append((reader.line_num, dict(zip(header, row))))
    return header, rows


def _read_failures(source: SourceFile, malformed: MalformedLines) -> dict[str, int]:
    _, rows = _rows(source, malformed)
    kinds: dict[str, int] = {}
    for line, row in rows:
        try:
            occurrences = int(row["Occurrences"])
        except (KeyError, ValueError):
            malformed.add(line, f"invalid Occurrences {row.get('Occurrences')!r} ({source.path.name})")
            continue
        kind = kind_from_text(row.get("Error", ""))
        kinds[kind] = kinds.get(kind, 0) + occurrences
    return kinds


def _step_kinds(errors: int, kinds: dict[str, int]) -> dict[str, int]:
    """Attribute a step's failures to a kind when the run had only one kind, else leave them unclassified."""
    if not errors:
        return {}
    if len(kinds) == 1:
        return {next(iter(kinds)): errors}
    return {"unclassified": errors}


def _number(text: str) -> float:
    return float(text) if text.strip() not in ("", "N/A") else 0.0


def _history_rows(source: SourceFile, malformed: MalformedLines) -> tuple[list[_HistoryRow], bool]:
    header, rows = _rows(source, malformed)
    percentile_columns = {name: float(m.group(1)) for name in header if (m := _PERCENTILE_COLUMN.match(name))}
    full_history = False
    history = []
    for line, row in rows:
        if row.get("Name") != "Aggregated":
            full_history = True
            continue
        try:
            percentiles = {
                value: float(row[name]) for name, value in percentile_columns.items() if row[name].strip() != "N/A"
            }
            history.append(
                _HistoryRow(
                    time_s=int(float(row["Timestamp"])),
                    users=float(row["User Count"]),
                    total_requests=int(_number(row["Total Request Count"])),
                    total_failures=int(_number(row["Total Failure Count"])),
                    total_mean_ms=_number(row["Total Average Response Time"]),
                    total_min_ms=_number(row["Total Min Response Time"]),
                    total_max_ms=_number(row["Total Max Response Time"]),
                    percentiles=percentiles,
                )
            )
        except (KeyError, ValueError) as exc:
            malformed.add(line, f"invalid history row ({exc})")
    history.sort(key=lambda item: item.time_s)
    return history, full_history


def _history_steps(
    source: SourceFile, options: ImportOptions, info: RunInfo, kinds: dict[str, int], malformed: MalformedLines
) -> list[dict[str, Any]]:
    all_rows, full_history = _history_rows(source, malformed)
    history = [row for row in all_rows if row.total_requests > 0 or row.users > 0]
    if not history:
        raise InputDataError(f"{source.path} has no Aggregated rows with users or requests; the test sent nothing")
    info.notes.append(
        "step percentiles are medians of Locust's 10 s windows"
        if full_history
        else "step percentiles are estimated from Locust's cumulative percentiles"
    )

    origin_s = history[0].time_s
    seconds = history[-1].time_s - origin_s + 1
    level = np.full(seconds, np.nan)
    for row in history:
        level[row.time_s - origin_s] = row.users
    windows = split_steps(
        level,
        origin_s,
        kind="users",
        min_step_s=options.min_step_s,
        ramp_window_s=options.ramp_window_s,
        fixed_window_s=options.fixed_window_s,
    )

    steps: list[dict[str, Any]] = []
    # The idle row just before the first request is the baseline, because each
    # row's totals include the second that ended at its timestamp.
    idle_before = [row for row in all_rows if row.time_s < history[0].time_s]
    previous: _HistoryRow | None = idle_before[-1] if idle_before else None
    times = [row.time_s for row in history]
    for window in windows:
        inside = history[bisect.bisect_left(times, window.start_s) : bisect.bisect_left(times, window.end_s)]
        if not inside:
            continue
        last = inside[-1]
        requests = last.total_requests - (previous.total_requests if previous else 0)
        if requests <= 0:
            previous = last
            continue
        failures = last.total_failures - (previous.total_failures if previous else 0)

        if full_history:
            estimate = _window_percentiles(inside, window.start_s)
        else:
            estimate = _step_distribution(previous, last)
        percentiles = _step_percentiles(previous, last, requests, estimate)
        start_s = previous.time_s if previous else window.start_s - 1

        steps.append(
            summary_step_row(
                step_index=len(steps),
                started_at_s=float(start_s),
                duration_s=float(max(last.time_s - start_s, 1)),
                requests=requests,
                errors_by_kind=_step_kinds(failures, kinds),
                percentiles_ms=percentiles,
                users=max(row.users for row in inside) if info.workload_model == "closed" else None,
                model=info.workload_model,
                ramp=window.ramp,
            )
        )
        previous = last
    return steps


def _window_percentiles(inside: list[_HistoryRow], window_start_s: float) -> dict[float, float]:
    """Return the median over the step's rows of each 10-second-window percentile."""
    settled = [row for row in inside if row.time_s >= window_start_s + WINDOW_S and row.percentiles] or [
        row for row in inside if row.percentiles
    ]
    if not settled:
        return {}
    keys = set.intersection(*(set(row.percentiles) for row in settled))
    return {key: float(np.median([row.percentiles[key] for row in settled])) for key in keys}


def _cumulative_points(row: _HistoryRow) -> tuple[np.ndarray, np.ndarray]:
    """Return (latency ms, cumulative fraction) points of a row's distribution, starting at its minimum."""
    ordered = monotone_percentiles(row.percentiles, None)
    latencies = [row.total_min_ms] + [ordered[p] for p in sorted(ordered)]
    fractions = [0.0] + [p / 100.0 for p in sorted(ordered)]
    return np.maximum.accumulate(np.array(latencies)), np.array(fractions)


def _step_distribution(previous: _HistoryRow | None, last: _HistoryRow) -> dict[float, float]:
    """Return the percentiles of the requests between two cumulative rows.

    With N1 and N2 requests and cumulative distributions F1 and F2, the
    step's requests below x number N2 F2(x) - N1 F1(x). Each F is known at
    the percentile columns and interpolated linearly between them, so the
    result is an estimate whose error grows when the step is small beside
    what came before.
    """
    if not last.percentiles:
        return {}
    if previous is None or previous.total_requests == 0 or not previous.percentiles:
        return dict(last.percentiles)
    x2, f2 = _cumulative_points(last)
    x1, f1 = _cumulative_points(previous)
    grid = np.unique(np.concatenate([x1, x2]))
    n1, n2 = previous.total_requests, last.total_requests
    step_cdf = (n2 * np.interp(grid, x2, f2, left=0.0, right=1.0) - n1 * np.interp(grid, x1, f1, left=0.0, right=1.0)) / (n2 - n1)
    step_cdf = np.maximum.accumulate(np.clip(step_cdf, 0.0, 1.0))
    result = {}
    for percentile in last.percentiles:
        target = percentile / 100.0
        reached = np.flatnonzero(step_cdf >= target - 1e-12)
        result[percentile] = float(grid[reached[0]]) if reached.size else float(grid[-1])
    return result


def _step_percentiles(
    previous: _HistoryRow | None, last: _HistoryRow, requests: int, estimate: dict[float, float]
) -> dict[str, float | None]:
    previous_requests = previous.total_requests if previous else 0
    previous_sum = previous.total_mean_ms * previous_requests if previous else 0.0
    mean_ms = (last.total_mean_ms * last.total_requests - previous_sum) / requests
    if previous is None or last.total_max_ms > previous.total_max_ms:
        max_ms: float | None = last.total_max_ms  # the running maximum rose in this step, so it is the step's own
    else:
        max_ms = min(estimate.get(100.0, previous.total_max_ms), previous.total_max_ms)
    ordered = monotone_percentiles(estimate, max_ms)
    percentiles: dict[str, float | None] = {name: ordered.get(value) for name, value in _STORED_PERCENTILES.items()}
    percentiles["mean"] = max(mean_ms, 0.0)
    percentiles["max"] = max_ms
    return percentiles


def _stats_step(
    source: SourceFile, options: ImportOptions, info: RunInfo, kinds: dict[str, int], malformed: MalformedLines
) -> dict[str, Any]:
    header, rows = _rows(source, malformed)
    aggregated = next((row for _, row in rows if row.get("Name") == "Aggregated"), None)
    if aggregated is None:
        raise InputDataError(f"{source.path} has no Aggregated row; expected a Locust _stats.csv")
    requests = int(_number(aggregated["Request Count"]))
    rate = _number(aggregated["Requests/s"])
    if requests == 0 or rate <= 0:
        raise InputDataError(f"{source.path}: the Aggregated row has no requests; the test sent nothing")
    # Locust's Requests/s here is the count over the whole test, so count / rate is the duration.
    duration_s = requests / rate
    max_ms = _number(aggregated["Max Response Time"])
    raw = {
        float(m.group(1)): float(aggregated[name])
        for name in header
        if (m := _PERCENTILE_COLUMN.match(name)) and aggregated[name].strip() != "N/A"
    }
    ordered = monotone_percentiles(raw, max_ms)
    percentiles: dict[str, float | None] = {name: ordered.get(value) for name, value in _STORED_PERCENTILES.items()}
    percentiles["mean"] = _number(aggregated["Average Response Time"])
    percentiles["max"] = max_ms
    failures = int(_number(aggregated["Failure Count"]))
    return summary_step_row(
        step_index=0,
        started_at_s=summary_start_s(source, options, duration_s, info),
        duration_s=duration_s,
        requests=requests,
        errors_by_kind=_step_kinds(failures, kinds),
        percentiles_ms=percentiles,
        model=info.workload_model,
    )
