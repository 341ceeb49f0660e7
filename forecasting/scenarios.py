"""Growth scenarios laid over a forecast: compound growth, a step on a date, a temporary event.

A scenario multiplies the forecast points (``yhat`` and every interval bound)
by a factor that depends on time, and several scenarios multiply together:

- ``growth``: compound growth of ``growth_per_year`` on top of the forecast's
  own trend, from ``start`` on. At ``start + t`` the factor is
  ``(1 + growth_per_year) ** (t / 365.25 days)``, and it is 1 before ``start``.
- ``step``: the factor ``factor`` (1.3 for +30 %) from ``start`` on, such as a
  launch that adds users for good.
- ``event``: the factor ``factor`` (3.0 for x3) from ``start`` until ``end``
  (exclusive), such as a sale or a campaign.

A point at ``ts`` stands for the interval ``[ts, ts + step)``, where ``step``
is the spacing of the points (one day for daily peaks). A step or an event
that starts inside that interval already applies to the point, because the
peak of a day on which a launch happens includes the launch. Growth is
evaluated at ``ts`` itself.

:func:`apply_scenarios` is a pure, vectorised function, so the app can call
it on every slider move. The SQL view ``scenario_forecast_points`` computes
the same factors from the stored scenarios.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from capplan.errors import ConfigError
from capplan.units import parse_duration_s, parse_growth

__all__ = [
    "SCENARIO_KINDS",
    "Scenario",
    "apply_scenarios",
    "scenario_factors",
    "parse_step",
    "parse_event",
    "parse_growth_scenario",
]

ScenarioKind = Literal["growth", "step", "event"]
SCENARIO_KINDS: tuple[str, ...] = ("growth", "step", "event")
DAYS_PER_YEAR = 365.25
NANOSECONDS_PER_YEAR = DAYS_PER_YEAR * 86400 * 1e9
VALUE_COLUMNS = ("yhat", "lower", "upper", "lower_80", "upper_80", "lower_95", "upper_95")

_STEP_TEXT = re.compile(r"^\s*(?P<date>[^:]+(?::\d\d(?::\d\d)?)?)\s*:\s*(?P<change>[+-]?[0-9.]+%?)\s*$")
_EVENT_TEXT = re.compile(r"^\s*(?P<date>\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d)?)\s*:\s*(?P<duration>[0-9.]+[a-z]+)\s*:\s*x?(?P<factor>[0-9.]+)\s*$")


@dataclass(frozen=True)
class Scenario:
    """One overlay on a forecast; see the module docstring for what each kind does.

    ``start`` and ``end`` are naive UTC timestamps. ``start`` of a growth
    scenario may be None, which means the first forecast point.
    """

    kind: ScenarioKind
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    growth_per_year: float = 0.0
    factor: float = 1.0
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SCENARIO_KINDS:
            raise ConfigError(f"scenario kind {self.kind!r} is unknown; use one of {', '.join(SCENARIO_KINDS)}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _naive_utc(value, name))
        if self.kind == "growth":
            if not np.isfinite(self.growth_per_year) or self.growth_per_year <= -1.0:
                raise ConfigError(
                    f"growth scenario: {self.growth_per_year!r} per year would shrink demand to zero or below; "
                    "give a value above -1 (-100 %/y)"
                )
        else:
            if self.start is None:
                raise ConfigError(f"{self.kind} scenario needs a start date, such as 2027-03-01")
            if not np.isfinite(self.factor) or self.factor < 0.0:
                raise ConfigError(f"{self.kind} scenario: factor {self.factor!r} is invalid; give a number of 0 or more")
        if self.kind == "event":
            if self.end is None or self.start is None or self.end <= self.start:
                raise ConfigError(
                    f"event scenario: end {self.end} must be after start {self.start}; give a duration such as 2d"
                )

    @classmethod
    def growth(cls, per_year: float, start: pd.Timestamp | str | None = None, label: str = "") -> Scenario:
        """Compound growth of ``per_year`` (0.2 for 20 % a year) from ``start``."""
        return cls("growth", start=None if start is None else pd.Timestamp(start), growth_per_year=float(per_year), label=label)

    @classmethod
    def step(cls, start: pd.Timestamp | str, change: float, label: str = "") -> Scenario:
        """A lasting change of ``change`` (0.3 for +30 %) from ``start``."""
        return cls("step", start=pd.Timestamp(start), factor=1.0 + float(change), label=label)

    @classmethod
    def event(cls, start: pd.Timestamp | str, end: pd.Timestamp | str, factor: float, label: str = "") -> Scenario:
        """Demand times ``factor`` from ``start`` until ``end`` (exclusive)."""
        return cls("event", start=pd.Timestamp(start), end=pd.Timestamp(end), factor=float(factor), label=label)

    def to_row(self) -> dict[str, Any]:
        """Return the scenario as a plain dict with the store's column names."""
        row = asdict(self)
        row["start_ts"] = row.pop("start")
        row["end_ts"] = row.pop("end")
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Scenario:
        """Build a scenario from a stored row (the inverse of :meth:`to_row`)."""
        def timestamp(value: Any) -> pd.Timestamp | None:
            return None if value is None or pd.isna(value) else pd.Timestamp(value)

        return cls(
            kind=row["kind"],
            start=timestamp(row.get("start_ts")),
            end=timestamp(row.get("end_ts")),
            growth_per_year=float(row.get("growth_per_year") or 0.0),
            factor=float(row["factor"]) if row.get("factor") is not None else 1.0,
            label=str(row.get("label") or ""),
        )


