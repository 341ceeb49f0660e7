"""What-if plans for the Scenarios page: overlays on the forecast, then the plan under a chosen policy.

Pure functions without Streamlit, so the benchmark and the tests call them
directly. The demand overlays are :class:`forecasting.scenarios.Scenario`
objects applied with :func:`forecasting.scenarios.apply_scenarios`, and the
plan is :func:`forecasting.plan.build_plan` with the planned load per
instance, which is the safe load under the scenario's SLO minus the headroom.

Safe load under an SLO follows the measured steps as ``capplan probe`` does.
The breaking point is the offered rate of the first step whose p95 exceeds
the SLO, whose error rate exceeds the run's limit, or whose achieved rate
falls short of the offered rate. Generator-saturated steps are skipped,
because they measured the generator. The safe load is the default policy's
fraction of that breaking point.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from capplan.app_pages.intervals import shortfall_probability
from capplan.errors import ConfigError
from capplan.policy import DEFAULT_POLICY
from forecasting.plan import build_plan
from forecasting.scenarios import Scenario, apply_scenarios

__all__ = [
    "MIN_ACHIEVED_FRACTION",
    "PlanSettings",
    "PlanInputs",
    "ScenarioPlan",
    "safe_rps_for_slo",
    "predicted_p95_ms",
    "compute_scenario_plan",
]

# A step whose achieved rate is below this fraction of its offered rate broke,
# the same default as ``capplan probe step``.
MIN_ACHIEVED_FRACTION = 0.9
MAX_HEADROOM = 0.9
HOURS_PER_POINT = 24.0  # each forecast point is one day's peak


@dataclass(frozen=True)
class PlanSettings:
    """One what-if: demand overlays plus the policy that sizes the fleet for them.

    ``growth_per_year`` is compound growth on top of the forecast (0.2 for
    20 % a year). ``overlays`` are step (launch) and event scenarios.
    ``headroom`` is the fraction of the safe load per instance kept unused
    (0.2 plans each instance at 80 % of its safe load). ``price_per_instance_hour``
    is in the user's currency; a month costs instances x forecast hours x price,
    as ``capplan plan`` computes it.
    """

    growth_per_year: float = 0.0
    overlays: tuple[Scenario, ...] = ()
    slo_p95_ms: float | None = None
    headroom: float = 0.0
    redundancy: int = 1
    price_per_instance_hour: float = 0.0
    current_instances: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.headroom <= MAX_HEADROOM:
            raise ConfigError(f"headroom {self.headroom:g} is invalid; give a fraction from 0 to {MAX_HEADROOM:g}")
        if self.redundancy < 0:
            raise ConfigError(f"redundancy {self.redundancy} is invalid; give 0 or more spare instances")
        if self.current_instances < 1:
            raise ConfigError(f"current instances {self.current_instances} is invalid; give 1 or more")
        if self.price_per_instance_hour < 0:
            raise ConfigError(f"instance price {self.price_per_instance_hour:g} is invalid; give 0 or more")
        if self.slo_p95_ms is not None and not self.slo_p95_ms > 0:
            raise ConfigError(f"SLO p95 {self.slo_p95_ms!r} ms is invalid; give a latency above 0")

    def scenarios(self, start: pd.Timestamp) -> list[Scenario]:
        """Return the overlays with the growth as a growth scenario that starts at ``start``."""
        result = list(self.overlays)
        if self.growth_per_year:
            result.insert(0, Scenario.growth(self.growth_per_year, start=start, label="extra growth"))
        return result

    def to_json(self) -> str:
        """Encode the settings as JSON, with overlays in the row form of Scenario.to_row."""
        payload: dict[str, Any] = {
            "growth_per_year": self.growth_per_year,
            "overlays": [_overlay_row(overlay) for overlay in self.overlays],
            "slo_p95_ms": self.slo_p95_ms,
            "headroom": self.headroom,
            "redundancy": self.redundancy,
            "price_per_instance_hour": self.price_per_instance_hour,
            "current_instances": self.current_instances,
        }
        return json.dumps(payload)

    @classmethod
    def from_json(cls, text: str) -> PlanSettings:
        """Decode :meth:`to_json` output; raises ConfigError for a malformed value."""
        try:
            payload = json.loads(text)
            overlays = tuple(Scenario.from_row(row) for row in payload.get("overlays", []))
            slo = payload.get("slo_p95_ms")
            return cls(
                growth_per_year=float(payload.get("growth_per_year", 0.0)),
                overlays=overlays,
                slo_p95_ms=None if slo is None else float(slo),
                headroom=float(payload.get("headroom", 0.0)),
                redundancy=int(payload.get("redundancy", 1)),
                price_per_instance_hour=float(payload.get("price_per_instance_hour", 0.0)),
                current_instances=int(payload.get("current_instances", 1)),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ConfigError(f"stored scenario settings are malformed ({exc}); save the scenario again") from exc


def _overlay_row(overlay: Scenario) -> dict[str, Any]:
    row = overlay.to_row()
    for key in ("start_ts", "end_ts"):
        value = row.get(key)
        row[key] = None if value is None else pd.Timestamp(value).isoformat()
    return row


@dataclass(frozen=True)
class PlanInputs:
    """What a scenario plan starts from: a daily-peak forecast and the load test that sizes instances.

    ``points`` has ``ts``, ``yhat``, ``lower`` and ``upper``; ``level`` is the
    probability of the ``lower``..``upper`` interval. ``steps`` has
    ``offered_rps``, ``achieved_rps``, ``error_rate``, ``p95_ms`` and
    ``generator_saturated``. ``latency_model`` is a fitted
    :class:`forecasting.latency_model.LatencyModel` or None. ``history``
    contains the observed daily peaks (``ts``, ``value``) that charts draw.
    """

    points: pd.DataFrame
    level: float
    history_end: pd.Timestamp
    steps: pd.DataFrame
    run_slo_p95_ms: float | None
    run_max_error_rate: float | None
    run_safe_rps: float | None
    latency_model: Any = None
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"ts": pd.Series(dtype="datetime64[us]"), "value": pd.Series(dtype=float)}))


@dataclass(frozen=True)
class ScenarioPlan:
    """A plan under one scenario, with the per-month columns the app shows.

    ``months`` has month, months_ahead, demand_rps, demand_yhat_rps,
    instances, utilisation, hours, cost and predicted_p95_ms. ``runway_probability``
    is the probability that the runway day's peak exceeds the fleet capacity,
    under a normal approximation of the forecast interval.
    """

    points: pd.DataFrame
    months: pd.DataFrame
    runway_date: date | None
    runway_probability: float | None
    safe_rps_per_instance: float
    planned_rps_per_instance: float
    fleet_capacity_rps: float
    safe_rps_source: str
    p95_source: str
    settings: PlanSettings = field(repr=False, default_factory=PlanSettings)

    @property
    def total_cost(self) -> float:
        return float(self.months["cost"].sum()) if not self.months.empty else 0.0


def safe_rps_for_slo(inputs: PlanInputs, slo_p95_ms: float | None) -> tuple[float, str]:
    """Return the safe load per instance under ``slo_p95_ms`` and a sentence saying where it comes from.

    The run's stored safe load is used when the SLO is the run's own. Raises
    ConfigError when no step passed, so no safe load exists.
    """
    same_slo = slo_p95_ms is None or (
        inputs.run_slo_p95_ms is not None and math.isclose(slo_p95_ms, inputs.run_slo_p95_ms)
    )
    if same_slo and inputs.run_safe_rps is not None and inputs.run_safe_rps > 0:
        return float(inputs.run_safe_rps), "the load-test run's safe load"

    steps = inputs.steps.sort_values("offered_rps")
    steps = steps[~steps["generator_saturated"].astype(bool)]
    broken = steps["achieved_rps"] < MIN_ACHIEVED_FRACTION * steps["offered_rps"]
    if slo_p95_ms is not None:
        broken |= steps["p95_ms"].fillna(math.inf) > slo_p95_ms
    if inputs.run_max_error_rate is not None:
        broken |= steps["error_rate"] > inputs.run_max_error_rate
    breaking = steps.loc[broken, "offered_rps"]
    breaking_rps = float(breaking.iloc[0]) if not breaking.empty else None
    passed = steps.loc[~broken & (steps["offered_rps"] < (breaking_rps or math.inf)), "offered_rps"]
    highest_passed = float(passed.max()) if not passed.empty else None
    safe, _ = DEFAULT_POLICY.loads(breaking_rps, highest_passed)
    slo_text = f"p95 ≤ {slo_p95_ms:g} ms" if slo_p95_ms is not None else "the run's limits"
    if safe is None or safe <= 0 or (breaking_rps is not None and highest_passed is None):
        raise ConfigError(
            f"no measured step meets {slo_text}, so there is no safe load; relax the SLO or run a test "
            "that starts at a lower rate"
        )
    fraction = f"{DEFAULT_POLICY.safe_fraction:.0%}"
    if breaking_rps is None:
        return safe, f"{fraction} of the highest step that met {slo_text} (no step broke it, so a lower bound)"
    return safe, f"{fraction} of the first step that broke {slo_text} ({breaking_rps:g} rps)"


def predicted_p95_ms(steps: pd.DataFrame, latency_model: Any, load_per_instance_rps: np.ndarray) -> tuple[np.ndarray, str]:
    """Return p95 latency at each per-instance load and the method used.

    With a fitted latency model (``forecasting.latency_model.LatencyModel``)
    that found the capacity, its prediction; otherwise a linear interpolation
    between measured steps, NaN above the highest measured rate.
    """
    model = latency_model
    if model is not None and getattr(model, "has_signal", False) and "p95" in model.statistics:
        values = [model.predict_ms("p95", float(load)) for load in load_per_instance_rps]
        return np.array([math.nan if value is None else value for value in values]), "queueing model fitted to the run"
    steps = steps[~steps["generator_saturated"].astype(bool)].dropna(subset=["p95_ms"])
    steps = steps.sort_values("offered_rps")
    if steps.empty:
        return np.full(len(load_per_instance_rps), math.nan), "no measured p95"
    offered = steps["offered_rps"].to_numpy(dtype=float)
    p95 = steps["p95_ms"].to_numpy(dtype=float)
    result = np.interp(load_per_instance_rps, offered, p95)
    result[load_per_instance_rps > offered.max()] = math.nan
    return result, "interpolated between measured steps"


def compute_scenario_plan(inputs: PlanInputs, settings: PlanSettings) -> ScenarioPlan:
    """Apply the overlays to the forecast and plan the fleet under the settings' policy."""
    first_day = pd.Timestamp(inputs.points["ts"].min())
    points = apply_scenarios(inputs.points, settings.scenarios(first_day), step=pd.Timedelta(days=1))
    safe_rps, safe_source = safe_rps_for_slo(inputs, settings.slo_p95_ms)
    planned_rps = safe_rps * (1.0 - settings.headroom)

    plan = build_plan(points, planned_rps, settings.current_instances, settings.redundancy, start=inputs.history_end)
    months = plan.months.copy()
    serving = (months["instances"] - settings.redundancy).clip(lower=1)
    hours = points.groupby(pd.to_datetime(points["ts"]).dt.to_period("M"))["ts"].count() * HOURS_PER_POINT
    months["hours"] = hours.to_numpy(dtype=float)
    months["cost"] = months["instances"] * months["hours"] * settings.price_per_instance_hour
    loads = (months["demand_rps"] / serving).to_numpy(dtype=float)
    p95, p95_source = predicted_p95_ms(inputs.steps, inputs.latency_model, loads)
    months["predicted_p95_ms"] = p95

    probability = None
    if plan.runway_date is not None:
        daily = shortfall_probability(points, inputs.level, plan.fleet_capacity_rps)
        day_index = np.flatnonzero(pd.to_datetime(points["ts"]).dt.date.to_numpy() == plan.runway_date)
        if day_index.size:
            probability = float(daily[day_index[0]])
    return ScenarioPlan(
        points=points,
        months=months,
        runway_date=plan.runway_date,
        runway_probability=probability,
        safe_rps_per_instance=safe_rps,
        planned_rps_per_instance=planned_rps,
        fleet_capacity_rps=plan.fleet_capacity_rps,
        safe_rps_source=safe_source,
        p95_source=p95_source,
        settings=settings,
    )
