"""Daily peaks: the demand that a capacity plan has to carry.

A fleet is sized for the busiest moment of a day, not for the daily mean, so
capacity plans work on one value per UTC day: the maximum of that day's
samples, or a high quantile of them. Weekly peaks are the maximum of each
week's daily peaks. Days with too few samples are left out (set to missing),
because the maximum of a half-observed day underestimates its peak. Gaps stay
missing (NaN), never zero, because zero would read as "no demand".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capplan.errors import InputDataError

__all__ = [
    "MIN_HISTORY_DAYS",
    "MIN_HISTORY_POINTS",
    "WEEKLY_SEASON_DAYS",
    "DailyPeaks",
    "median_step",
    "regularize",
    "daily_peaks",
    "weekly_peaks",
    "regular_step",
    "seasonal_period",
    "check_history_length",
    "format_span",
]

logger = logging.getLogger(__name__)

ONE_DAY = pd.Timedelta(days=1)
ONE_MINUTE = pd.Timedelta(minutes=1)
ONE_SECOND = pd.Timedelta(seconds=1)
WEEKLY_SEASON_DAYS = 7            # season length of daily data, in days
MIN_HISTORY_DAYS = 14             # two weekly cycles, so the weekly season can be estimated
MIN_HISTORY_POINTS = 14           # non-missing values inside those days
SPARSE_DAY_FRACTION = 0.5         # a day with fewer than this fraction of its expected samples is dropped
DROPPED_DAYS_SHOWN = 5            # dropped days named in the log message
MIN_DAYS_PER_WEEK = 4             # a week with fewer observed daily peaks is left out of the weekly peaks


@dataclass(frozen=True)
class DailyPeaks:
    """Daily peak series (index: UTC midnights at a 1-day frequency) and how it was derived."""

    values: pd.Series
    sample_step: pd.Timedelta
    sub_daily: bool
    dropped_days: tuple[pd.Timestamp, ...]

    @property
    def missing_days(self) -> int:
        return int(self.values.isna().sum())


def median_step(ts: pd.Series | pd.DatetimeIndex) -> pd.Timedelta:
    """Return the median spacing of sorted timestamps, rounded to whole minutes (whole seconds below a minute).

    The rounding keeps timestamps that jitter by a few seconds on a regular
    grid. Raises InputDataError for fewer than two distinct timestamps.
    """
    index = pd.DatetimeIndex(ts).sort_values().unique()
    if len(index) < 2:
        raise InputDataError(f"a series needs at least two timestamps to find its step, got {len(index)}")
    step = pd.Timedelta((index[1:] - index[:-1]).median())
    unit = ONE_MINUTE if step >= ONE_MINUTE else ONE_SECOND
    return max(step.round(unit), unit)


def regularize(samples: pd.DataFrame, step: pd.Timedelta | None = None) -> pd.Series:
    """Reindex samples (``ts``, ``value``) onto a regular grid of ``step`` and return the values.

    ``step`` defaults to the median step. Each timestamp is floored to the grid,
    several samples in one grid cell keep their maximum, and grid cells without
    a sample are NaN.
    """
    if step is None:
        step = median_step(samples["ts"])
    ts = pd.to_datetime(samples["ts"]).dt.floor(step)
    binned = pd.Series(samples["value"].to_numpy(dtype=float), index=ts).groupby(level=0).max()
    grid = pd.date_range(binned.index.min(), binned.index.max(), freq=step)
    return binned.reindex(grid)


def daily_peaks(samples: pd.DataFrame, quantile: float | None = None) -> DailyPeaks:
    """Return the peak of each UTC day of samples (``ts`` as naive UTC, ``value``).

    The peak is the day's maximum, or with ``quantile`` (such as 0.95) that
    quantile of the day's samples, which ignores a few seconds of spike.

    Sub-daily data: each day's maximum, where a day with fewer than half of
    its expected samples (one day divided by the median step) becomes NaN and
    is logged. Daily data: the values, one per day. Leading and trailing
    missing days are trimmed, so the result starts and ends with an observed
    peak. Raises InputDataError for data coarser than daily or with no
    observed values.
    """
    step = median_step(samples["ts"])
    if step > ONE_DAY:
        raise InputDataError(
            f"the series has a median step of {format_span(step)}; daily peaks need at least one sample "
            "per day, so collect the history at a daily or finer step"
        )

    if step == ONE_DAY:
        peaks = regularize(samples, ONE_DAY)
        dropped: tuple[pd.Timestamp, ...] = ()
        sub_daily = False
    else:
        grid = regularize(samples, step)
        by_day = grid.groupby(grid.index.floor("D"))
        peaks = by_day.max() if quantile is None else by_day.quantile(quantile)
        counts = by_day.count()
        expected = ONE_DAY / step
        sparse = (counts < SPARSE_DAY_FRACTION * expected) & peaks.notna()
        dropped = tuple(peaks.index[sparse])
        peaks[sparse] = np.nan
        peaks = peaks.asfreq("D")
        sub_daily = True
        if dropped:
            shown_days = ", ".join(str(day.date()) for day in dropped[:DROPPED_DAYS_SHOWN])
            more = f" and {len(dropped) - DROPPED_DAYS_SHOWN} more" if len(dropped) > DROPPED_DAYS_SHOWN else ""
            logger.info(
                "left out %d of %d days because each has fewer than %d of its %d expected samples, so its "
                "maximum would underestimate the peak: %s%s",
                len(dropped), len(peaks), int(np.ceil(SPARSE_DAY_FRACTION * expected)), int(round(expected)),
                shown_days, more,
            )

    observed = peaks.dropna()
    if observed.empty:
        raise InputDataError("the series has no observed values; every sample is missing")
    peaks = peaks.loc[observed.index[0] : observed.index[-1]].asfreq("D")
    peaks.name = "peak"
    return DailyPeaks(values=peaks, sample_step=step, sub_daily=sub_daily, dropped_days=dropped)


def weekly_peaks(daily: pd.Series) -> pd.Series:
    """Return the peak of each week (Monday 00:00 UTC to Sunday) from daily peaks.

    A week with fewer than MIN_DAYS_PER_WEEK observed days is NaN, because
    its maximum would underestimate the week's peak, and missing weeks at
    either end are trimmed. Each index value is the week's Monday.
    """
    values = daily.copy()
    values.index = pd.DatetimeIndex(values.index)
    week_start = values.index - pd.to_timedelta(values.index.day_of_week, unit="D")
    grouped = values.groupby(week_start)
    peaks = grouped.max()
    peaks[grouped.count() < MIN_DAYS_PER_WEEK] = np.nan
    peaks = peaks.asfreq("7D")
    observed = peaks.dropna()
    if observed.empty:
        return observed
    peaks = peaks.loc[observed.index[0] : observed.index[-1]].asfreq("7D")
    peaks.name = "weekly_peak"
    return peaks


def regular_step(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    """Return the spacing of an index whose timestamps are evenly spaced, else None."""
    if len(index) < 2:
        return None
    steps = index[1:] - index[:-1]
    return pd.Timedelta(steps[0]) if (steps == steps[0]).all() and steps[0] > pd.Timedelta(0) else None


def seasonal_period(values: pd.Series) -> int:
    """Return the season length in steps: 7 for daily data (a weekly cycle)."""
    step = regular_step(pd.DatetimeIndex(values.index))
    if step != ONE_DAY:
        raise InputDataError(f"expected one value per day for a weekly season, got a step of {step}")
    return WEEKLY_SEASON_DAYS


def check_history_length(ts: pd.Series | pd.DatetimeIndex, values: pd.Series, source: str) -> None:
    """Raise InputDataError unless a history is long enough to forecast a weekly season.

    The history must cover MIN_HISTORY_DAYS (from its first timestamp to one
    step past its last) and contain MIN_HISTORY_POINTS non-missing values.
    ``source`` names the history in the message, such as a file path.
    """
    index = pd.DatetimeIndex(ts)
    observed = int(pd.Series(values).notna().sum())
    if len(index) >= 2:
        covered = index.max() - index.min() + median_step(index)
    else:
        covered = pd.Timedelta(0) if len(index) == 0 else ONE_DAY
    if covered < pd.Timedelta(days=MIN_HISTORY_DAYS) or observed < MIN_HISTORY_POINTS:
        raise InputDataError(
            f"{source} is too short to forecast: it covers {format_span(covered)} with {observed} values, "
            f"but a forecast needs at least {MIN_HISTORY_DAYS} days (two weekly cycles) with at least "
            f"{MIN_HISTORY_POINTS} values; collect a longer history"
        )


def format_span(span: pd.Timedelta) -> str:
    """Format a duration for messages, such as ``3.5 days``, ``1 day`` or ``6 hours``."""
    days = span / ONE_DAY
    if days >= 1:
        return _count(days, "day")
    hours = span / pd.Timedelta(hours=1)
    if hours >= 1:
        return _count(hours, "hour")
    return _count(span.total_seconds(), "second")


def _count(amount: float, unit: str) -> str:
    text = f"{amount:.0f}" if amount == int(amount) else f"{amount:.1f}"
    return f"{text} {unit}" if text == "1" else f"{text} {unit}s"
