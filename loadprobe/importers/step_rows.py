"""Turning a run's raw samples, or a tool's own totals, into stored step rows.

The rows have the probe's step columns (``capplan.store.runs.STEP_COLUMNS``)
with these meanings for an imported run:

- ``offered_rps``: requests started per second in the step. For an open
  workload it includes the arrivals the tool dropped (k6 dropped_iterations
  times the run's requests per iteration). For a closed workload it is what
  the users sent, which depends on how fast the target responded.
- ``achieved_rps``: successful requests per second.
- latency: as the tool measured it, from the moment the request was actually
  sent. It is therefore also ``service_p95_ms``, and for a closed workload it
  can hide queueing in the generator (coordinated omission).
- generator health (``send_lag_p99_ms``, ``generator_cpu``) is unknown: NULL,
  and ``generator_saturated`` is false.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from capplan.errors import InputDataError
from loadprobe.histogram import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS, LatencyHistogram
from loadprobe.importers.model import ImportOptions, RunInfo
from loadprobe.importers.recorder import OK_CODE, SampleRecorder
from loadprobe.importers.step_split import StepWindow, split_steps

__all__ = ["raw_step_rows", "summary_step_row", "utc_naive"]

# A run longer than this means a wrong timestamp rather than a month-long
# test, and its per-second timeline would take gigabytes.
MAX_RUN_SPAN_S = 31 * 86400

# Kinds without a response time: their latency is not recorded, as in the probe.
NO_LATENCY_KINDS = ("refused", "reset")


def utc_naive(epoch_s: float) -> datetime:
    """Return epoch seconds as a naive UTC datetime, the store's timestamp form."""
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).replace(tzinfo=None)


def raw_step_rows(recorder: SampleRecorder, info: RunInfo, options: ImportOptions) -> list[dict[str, Any]]:
    """Split the recorder's timeline into steps and return one row per step that has requests."""
    if recorder.count == 0:
        return []
    origin_s = math.floor(recorder.first_s)
    seconds = max(recorder.starts) - origin_s + 1
    if seconds > MAX_RUN_SPAN_S:
        raise InputDataError(
            f"a run in the file spans {seconds / 86400:.0f} days, from {utc_naive(origin_s).isoformat()} to "
            f"{utc_naive(origin_s + seconds).isoformat()} UTC, beyond the {MAX_RUN_SPAN_S // 86400} days one "
            "load test can last; check the file for wrong timestamps"
        )
    level, level_kind = _level_series(recorder, info, origin_s, seconds)
    windows = split_steps(
        level,
        origin_s,
        kind=level_kind,
        min_step_s=options.min_step_s,
        ramp_window_s=options.ramp_window_s,
        fixed_window_s=options.fixed_window_s,
    )
    # Whole seconds would stretch the first and last steps by the partial
    # seconds at the ends. The run starts with its first request and ends
    # with its last response.
    first, last = windows[0], windows[-1]
    windows[0] = StepWindow(recorder.first_s, first.end_s, first.ramp)
    windows[-1] = StepWindow(windows[-1].start_s, max(min(last.end_s, recorder.last_end_s), windows[-1].start_s + 1e-3), last.ramp)
    totals = _accumulate(recorder, windows)
    users_by_second = _per_second(recorder.users_sum, origin_s, seconds, recorder.users_n)
    dropped_by_second = np.nan_to_num(_per_second(recorder.dropped, origin_s, seconds))
    kept_requests = int(totals["requests"].sum())
    requests_per_iteration = kept_requests / recorder.iterations if recorder.iterations else 1.0

    rows = []
    for index, window in enumerate(windows):
        requests = int(totals["requests"][index])
        if requests == 0:
            continue
        errors_by_kind = {
            recorder.kinds[code]: int(totals["kinds"][index, code])
            for code in range(len(recorder.kinds))
            if code != OK_CODE and totals["kinds"][index, code] > 0
        }
        first_second = max(int(window.start_s) - origin_s, 0)
        last_second = max(int(math.ceil(window.end_s)) - origin_s, first_second + 1)
        dropped_arrivals = float(dropped_by_second[first_second:last_second].sum())
        window_users = users_by_second[first_second:last_second]
        users = None
        # Users are the concurrency of a closed workload only; an open workload's
        # virtual users (k6 pre-allocated VUs) do not measure concurrency.
        if info.workload_model == "closed" and not np.isnan(window_users).all():
            users = float(np.nanmax(window_users))
        hdr = totals["histograms"][index]
        histogram = LatencyHistogram(hdr) if hdr is not None else None
        timed = int(totals["timed"][index])
        rows.append(
            _row(
                step_index=len(rows),
                window=window,
                requests=requests,
                errors_by_kind=errors_by_kind,
                dropped=int(round(dropped_arrivals * requests_per_iteration)),
                open_model=info.workload_model == "open",
                users=users,
                histogram=histogram,
                mean_ms=float(totals["latency_sum"][index] / timed) if timed else None,
                max_ms=float(totals["latency_max"][index]) if timed else None,
                model=info.workload_model,
            )
        )
    return rows


