"""Calendar quarters: parsing ``2026Q4``, their bounds, and the quarters around them.

Bounds are naive UTC timestamps, like every time in the store. A quarter
runs from the midnight that starts its first day (``start``) up to, but not
including, the midnight that starts the next quarter (``end``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from capplan.errors import ConfigError

__all__ = ["Quarter", "parse_quarter", "quarter_of", "current_quarter"]

_QUARTER_PATTERN = re.compile(r"^\s*(\d{4})\s*-?\s*Q([1-4])\s*$", re.IGNORECASE)
MONTHS_PER_QUARTER = 3


@dataclass(frozen=True, order=True)
class Quarter:
    """One calendar quarter, such as 2026Q4 (October to December 2026)."""

    year: int
    number: int

    def __post_init__(self) -> None:
        if not 1 <= self.number <= 4:
            raise ConfigError(f"quarter number {self.number} is outside 1..4; give a quarter such as 2026Q4")

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.year}Q{self.number}"

    @property
    def start(self) -> pd.Timestamp:
        """Midnight UTC of the quarter's first day."""
        return pd.Timestamp(self.year, MONTHS_PER_QUARTER * (self.number - 1) + 1, 1)

    @property
    def end(self) -> pd.Timestamp:
        """Midnight UTC of the next quarter's first day (exclusive bound)."""
        return self.next().start

    @property
    def last_day(self) -> date:
        return (self.end - pd.Timedelta(days=1)).date()

    def months(self) -> list[pd.Timestamp]:
        """Return the first day of each of the quarter's three months."""
        return [self.start + pd.DateOffset(months=offset) for offset in range(MONTHS_PER_QUARTER)]

    def previous(self) -> Quarter:
        return Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)

    def next(self) -> Quarter:
        return Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)

    def contains(self, moment: pd.Timestamp | datetime | date) -> bool:
        timestamp = pd.Timestamp(moment)
        return bool(self.start <= timestamp < self.end)


def parse_quarter(text: str | Quarter, option: str = "--quarter") -> Quarter:
    """Parse ``2026Q4``, ``2026-Q4`` or ``2026q4``; raise ConfigError naming the option otherwise."""
    if isinstance(text, Quarter):
        return text
    match = _QUARTER_PATTERN.match(str(text))
    if match is None:
        raise ConfigError(f"{option}: invalid quarter {text!r}; give a year and quarter such as 2026Q4")
    return Quarter(int(match.group(1)), int(match.group(2)))


def quarter_of(moment: pd.Timestamp | datetime | date) -> Quarter:
    """Return the quarter that contains a date or naive UTC timestamp."""
    timestamp = pd.Timestamp(moment)
    return Quarter(timestamp.year, (timestamp.month - 1) // MONTHS_PER_QUARTER + 1)


def current_quarter(now: pd.Timestamp | datetime | None = None) -> Quarter:
    """Return the quarter of ``now``, by default the current UTC time."""
    moment = pd.Timestamp.now(tz="UTC").tz_localize(None) if now is None else pd.Timestamp(now)
    return quarter_of(moment)
