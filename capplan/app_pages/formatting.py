"""Text for numbers and times shown in the app.

Every timestamp in the store is naive UTC, so the text always ends in ``UTC``.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pandas as pd

__all__ = ["as_date", "is_missing", "format_utc", "format_rps", "format_ms", "format_percent", "format_level"]

MISSING_TEXT = "—"


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
    if is_missing(value):
        return MISSING_TEXT
    timestamp = pd.Timestamp(value)
    if timestamp.tzinfo is not None:
        timestamp = timestamp.tz_convert("UTC").tz_localize(None)
    pattern = "%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d"
    return f"{timestamp.strftime(pattern)} UTC"


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
    return f"{float(fraction) * 100:.3g} %"


def format_level(level: float) -> str:
    """Name a forecast's interval coverage, such as ``80 % interval`` for 0.8."""
    return f"{level * 100:g} % interval"