def _level_series(recorder: SampleRecorder, info: RunInfo, origin_s: int, seconds: int) -> tuple[np.ndarray, str]:
    """Return the load level per second: arrivals for an open workload, active users for a closed one."""
    if info.workload_model == "open":
        starts = np.nan_to_num(_per_second(recorder.starts, origin_s, seconds))
        dropped = np.nan_to_num(_per_second(recorder.dropped, origin_s, seconds))
        return starts + dropped, "rate"
    return _per_second(recorder.users_sum, origin_s, seconds, recorder.users_n), "users"


def _per_second(
    totals: dict[int, float] | dict[int, int], origin_s: int, seconds: int, counts: dict[int, int] | None = None
) -> np.ndarray:
    """Return a per-second array of the totals (divided by ``counts`` for a mean), NaN where there is none."""
    series = np.full(seconds, np.nan)
    for second, total in totals.items():
        if 0 <= second - origin_s < seconds:
            series[second - origin_s] = total / counts[second] if counts is not None else total
    return series


def _accumulate(recorder: SampleRecorder, windows: list[StepWindow]) -> dict[str, Any]:
    """Count requests, errors and latency per step in one streaming pass over the records."""
    steps = len(windows)
    kinds = len(recorder.kinds)
    edges = np.array([window.start_s for window in windows] + [windows[-1].end_s])
    untimed_codes = np.array(
        [code for code, name in enumerate(recorder.kinds) if name in NO_LATENCY_KINDS], dtype=np.int8
    )
    excluded = np.array(sorted(recorder.excluded_groups), dtype=np.int32)
    totals: dict[str, Any] = {
        "requests": np.zeros(steps, dtype=np.int64),
        "kinds": np.zeros((steps, kinds), dtype=np.int64),
        "timed": np.zeros(steps, dtype=np.int64),
        "latency_sum": np.zeros(steps),
        "latency_max": np.full(steps, -np.inf),
        "histograms": [None] * steps,
    }
    for start_s, latency_ms, kind, group in recorder.chunks():
        if excluded.size:
            keep = ~np.isin(group, excluded)
            start_s, latency_ms, kind = start_s[keep], latency_ms[keep], kind[keep]
        step = np.clip(np.searchsorted(edges, start_s, side="right") - 1, 0, steps - 1)
        totals["requests"] += np.bincount(step, minlength=steps)
        totals["kinds"] += np.bincount(step * kinds + kind, minlength=steps * kinds).reshape(steps, kinds)
        timed = ~np.isin(kind, untimed_codes) if untimed_codes.size else np.ones(len(kind), dtype=bool)
        step, latency_ms = step[timed], latency_ms[timed]
        totals["timed"] += np.bincount(step, minlength=steps)
        totals["latency_sum"] += np.bincount(step, weights=latency_ms, minlength=steps)
        np.maximum.at(totals["latency_max"], step, latency_ms)
        _record_histograms(totals["histograms"], step, latency_ms)
    return totals


