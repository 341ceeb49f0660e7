"""Which seasons a series at a given step can have, given how much history there is.

Service demand repeats daily and weekly, and over years yearly. A season is
used only when the history holds two whole cycles of it, because one cycle
cannot tell a season from a one-off. Every season switched off is logged at
INFO with the reason, such as "weekly seasonality off: history of 9 days is
shorter than 2 weeks".
"""

from __future__ import annotations

import logging

import pandas as pd

__all__ = ["CYCLES", "candidate_seasons", "usable_seasons"]

logger = logging.getLogger(__name__)

# Cycle name and length. Yearly is 365 days for daily data and 52 weeks for weekly data.
CYCLES: tuple[tuple[str, pd.Timedelta], ...] = (
    ("daily", pd.Timedelta(days=1)),
    ("weekly", pd.Timedelta(days=7)),
    ("yearly", pd.Timedelta(days=365)),
)
MIN_CYCLES = 2
ONE_WEEK = pd.Timedelta(days=7)


def candidate_seasons(step: pd.Timedelta) -> list[tuple[str, int]]:
    """Return (name, length in steps) for each cycle longer than ``step`` that fits a whole number of steps."""
    seasons = []
    for name, cycle in CYCLES:
        if name == "yearly" and step == ONE_WEEK:
            seasons.append((name, 52))
            continue
        if cycle <= step or cycle % step != pd.Timedelta(0):
            continue
        seasons.append((name, int(cycle / step)))
    return seasons


def usable_seasons(step: pd.Timedelta, history_steps: int, context: str = "") -> tuple[int, ...]:
    """Return the season lengths (in steps, shortest first) that ``history_steps`` values can support.

    Each candidate season without MIN_CYCLES whole cycles in the history is
    left out with an INFO line; ``context`` (such as ``daily peaks``) prefixes it.
    """
    seasons = []
    prefix = f"{context}: " if context else ""
    for name, length in candidate_seasons(step):
        if history_steps >= MIN_CYCLES * length:
            seasons.append(length)
            continue
        history = pd.Timedelta(step * history_steps)
        logger.info(
            "%s%s seasonality off: history of %s is shorter than %d %s cycles",
            prefix, name, _span(history), MIN_CYCLES, name,
        )
    return tuple(seasons)


def _span(span: pd.Timedelta) -> str:
    from forecasting.peaks import format_span

    return format_span(span)
