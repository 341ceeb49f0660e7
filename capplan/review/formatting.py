"""Text for numbers in the review's tables and sentences.

A missing value prints as ``n/a``, so a table cell is never empty and never
reads as zero.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["MISSING", "is_missing", "fmt_number", "fmt_count", "fmt_percent", "fmt_change", "fmt_day", "fmt_runway", "fmt_month"]

MISSING = "n/a"


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt_number(value: Any, decimals: int = 1, unit: str | None = None) -> str:
    """Format a number with thousands separators, such as ``1,234.5``, and an optional unit."""
    if is_missing(value) or (isinstance(value, float) and math.isinf(value)):
        return MISSING
    text = f"{float(value):,.{decimals}f}"
    return f"{text} {unit}" if unit else text


def fmt_count(value: Any) -> str:
    return MISSING if is_missing(value) else f"{int(value):,d}"


def fmt_percent(fraction: Any, decimals: int = 1) -> str:
    """Format a fraction as a percentage, such as ``0.123`` as ``12.3 %``."""
    return MISSING if is_missing(fraction) else f"{float(fraction) * 100:.{decimals}f} %"


def fmt_change(fraction: Any, decimals: int = 1) -> str:
    """Format a relative change with its sign, such as ``+12.3 %`` or ``-4.0 %``."""
    return MISSING if is_missing(fraction) else f"{float(fraction) * 100:+.{decimals}f} %"


def fmt_day(value: Any) -> str:
    return MISSING if is_missing(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def fmt_runway(runway: Any, has_plan: bool) -> str:
    """Format a plan's runway date; a plan without one lasts ``beyond the horizon``."""
    if not has_plan:
        return MISSING
    return "beyond the horizon" if is_missing(runway) else fmt_day(runway)


def fmt_month(value: Any) -> str:
    return MISSING if is_missing(value) else pd.Timestamp(value).strftime("%Y-%m")
