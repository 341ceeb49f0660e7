"""Growth scenarios: the current plan redone with extra growth on top of its forecast.

A scenario is a compound growth per year from the forecast's history end on,
laid over the forecast points with :func:`forecasting.scenarios.apply_scenarios`
(the same overlay as the app's scenarios and the ``scenario_forecast_points``
view). The overlaid points are planned with :func:`forecasting.plan.build_plan`,
using the stored plan's safe load per instance, spares and current fleet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from capplan.errors import ConfigError
from capplan.review.model import PlanInfo, ScenarioOutcome
from capplan.review.quarters import Quarter
from capplan.units import parse_growth
from forecasting.plan import build_plan
from forecasting.scenarios import Scenario, apply_scenarios

__all__ = ["DEFAULT_SCENARIOS", "parse_scenarios", "plan_scenario"]

DEFAULT_SCENARIOS: dict[str, float] = {"forecast": 0.0, "faster growth": 0.20, "slower growth": -0.10}
_HORIZON_PART = re.compile(r"(\d+)\s+(year|month|week|day|hour|minute|second)s?")


def parse_scenarios(spec: Mapping[str, float | str] | Sequence[str] | str | None) -> dict[str, float]:
    """Return scenario names with their extra growth per year as fractions.

    Accepts a mapping (``{"high": "25%/y"}``), a list of ``NAME=GROWTH``
    texts, or one such text; None gives DEFAULT_SCENARIOS.
    """
    if spec is None:
        return dict(DEFAULT_SCENARIOS)
    if isinstance(spec, str):
        spec = [spec]
    pairs: list[tuple[str, float | str]] = []
    if isinstance(spec, Mapping):
        pairs = [(str(name), value) for name, value in spec.items()]
    else:
        for text in spec:
            name, separator, growth = str(text).partition("=")
            if not separator or not name.strip() or not growth.strip():
                raise ConfigError(
                    f"--scenario: invalid value {text!r}; give NAME=GROWTH such as high=25%/y or flat=0"
                )
            pairs.append((name.strip(), growth.strip()))
    scenarios: dict[str, float] = {}
    for name, value in pairs:
        if name in scenarios:
            raise ConfigError(f"--scenario: the name {name!r} is given twice; give each scenario its own name")
        growth = float(value) if isinstance(value, (int, float)) else parse_growth(str(value), f"scenario {name!r}")
        if growth <= -1.0:
            raise ConfigError(f"scenario {name!r}: growth {value!r} would shrink demand below zero; give more than -100%/y")
        scenarios[name] = growth
    if not scenarios:
        raise ConfigError("no scenarios given; give at least one NAME=GROWTH such as forecast=0")
    return scenarios


def _plan_end(plan: PlanInfo, history_end: pd.Timestamp) -> pd.Timestamp:
    """Return the last moment the stored plan covered: history end plus its horizon, else its last month's end."""
    if plan.horizon:
        parts = _HORIZON_PART.findall(plan.horizon)
        if parts:
            offset = pd.DateOffset(**{f"{unit}s": int(amount) for amount, unit in parts})
            return history_end + offset
    return plan.months["month"].max() + pd.DateOffset(months=1) - pd.Timedelta(microseconds=1)


def plan_scenario(
    name: str,
    growth_per_year: float,
    plan: PlanInfo,
    points: pd.DataFrame,
    history_end: pd.Timestamp,
    quarter: Quarter,
) -> ScenarioOutcome:
    """Plan the scenario over the stored plan's horizon and return its months and runway.

    NOTE: build_plan sizes linearly (demand / safe load per instance). A stored
    plan made with a fitted scalability curve (plan_months.scaling_efficiency
    below 1) needs more instances at large fleets, so even the growth-0
    scenario can show fewer instances than that plan.
    """
    covered = points[points["ts"] <= _plan_end(plan, history_end)]
    scaled = apply_scenarios(covered, [Scenario.growth(growth_per_year, start=history_end)])
    result = build_plan(scaled, plan.safe_rps_per_instance, plan.current_instances, plan.redundancy, start=history_end)
    months = result.months.copy()
    months["month"] = pd.to_datetime(months["month"])

    def max_between(start: pd.Timestamp, end: pd.Timestamp) -> int | None:
        inside = months[(months["month"] >= start) & (months["month"] < end)]
        return None if inside.empty else int(inside["instances"].max())

    following = quarter.next()
    return ScenarioOutcome(
        name=name,
        growth_per_year=growth_per_year,
        runway_date=result.runway_date,
        months=months,
        instances_this_quarter=max_between(quarter.start, quarter.end),
        instances_next_quarter=max_between(following.start, following.end),
        instances_max=int(months["instances"].max()) if not months.empty else None,
    )