def scenario_factors(
    ts: pd.Series | pd.DatetimeIndex | np.ndarray,
    scenarios: list[Scenario],
    step: pd.Timedelta | None = None,
) -> np.ndarray:
    """Return the combined factor of ``scenarios`` at each timestamp.

    ``step`` is the spacing of the points (see the module docstring); it
    defaults to the median spacing of ``ts``, or 0 for a single point.
    """
    times = pd.DatetimeIndex(ts).as_unit("ns").asi8
    factors = np.ones(len(times))
    if not scenarios or len(times) == 0:
        return factors
    if step is None:
        step_ns = int(np.median(np.diff(times))) if len(times) > 1 else 0
    else:
        step_ns = int(pd.Timedelta(step).value)
    interval_end = times + step_ns

    for scenario in scenarios:
        start_ns = times[0] if scenario.start is None else scenario.start.value
        if scenario.kind == "growth":
            years = np.maximum(times - start_ns, 0) / NANOSECONDS_PER_YEAR
            factors *= np.power(1.0 + scenario.growth_per_year, years)
        elif scenario.kind == "step":
            factors *= np.where(interval_end > start_ns, scenario.factor, 1.0)
        else:
            assert scenario.end is not None
            overlaps = (interval_end > start_ns) & (times < scenario.end.value)
            factors *= np.where(overlaps, scenario.factor, 1.0)
    return factors


def apply_scenarios(
    points: pd.DataFrame,
    scenarios: list[Scenario],
    step: pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Return a copy of forecast ``points`` with every value column multiplied by the scenarios' factor.

    ``points`` has a ``ts`` column and any of ``yhat``, ``lower``, ``upper``,
    ``lower_80``, ``upper_80``, ``lower_95`` and ``upper_95``; other columns
    are copied unchanged. A ``scenario_factor`` column is added. The input
    is not modified.
    """
    result = points.copy()
    factors = scenario_factors(points["ts"], scenarios, step)
    for column in VALUE_COLUMNS:
        if column in result.columns:
            result[column] = result[column].to_numpy(dtype=float) * factors
    result["scenario_factor"] = factors
    return result


def parse_step(text: str, option: str = "--step") -> Scenario:
    """Parse ``DATE:CHANGE`` such as ``2027-03-01:+30%`` or ``2027-03-01:0.3`` into a step scenario."""
    match = _STEP_TEXT.match(str(text))
    if match is None:
        raise ConfigError(f"{option}: invalid value {text!r}; expected DATE:CHANGE, such as 2027-03-01:+30%")
    start = _parse_date(match.group("date"), option, text)
    change_text = match.group("change")
    change = float(change_text.rstrip("%")) / (100.0 if change_text.endswith("%") else 1.0)
    if change <= -1.0:
        raise ConfigError(f"{option}: change {change_text!r} in {text!r} would remove all demand; give more than -100%")
    return Scenario.step(start, change, label=f"step {change_text} from {start.date()}")


def parse_event(text: str, option: str = "--event") -> Scenario:
    """Parse ``DATE:DURATION:xFACTOR`` such as ``2027-06-01:2d:x3`` into an event scenario."""
    match = _EVENT_TEXT.match(str(text))
    if match is None:
        raise ConfigError(f"{option}: invalid value {text!r}; expected DATE:DURATION:xFACTOR, such as 2027-06-01:2d:x3")
    start = _parse_date(match.group("date"), option, text)
    duration = pd.Timedelta(seconds=parse_duration_s(match.group("duration"), option))
    factor = float(match.group("factor"))
    return Scenario.event(start, start + duration, factor, label=f"x{factor:g} for {match.group('duration')} from {start}")


def parse_growth_scenario(text: str, option: str = "--growth") -> Scenario:
    """Parse a yearly growth such as ``20%/y`` into a growth scenario that starts at the first point."""
    per_year = parse_growth(text, option)
    return Scenario.growth(per_year, label=f"growth {text}")


def _parse_date(text: str, option: str, whole: str) -> pd.Timestamp:
    try:
        return _naive_utc(pd.Timestamp(text.strip()), "date")
    except ValueError as exc:
        raise ConfigError(f"{option}: invalid date {text!r} in {whole!r}; use ISO 8601, such as 2027-03-01") from exc


def _naive_utc(value: Any, name: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        raise ConfigError(f"scenario {name} {value!r} is not a valid timestamp; use ISO 8601, such as 2027-03-01")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp
