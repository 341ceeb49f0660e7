"""Text for numbers and times shown in the app.

Every timestamp in the store is naive UTC. The app shows times in the time
zone the user picks (UTC by default), and every time text ends with the
zone's name, such as ``2026-01-05 11:00 Europe/Berlin``.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pandas as pd

__all__ = [
    "DEFAULT_TIMEZONE",
    "as_date",
    "is_missing",
    "format_utc",
    "format_time",
    "to_local",
    "timezone_names",
    "valid_timezone",
    "format_rps",
    "format_ms",
    "format_percent",
    "format_level",
    "format_money",
]

MISSING_TEXT = "—"
DEFAULT_TIMEZONE = "UTC"
SMALLEST_PERCENT_SHOWN = 0.001  # smaller positive fractions read "< 0.1 %" instead of scientific notation
# Offered first in the picker; every other IANA zone follows in alphabetical order.
COMMON_TIMEZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
)


def is_missing(value: Any) -> bool:
    """Return True for None, NaN and NaT, the values DuckDB gives pandas for SQL NULL."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def as_date(value: Any) -> date | None:
    """Convert a DuckDB DATE cell (a pandas Timestamp, a date or NULL) to a date."""
    if is_missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def format_utc(value: Any, with_time: bool = True) -> str:
    return format_time(value, DEFAULT_TIMEZONE, with_time)


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    """Return the picker's zones: COMMON_TIMEZONES, then every other IANA zone sorted."""
    others = sorted(available_timezones() - set(COMMON_TIMEZONES))
    return (*COMMON_TIMEZONES, *others)


def valid_timezone(name: str | None) -> str:
    """Return ``name`` when it is a known IANA zone, else DEFAULT_TIMEZONE."""
    if not name:
        return DEFAULT_TIMEZONE
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return DEFAULT_TIMEZONE
    return name


def to_local(values: pd.Series, timezone: str) -> pd.Series:
    """Convert naive UTC timestamps to the naive wall-clock time of ``timezone``."""
    stamps = pd.to_datetime(values)
    if timezone == DEFAULT_TIMEZONE:
        return stamps
    return stamps.dt.tz_localize("UTC").dt.tz_convert(timezone).dt.tz_localize(None)


def format_time(value: Any, timezone: str = DEFAULT_TIMEZONE, with_time: bool = True) -> str:
    """Format a naive UTC timestamp in ``timezone``, ending with the zone's name."""
    if is_missing(value):
        return MISSING_TEXT
    timestamp = pd.Timestamp(value)
    if timestamp.tzinfo is None:
        timestamp = timestamp.tz_localize("UTC")
    local = timestamp.tz_convert(timezone)
    pattern = "%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d"
    return f"{local.strftime(pattern)} {timezone}"


def _format_number(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def format_rps(value: Any) -> str:
    if is_missing(value) or not math.isfinite(float(value)):
        return MISSING_TEXT
    return f"{_format_number(float(value))} rps"


def format_ms(value: Any) -> str:
    if is_missing(value) or not math.isfinite(float(value)):
        return MISSING_TEXT
    return f"{_format_number(float(value))} ms"


def format_percent(fraction: Any) -> str:
    """Format a fraction such as 0.012 as ``1.2 %``."""
    if is_missing(fraction):
        return MISSING_TEXT
    value = float(fraction)
    if 0 < value < SMALLEST_PERCENT_SHOWN:
        return "< 0.1 %"
    return f"{value * 100:.3g} %"


def format_level(level: float) -> str:
    """Name a forecast's interval coverage, such as ``80 % interval`` for 0.8."""
    return f"{level * 100:g} % interval"


def format_money(amount: Any) -> str:
    """Format an amount in the user's currency with thousands separators and no currency sign."""
    if is_missing(amount) or not math.isfinite(float(amount)):
        return MISSING_TEXT
    return f"{float(amount):,.0f}"
