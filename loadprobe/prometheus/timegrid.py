"""Time bounds, the evaluation grid of range queries, and chunks within the point limit.

Prometheus evaluates a range query at ``start, start + step, ...`` up to
``end`` and rejects a request where ``(end - start) / step`` exceeds 11,000
(``exceeded maximum resolution of 11,000 points per timeseries``, checked in
its ``/api/v1/query_range`` handler). capplan aligns every window to
multiples of the step since the Unix epoch, so all runs of a collection
share one grid: a resumed run requests the same timestamps as the first,
and the upsert by (series, timestamp) can replace instead of adding rows.
Consecutive chunks start one step after the previous chunk's last point, so
no edge point is fetched twice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd

from capplan.errors import ConfigError
from capplan.units import parse_duration_s

__all__ = [
    "PROMETHEUS_MAX_POINTS",
    "Chunk",
    "parse_time_bound",
    "parse_step_s",
    "align_window",
    "plan_chunks",
    "utc_now",
]

# Points per series that one Prometheus range query may return: 11,000
# intervals plus the first point.
PROMETHEUS_MAX_POINTS = 11_001
DEFAULT_POINTS_PER_CHUNK = 11_000

_RELATIVE = re.compile(r"^\s*[0-9]*\.?[0-9]+\s*(ms|s|m|min|h|d|w)\s*$", re.IGNORECASE)
_DATE_LIKE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Chunk:
    """One range query: evaluated at ``start``, every ``step_s`` seconds, up to ``end`` inclusive (naive UTC)."""

    start: datetime
    end: datetime
    step_s: int

    @property
    def points(self) -> int:
        return int((self.end - self.start).total_seconds()) // self.step_s + 1


def utc_now() -> datetime:
    """Return the current time as a naive UTC datetime, the store's convention."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def parse_time_bound(text: str, option: str, now: datetime | None = None) -> datetime:
    """Parse ``now``, a duration before now (``90d``, ``6h``) or an ISO 8601 timestamp into naive UTC.

    A timestamp without an offset is taken as UTC.
    """
    now = now or utc_now()
    raw = (text or "").strip()
    if raw.lower() == "now":
        return now
    if _RELATIVE.match(raw):
        return now - timedelta(seconds=parse_duration_s(raw, option))
    if _DATE_LIKE.match(raw):
        try:
            moment = pd.Timestamp(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{option}: invalid timestamp {text!r}; give ISO 8601 such as 2026-10-05T00:00:00Z"
            ) from exc
        if moment.tzinfo is not None:
            moment = moment.tz_convert("UTC").tz_localize(None)
        return moment.to_pydatetime()
    raise ConfigError(
        f"{option}: invalid time {text!r}; give 'now', a duration before now such as 90d or 6h, "
        "or an ISO 8601 timestamp such as 2026-10-05T00:00:00Z"
    )


def parse_step_s(text: str, option: str = "--step") -> int:
    """Parse a query step into whole seconds, which keeps the grid on exact timestamps."""
    seconds = parse_duration_s(text, option)
    if seconds < 1 or abs(seconds - round(seconds)) > 1e-9:
        raise ConfigError(f"{option}: {text!r} is not a whole number of seconds; give for example 15s, 1m or 5m")
    return int(round(seconds))


def _epoch_s(moment: datetime) -> float:
    return moment.replace(tzinfo=timezone.utc).timestamp()


def _from_epoch_s(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


def align_window(since: datetime, until: datetime, step_s: int) -> tuple[datetime, datetime] | None:
    """Return the first and last grid points within ``[since, until]``, or None when there is none."""
    first = math.ceil(_epoch_s(since) / step_s) * step_s
    last = math.floor(_epoch_s(until) / step_s) * step_s
    if last < first:
        return None
    return _from_epoch_s(first), _from_epoch_s(last)


def plan_chunks(
    first: datetime,
    last: datetime,
    step_s: int,
    points_per_chunk: int = DEFAULT_POINTS_PER_CHUNK,
) -> list[Chunk]:
    """Split the grid points from ``first`` to ``last`` (both on the grid) into range queries.

    Each chunk has at most ``points_per_chunk`` points, and the next chunk
    starts one step after the previous chunk's end.
    """
    if not 1 <= points_per_chunk <= PROMETHEUS_MAX_POINTS:
        raise ConfigError(
            f"points per chunk {points_per_chunk} is outside 1..{PROMETHEUS_MAX_POINTS}, "
            "the most points per series that Prometheus returns for one range query"
        )
    start_s = int(_epoch_s(first))
    last_s = int(_epoch_s(last))
    if start_s % step_s or last_s % step_s:
        raise ValueError(f"window {first}..{last} is not on the {step_s} s grid; align it with align_window")
    chunks = []
    span_s = (points_per_chunk - 1) * step_s
    while start_s <= last_s:
        end_s = min(start_s + span_s, last_s)
        chunks.append(Chunk(_from_epoch_s(start_s), _from_epoch_s(end_s), step_s))
        start_s = end_s + step_s
    return chunks
