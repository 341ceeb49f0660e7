"""A synthetic hourly request-rate history for the demo and the tests.

capplan ships no real traffic data, so the demo generates a year of demand.
It has the shapes a capacity plan has to handle: a daily cycle that peaks in
the afternoon (UTC), lower weekends, compound growth, multiplicative noise
and a holiday dip. The same seed always gives the same history for the same
``end``.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_PEAK_RPS",
    "DEFAULT_GROWTH_PER_YEAR",
    "DEFAULT_SEED",
    "default_history_end",
    "make_demo_history",
    "write_history_csv",
]

DEFAULT_DAYS = 365
DEFAULT_PEAK_RPS = 250.0          # weekday afternoon peak at the end of the history, requests/s
DEFAULT_GROWTH_PER_YEAR = 0.30    # compound growth, fraction per year
DEFAULT_NOISE_SIGMA = 0.05        # standard deviation of the log of the noise factor
DEFAULT_SEED = 20240301

PEAK_HOUR_UTC = 15                # hour of the daily maximum
NIGHT_FRACTION = 0.35             # nightly minimum as a fraction of the daily maximum
WEEKDAY_FACTORS = (1.0, 1.0, 1.0, 1.0, 0.97, 0.72, 0.66)  # Monday .. Sunday
HOLIDAY_MONTH_DAY = (12, 25)      # a UTC day with demand at HOLIDAY_FACTOR of normal
HOLIDAY_FACTOR = 0.4
DAYS_PER_YEAR = 365.25


def default_history_end() -> pd.Timestamp:
    """Return the current hour (UTC, naive) minus one day, the default last timestamp."""
    now = pd.Timestamp.now(tz="UTC").floor("h").tz_convert(None)
    return now - pd.Timedelta(days=1)


def make_demo_history(
    *,
    days: int = DEFAULT_DAYS,
    end: pd.Timestamp | str | None = None,
    peak_rps: float = DEFAULT_PEAK_RPS,
    growth_per_year: float = DEFAULT_GROWTH_PER_YEAR,
    noise_sigma: float = DEFAULT_NOISE_SIGMA,
    holiday: tuple[int, int] | None = HOLIDAY_MONTH_DAY,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Generate ``days`` of hourly request rates ending at ``end`` and return columns ``ts``, ``value``.

    ``ts`` is naive UTC, and ``value`` is in requests/s. Without noise, a
    weekday at PEAK_HOUR_UTC near ``end`` is at ``peak_rps``, and earlier days
    are lower by the compound ``growth_per_year``. ``noise_sigma=0`` gives
    the noiseless curve, and ``holiday=None`` leaves out the holiday dip.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if peak_rps <= 0 or not math.isfinite(peak_rps):
        raise ValueError(f"peak_rps must be a positive number, got {peak_rps}")
    if growth_per_year <= -1.0:
        raise ValueError(f"growth_per_year must be above -1, got {growth_per_year}")
    if noise_sigma < 0:
        raise ValueError(f"noise_sigma must not be negative, got {noise_sigma}")

    last = default_history_end() if end is None else pd.Timestamp(end).floor("h")
    if last.tzinfo is not None:
        last = last.tz_convert("UTC").tz_localize(None)
    ts = pd.date_range(end=last, periods=days * 24, freq="h")

    years_before_end = (last - ts) / pd.Timedelta(days=DAYS_PER_YEAR)
    trend = peak_rps * (1.0 + growth_per_year) ** (-np.asarray(years_before_end, dtype=float))

    # A raised cosine gives 1.0 at PEAK_HOUR_UTC and NIGHT_FRACTION twelve hours later.
    hour_angle = 2.0 * np.pi * (ts.hour.to_numpy() - PEAK_HOUR_UTC) / 24.0
    daily = NIGHT_FRACTION + (1.0 - NIGHT_FRACTION) * (1.0 + np.cos(hour_angle)) / 2.0
    weekly = np.asarray(WEEKDAY_FACTORS)[ts.day_of_week.to_numpy()]

    special = np.ones(len(ts))
    if holiday is not None:
        month, day = holiday
        special[(ts.month == month) & (ts.day == day)] = HOLIDAY_FACTOR

    rng = np.random.default_rng(seed)
    noise = np.exp(rng.normal(0.0, noise_sigma, len(ts))) if noise_sigma > 0 else np.ones(len(ts))

    value = trend * daily * weekly * special * noise
    return pd.DataFrame({"ts": ts, "value": value.astype(float)})


def write_history_csv(history: pd.DataFrame, path: str | PathLike[str]) -> Path:
    """Write ``ts``, ``value`` as a ``timestamp,value`` CSV with ISO 8601 UTC times and return the path.

    The file is the format that ``capplan collect --csv`` reads.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    out = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(history["ts"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "value": history["value"].round(3),
        }
    )
    out.to_csv(target, index=False)
    return target