def _record_histograms(histograms: list[HdrHistogram | None], step: np.ndarray, latency_ms: np.ndarray) -> None:
    micros = np.clip(np.rint(latency_ms * 1000.0), LOWEST_US, HIGHEST_US).astype(np.int64)
    order = np.argsort(step, kind="stable")
    step, micros = step[order], micros[order]
    boundaries = np.flatnonzero(np.diff(step)) + 1
    for begin, end in zip(np.r_[0, boundaries], np.r_[boundaries, len(step)]):
        if begin == end:
            continue
        index = int(step[begin])
        hdr = histograms[index]
        if hdr is None:
            hdr = histograms[index] = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        values, counts = np.unique(micros[begin:end], return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist()):
            hdr.record_value(value, count)


def _row(
    *,
    step_index: int,
    window: StepWindow,
    requests: int,
    errors_by_kind: dict[str, int],
    dropped: int,
    open_model: bool,
    users: float | None,
    histogram: LatencyHistogram | None,
    mean_ms: float | None,
    max_ms: float | None,
    model: str | None,
) -> dict[str, Any]:
    duration_s = window.end_s - window.start_s
    errors = sum(errors_by_kind.values())
    ok = requests - errors
    offered_rps = (requests + (dropped if open_model else 0)) / duration_s
    achieved_rps = ok / duration_s
    p95_ms = histogram.percentile_ms(95) if histogram else None
    return {
        "step_index": step_index,
        "started_at": utc_naive(window.start_s),
        "duration_s": duration_s,
        "offered_rps": offered_rps,
        "achieved_rps": achieved_rps,
        "requests": requests,
        "ok_requests": ok,
        "errors": errors,
        "dropped": dropped,
        "error_rate": errors / requests if requests else 0.0,
        "errors_by_kind": errors_by_kind,
        "mean_ms": mean_ms,
        "p50_ms": histogram.percentile_ms(50) if histogram else None,
        "p90_ms": histogram.percentile_ms(90) if histogram else None,
        "p95_ms": p95_ms,
        "p99_ms": histogram.percentile_ms(99) if histogram else None,
        "max_ms": max_ms,
        "service_p95_ms": p95_ms,
        "latency_hdr": histogram.encode() if histogram else None,
        "model": model,
        "users": users,
        "concurrency_mean": achieved_rps * mean_ms / 1000.0 if mean_ms is not None else None,
        "ramp": window.ramp,
        **_no_generator_health(),
    }


def _no_generator_health() -> dict[str, Any]:
    # Result files contain nothing about the generator's own health.
    return {"send_lag_p99_ms": None, "generator_cpu": None, "generator_saturated": False, "passed": True, "fail_reason": None}


def summary_step_row(
    *,
    step_index: int,
    started_at_s: float,
    duration_s: float,
    requests: int,
    errors_by_kind: dict[str, int],
    percentiles_ms: dict[str, float | None],
    dropped: int = 0,
    users: float | None = None,
    model: str | None = None,
    ramp: bool = False,
) -> dict[str, Any]:
    """Return a step row built from a tool's own totals, which carry no histogram.

    ``percentiles_ms`` maps ``mean``, ``p50``, ``p90``, ``p95``, ``p99`` and
    ``max`` to milliseconds. A missing one is stored as NULL.
    """
    errors = sum(errors_by_kind.values())
    ok = requests - errors
    achieved_rps = ok / duration_s
    mean_ms = percentiles_ms.get("mean")
    p95_ms = percentiles_ms.get("p95")
    return {
        "step_index": step_index,
        "started_at": utc_naive(started_at_s),
        "duration_s": duration_s,
        "offered_rps": (requests + (dropped if model == "open" else 0)) / duration_s,
        "achieved_rps": achieved_rps,
        "requests": requests,
        "ok_requests": ok,
        "errors": errors,
        "dropped": dropped,
        "error_rate": errors / requests if requests else 0.0,
        "errors_by_kind": errors_by_kind,
        "mean_ms": mean_ms,
        "p50_ms": percentiles_ms.get("p50"),
        "p90_ms": percentiles_ms.get("p90"),
        "p95_ms": p95_ms,
        "p99_ms": percentiles_ms.get("p99"),
        "max_ms": percentiles_ms.get("max"),
        "service_p95_ms": p95_ms,
        "latency_hdr": None,
        "model": model,
        "users": users,
        "concurrency_mean": achieved_rps * mean_ms / 1000.0 if mean_ms is not None else None,
        "ramp": ramp,
        **_no_generator_health(),
    }
