"""Splitting a run's load timeline into steps.

The timeline is one load level per second: active users for a closed
workload, arrivals (request starts plus dropped arrivals) per second for an
open one. A step is a plateau, a stretch of at least ``min_step_s`` seconds
whose level stays within a tolerance of its mean. Stretches
where the level keeps changing (ramps) are cut into windows of about
``ramp_window_s`` and flagged as ramps. A short change between two plateaus
(an instant step-up that spans one or two seconds) is given to the plateau
that follows it, so every second, and therefore every request, lands in
exactly one step. Without any level readings the run is cut into fixed
windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["StepWindow", "split_steps", "level_tolerance"]

RATE_SMOOTHING_S = 5  # arrivals per second are counts; a centered mean over 5 s damps Poisson noise


@dataclass(frozen=True)
class StepWindow:
    """A step's time range in epoch seconds (end exclusive) and whether its load was ramping."""

    start_s: float
    end_s: float
    ramp: bool


def level_tolerance(level: float, kind: str) -> float:
    """Return how far the level may move from a plateau's starting level and stay on the plateau.

    User counts are exact integers, so half a user (or 2 % of large counts)
    separates plateaus. Arrival counts are noisy: the band is the larger of
    5 % and three standard deviations of a Poisson count averaged over the
    smoothing window.
    """
    level = abs(level)
    if kind == "users":
        return max(0.5, 0.02 * level)
    return max(1.0, 0.05 * level, 3.0 * math.sqrt(level / RATE_SMOOTHING_S))


def split_steps(
    level: np.ndarray,
    origin_s: int,
    *,
    kind: str,
    min_step_s: float,
    ramp_window_s: float,
    fixed_window_s: float,
) -> list[StepWindow]:
    """Return the steps covering ``len(level)`` seconds that start at ``origin_s``.

    ``level`` has one reading per second, NaN where none was taken. A gauge
    keeps its last reading, so gaps are filled forward.
    """
    seconds = len(level)
    if seconds == 0:
        return []
    if np.isnan(level).all():
        return _fixed_windows(origin_s, seconds, fixed_window_s)

    filled = pd.Series(level).ffill().bfill()
    if kind == "rate":
        filled = filled.rolling(RATE_SMOOTHING_S, center=True, min_periods=1).mean()
    values = filled.to_numpy()

    segments = _segments(values, kind)
    plateaus = [
        (begin, end) for begin, end in segments if end - begin >= min_step_s and abs(values[begin:end]).max() > 0
    ]
    windows = _cover(plateaus, origin_s, seconds, min_step_s, ramp_window_s)
    if kind == "rate":
        raw = pd.Series(level).ffill().bfill().to_numpy()
        windows = _refine_edges(windows, raw, origin_s)
    return windows


def _refine_edges(windows: list[StepWindow], raw: np.ndarray, origin_s: int) -> list[StepWindow]:
    """Move each edge between two plateaus to where the raw counts change level.

    Smoothing blurs a step change over the smoothing window, so the edge found
    on smoothed counts can be a few seconds off. The edge is moved within that
    window to the split that best separates the two plateaus' median levels.
    """
    refined = list(windows)
    for index in range(1, len(refined)):
        left, right = refined[index - 1], refined[index]
        if left.ramp or right.ramp:
            continue
        edge = int(left.end_s) - origin_s
        low = max(int(left.start_s) - origin_s + 1, edge - RATE_SMOOTHING_S)
        high = min(int(right.end_s) - origin_s - 1, edge + RATE_SMOOTHING_S)
        if high <= low:
            continue
        left_level = float(np.median(raw[int(left.start_s) - origin_s : edge]))
        right_level = float(np.median(raw[edge : int(right.end_s) - origin_s]))
        costs = [
            np.abs(raw[low:split] - left_level).sum() + np.abs(raw[split:high] - right_level).sum()
            for split in range(low, high + 1)
        ]
        best = low + int(np.argmin(costs))
        refined[index - 1] = StepWindow(left.start_s, float(origin_s + best), left.ramp)
        refined[index] = StepWindow(float(origin_s + best), right.end_s, right.ramp)
    return refined


def _segments(values: np.ndarray, kind: str) -> list[tuple[int, int]]:
    """Cut the series into runs whose values stay within tolerance of the run's mean so far.

    The mean, unlike a run's first value, is not thrown off by one noisy
    reading. A ramp still breaks into short runs because each new value
    moves away from the mean of the earlier ones.
    """
    segments = []
    begin = 0
    total = float(values[0])
    for index in range(1, len(values)):
        mean = total / (index - begin)
        if abs(values[index] - mean) > level_tolerance(mean, kind):
            segments.append((begin, index))
            begin = index
            total = 0.0
        total += float(values[index])
    segments.append((begin, len(values)))
    return segments


def _cover(
    plateaus: list[tuple[int, int]], origin_s: int, seconds: int, min_step_s: float, ramp_window_s: float
) -> list[StepWindow]:
    """Turn plateaus into windows covering every second, with ramp windows in the gaps between them."""
    windows: list[StepWindow] = []
    cursor = 0
    for begin, end in plateaus:
        gap = begin - cursor
        if gap >= min_step_s:
            windows.extend(_ramp_windows(origin_s, cursor, begin, ramp_window_s))
            start = begin
        else:
            start = cursor
        windows.append(StepWindow(float(origin_s + start), float(origin_s + end), False))
        cursor = end
    tail = seconds - cursor
    if tail >= min_step_s or not windows:
        windows.extend(_ramp_windows(origin_s, cursor, seconds, ramp_window_s))
    elif tail > 0:
        last = windows[-1]
        windows[-1] = StepWindow(last.start_s, float(origin_s + seconds), last.ramp)
    return windows


def _ramp_windows(origin_s: int, begin: int, end: int, window_s: float) -> list[StepWindow]:
    count = max(1, round((end - begin) / window_s))
    edges = np.linspace(begin, end, count + 1).round().astype(int)
    return [
        StepWindow(float(origin_s + edges[i]), float(origin_s + edges[i + 1]), True)
        for i in range(count)
        if edges[i + 1] > edges[i]
    ]


def _fixed_windows(origin_s: int, seconds: int, window_s: float) -> list[StepWindow]:
    count = max(1, round(seconds / window_s))
    edges = np.linspace(0, seconds, count + 1).round().astype(int)
    return [
        StepWindow(float(origin_s + edges[i]), float(origin_s + edges[i + 1]), False)
        for i in range(count)
        if edges[i + 1] > edges[i]
    ]
