"""Capacity of one instance: models fitted to measured levels, and the safe-load policy.

A *level* is one measured load: a step of a run, or a row of a measurements
table. Two models are fitted to the usable levels:

- the Universal Scalability Law (:mod:`forecasting.scalability`) on
  throughput against concurrency. Concurrency is the closed model's users,
  else Little's law: achieved rps x mean latency.
- the queueing latency model (:mod:`forecasting.latency_model`) on latency
  against offered rate, for the steps where the target kept up.

The peak comes from the model that fits the workload. For open-model steps
the latency model is used first, because under Little's law the USL shape is
exact only for exponential service times: on an M/D/1 queue observed up to
60 % load the USL fit puts the peak about 25 % low, while the queueing form
is exact. Closed-model steps and measurement tables use the USL first. When
neither model sees the load bend (a rate limiter, a large worker pool), the
report says so and predicts no peak.

Steps whose generator was saturated are left out of every fit. Fewer than
MIN_LEVELS usable levels fit no model, and the report falls back to the
measured breaking point.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capplan.errors import ConfigError, InputDataError
from capplan.policy import SafeLoadPolicy
from capplan.store import Store
from capplan.store.runs import get_run, get_steps
from forecasting.latency_model import MIN_RATES, LatencyModel, fit_latency_model
from forecasting.measurements import read_measurements_csv
from forecasting.scalability import MIN_LEVELS, UslFit, fit_usl

__all__ = [
    "POLICY_BASES",
    "MIN_ACHIEVED_FRACTION",
    "CapacityPolicy",
    "CapacityReport",
    "usable_levels",
    "build_report",
    "run_report",
    "measurements_report",
    "read_measurements_csv",
]

logger = logging.getLogger(__name__)

POLICY_BASES = ("breaking-point", "slo")
MIN_ACHIEVED_FRACTION = 0.9   # a step below this share of its offered rate did not keep up (the probe's rule)
MAX_LATENCY_ERROR_RATE = 0.05  # errors answered fast would hide the queue, so such steps stay out of the latency fit
LATENCY_COLUMNS = {"mean": "mean_ms", "p50": "p50_ms", "p90": "p90_ms", "p95": "p95_ms", "p99": "p99_ms"}


@dataclass(frozen=True)
class CapacityPolicy:
    """How safe and recommended load follow from the fitted capacity.

    ``breaking-point``: fractions of the breaking point (measured, else the
    predicted peak). ``slo``: fractions of the highest rate whose predicted
    p95 meets ``slo_p95_ms`` (the run's SLO when None), so the fractions are
    the headroom kept below that rate.
    """

    basis: str = "breaking-point"
    safe_fraction: float = 0.8
    recommended_fraction: float = 0.6
    slo_p95_ms: float | None = None

    def __post_init__(self) -> None:
        if self.basis not in POLICY_BASES:
            raise ConfigError(f"policy basis {self.basis!r} is unknown; use one of {', '.join(POLICY_BASES)}")
        SafeLoadPolicy(self.safe_fraction, self.recommended_fraction)
        if self.slo_p95_ms is not None and not self.slo_p95_ms > 0:
            raise ConfigError(f"SLO p95 {self.slo_p95_ms!r} ms is invalid; give a latency above 0, such as 500")


@dataclass
class CapacityReport:
    """The capacity of one instance, with the fits and notes behind every number (rates in rps)."""

    source: str
    run_id: int | None
    upto_rps: float | None
    levels: int
    excluded: list[dict[str, Any]]
    peak_rps: float | None
    peak_concurrency: float | None
    peak_source: str | None
    knee_rps: float | None
    breaking_point_rps: float | None
    measured_peak_rps: float | None
    safe_rps: float | None
    recommended_rps: float | None
    safe_basis: str | None
    policy: CapacityPolicy
    slo_p95_ms: float | None
    usl: UslFit | None
    latency: LatencyModel | None
    notes: list[str] = field(default_factory=list)

    def predict_latency_ms(self, statistic: str, rate_rps: float) -> float | None:
        """Return the latency model's prediction, or None without a model or at or beyond its capacity."""
        if self.latency is None:
            return None
        return self.latency.predict_ms(statistic, rate_rps)

    def as_dict(self) -> dict[str, Any]:
        usl = self.usl.as_dict() if self.usl is not None else None
        return {
            "source": self.source,
            "run_id": self.run_id,
            "upto_rps": self.upto_rps,
            "levels": self.levels,
            "peak_rps": self.peak_rps,
            "peak_concurrency": self.peak_concurrency,
            "peak_source": self.peak_source,
            "knee_rps": self.knee_rps,
            "breaking_point_rps": self.breaking_point_rps,
            "measured_peak_rps": self.measured_peak_rps,
            "safe_rps": self.safe_rps,
            "recommended_rps": self.recommended_rps,
            "safe_basis": self.safe_basis,
            "policy": asdict(self.policy),
            "slo_p95_ms": self.slo_p95_ms,
            "sigma": usl["sigma"] if usl else None,
            "kappa": usl["kappa"] if usl else None,
            "lambda": usl["lambda"] if usl else None,
            "intervals": usl["intervals"] if usl else None,
            "r_squared": usl["r_squared"] if usl else None,
            "usl": usl,
            "latency_model": self.latency.as_dict() if self.latency is not None else None,
            "excluded_steps": self.excluded,
            "notes": self.notes,
        }


def usable_levels(steps: pd.DataFrame, upto_rps: float | None = None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Return the steps fit to model and a list of the excluded ones with the reason.

    The result has the columns ``rate_rps`` (offered rate, or throughput
    without one), ``drawn_rps`` (arrivals the step drew per second, else the
    offered rate), ``throughput_rps``, ``concurrency``, ``kept_up``,
    ``passed`` and the latency columns.
    """
    frame = steps.copy().reset_index(drop=True)
    excluded: list[dict[str, Any]] = []
    keep = np.ones(len(frame), dtype=bool)
    for index, row in frame.iterrows():
        reason = None
        if _flag(row, "generator_saturated"):
            reason = "generator saturated: its latency is the generator's, not the target's"
        elif _flag(row, "interrupted"):
            reason = "interrupted before the end of the step"
        elif upto_rps is not None and _number(row, "offered_rps") is not None and row["offered_rps"] > upto_rps * (1 + 1e-9):
            reason = f"offered above --upto {upto_rps:g} rps"
        if reason is not None:
            keep[index] = False
            excluded.append({"step_index": _step_index(row, index), "offered_rps": _number(row, "offered_rps"), "reason": reason})
    frame = frame[keep].reset_index(drop=True)

    throughput = pd.to_numeric(frame.get("achieved_rps"), errors="coerce").astype(float)
    offered = pd.to_numeric(frame.get("offered_rps", pd.Series(np.nan, index=frame.index)), errors="coerce").astype(float)
    mean_s = pd.to_numeric(frame.get("mean_ms", pd.Series(np.nan, index=frame.index)), errors="coerce").astype(float) / 1000.0
    concurrency = throughput * mean_s
    for column in ("concurrency_mean", "users"):
        if column in frame.columns:
            measured = pd.to_numeric(frame[column], errors="coerce").astype(float)
            concurrency = measured.where(measured.notna(), concurrency)
    levels = pd.DataFrame(
        {
            "step_index": frame.get("step_index", pd.Series(range(len(frame)))),
            "offered_rps": offered,
            "rate_rps": offered.where(offered.notna(), throughput),
            "throughput_rps": throughput,
            "concurrency": concurrency,
            "passed": frame["passed"].astype(bool) if "passed" in frame.columns else True,
            "error_rate": pd.to_numeric(frame.get("error_rate", 0.0), errors="coerce"),
        }
    )
    for name, column in LATENCY_COLUMNS.items():
        levels[column] = pd.to_numeric(frame[column], errors="coerce").astype(float) if column in frame.columns else np.nan
    # Compare with the arrivals the step drew, as the probe does: a Poisson step may draw fewer
    # than rate x duration, which is not the target falling behind.
    drawn = _drawn_rps(frame, offered)
    levels["drawn_rps"] = drawn
    levels["kept_up"] = (offered.isna() | (throughput >= MIN_ACHIEVED_FRACTION * drawn)) & (
        levels["error_rate"].fillna(0.0) <= MAX_LATENCY_ERROR_RATE
    )
    return levels, excluded


def _drawn_rps(frame: pd.DataFrame, offered: pd.Series) -> pd.Series:
    """Return the rate of arrivals each step drew (sent plus dropped, per second), else its offered rate."""
    if "requests" not in frame.columns or "duration_s" not in frame.columns:
        return offered
    sent = pd.to_numeric(frame["requests"], errors="coerce").astype(float)
    if "dropped" in frame.columns:
        sent = sent + pd.to_numeric(frame["dropped"], errors="coerce").fillna(0.0).astype(float)
    duration = pd.to_numeric(frame["duration_s"], errors="coerce").astype(float)
    drawn = sent / duration.where(duration > 0)
    return drawn.where(drawn.notna() & (drawn > 0), offered)


def build_report(
    levels: pd.DataFrame,
    policy: CapacityPolicy,
    *,
    source: str,
    open_model: bool,
    slo_p95_ms: float | None = None,
    run_id: int | None = None,
    upto_rps: float | None = None,
    excluded: list[dict[str, Any]] | None = None,
    fit_usl_model: bool = True,
) -> CapacityReport:
    """Fit the models to prepared levels (see :func:`usable_levels`) and apply the policy."""
    notes: list[str] = []
    fit_levels = levels[(levels["throughput_rps"] > 0) & (levels["concurrency"] > 0)]
    count = int(fit_levels["concurrency"].nunique())
    usl: UslFit | None = None
    latency: LatencyModel | None = None
    if count < MIN_LEVELS:
        notes.append(
            f"only {count} usable level(s); the models need at least {MIN_LEVELS}, so the capacity "
            "falls back to the measured breaking point"
        )
        logger.info("%s: %d usable levels, fewer than %d; no model fitted", source, count, MIN_LEVELS)
    else:
        if fit_usl_model:
            usl = fit_usl(fit_levels["concurrency"].to_numpy(), fit_levels["throughput_rps"].to_numpy())
        latency = _fit_latency(levels, open_model, notes)

    measured_peak = float(levels["throughput_rps"].max()) if levels["throughput_rps"].notna().any() else None
    breaking_point = _measured_breaking_point(levels)
    peak, peak_concurrency, peak_source, knee = _choose_peak(levels, usl, latency, open_model, notes)
    if peak is not None and measured_peak is not None and measured_peak > 1.05 * peak:
        notes.append(
            f"a step achieved {measured_peak:.4g} rps, above the predicted peak of {peak:.4g} rps; "
            "the model underestimates this instance"
        )

    slo = policy.slo_p95_ms if policy.slo_p95_ms is not None else slo_p95_ms
    safe, recommended, basis = _apply_policy(levels, policy, slo, breaking_point, peak, peak_source, latency, notes)
    return CapacityReport(
        source=source,
        run_id=run_id,
        upto_rps=upto_rps,
        levels=count,
        excluded=list(excluded or []),
        peak_rps=peak,
        peak_concurrency=peak_concurrency,
        peak_source=peak_source,
        knee_rps=knee,
        breaking_point_rps=breaking_point,
        measured_peak_rps=measured_peak,
        safe_rps=safe,
        recommended_rps=recommended,
        safe_basis=basis,
        policy=policy,
        slo_p95_ms=slo,
        usl=usl,
        latency=latency,
        notes=notes,
    )


def run_report(store: Store, run_id: int, policy: CapacityPolicy | None = None, upto_rps: float | None = None) -> CapacityReport:
    """Fit the capacity of one stored run, using only its steps offered at or below ``upto_rps`` when given."""
    if upto_rps is not None and not (math.isfinite(upto_rps) and upto_rps > 0):
        raise ConfigError(f"--upto {upto_rps!r} is invalid; give a rate above 0 in requests/s, such as 120")
    policy = policy or CapacityPolicy()
    run = get_run(store, run_id)
    steps = get_steps(store, run_id)
    if steps.empty:
        raise InputDataError(f"run {run_id} has no stored steps; run 'capplan probe step' to measure one")
    levels, excluded = usable_levels(steps, upto_rps)
    if levels.empty:
        raise InputDataError(
            f"run {run_id} has no usable steps at or below --upto {upto_rps:g} rps; raise --upto or leave it out"
            if upto_rps is not None
            else f"run {run_id} has no usable steps: every step was excluded ({excluded[0]['reason']})"
        )
    if excluded:
        logger.info("run %d: %d step(s) left out of the fit", run_id, len(excluded))
    closed = "model" in steps.columns and (steps["model"] == "closed").any()
    slo = run.get("slo_p95_ms")
    return build_report(
        levels,
        policy,
        source=f"run {run_id}",
        open_model=not closed,
        slo_p95_ms=None if slo is None or pd.isna(slo) else float(slo),
        run_id=run_id,
        upto_rps=upto_rps,
        excluded=excluded,
    )


def measurements_report(path: str | Path, policy: CapacityPolicy | None = None) -> CapacityReport:
    """Fit the capacity to a table of concurrency and throughput (and optionally mean latency)."""
    table = read_measurements_csv(path)
    levels, _ = usable_levels(table)
    return build_report(levels, policy or CapacityPolicy(), source=f"measurements {Path(path).name}", open_model=False)


def _fit_latency(levels: pd.DataFrame, open_model: bool, notes: list[str]) -> LatencyModel | None:
    candidates = levels[levels["kept_up"] & levels["mean_ms"].notna() & (levels["rate_rps"] > 0)]
    if open_model:
        candidates = candidates[candidates["passed"]]
    else:
        # Without an offered rate the rate is the throughput, which is monotone only up to its maximum.
        top = candidates["throughput_rps"].idxmax() if not candidates.empty else None
        candidates = candidates.loc[:top] if top is not None else candidates
    if candidates["rate_rps"].nunique() < MIN_RATES:
        if open_model:
            notes.append(f"fewer than {MIN_RATES} steps kept up with their offered rate; no latency model")
        return None
    latencies = {name: candidates[column].to_numpy() for name, column in LATENCY_COLUMNS.items()}
    # NOTE: the fit uses the offered rate, not the rate each Poisson step drew. Drawn rates are
    # closer to what the queue saw, but on the CPU-bound target they put the peak about 5 % lower
    # (6 runs), because such a server serves a request more cheaply under load.
    return fit_latency_model(candidates["rate_rps"].to_numpy(), latencies, primary="mean")


def _measured_breaking_point(levels: pd.DataFrame) -> float | None:
    failed = levels[~levels["passed"] & levels["offered_rps"].notna()]
    if failed.empty:
        return None
    return float(failed.sort_values("step_index")["offered_rps"].iloc[0])


def _choose_peak(
    levels: pd.DataFrame, usl: UslFit | None, latency: LatencyModel | None, open_model: bool, notes: list[str]
) -> tuple[float | None, float | None, str | None, float | None]:
    """Return (peak_rps, peak_concurrency, source, knee_rps) from the first model with a signal."""
    order = ["latency", "usl"] if open_model else ["usl", "latency"]
    for name in order:
        if name == "latency" and latency is not None:
            if latency.has_signal:
                return latency.capacity_rps, None, "latency_model", latency.knee_rps()
            notes.append(latency.signal_note() or "")
        if name == "usl" and usl is not None:
            if usl.has_signal:
                params = usl.params
                concurrency = params.peak_concurrency if math.isfinite(params.peak_concurrency) else None
                if concurrency is None:
                    notes.append(
                        "kappa is 0, so throughput approaches its ceiling only as concurrency grows without "
                        "bound; peak_rps is that ceiling (lambda / sigma) and peak_concurrency is null"
                    )
                return params.peak_throughput, concurrency, "usl", float(params.throughput(params.knee_concurrency))
            notes.append(usl.signal_note() or "")

    limited = levels[levels["offered_rps"].notna() & ~levels["kept_up"] & (levels["throughput_rps"] > 0)]
    if not limited.empty:
        row = levels.loc[levels["throughput_rps"].idxmax()]
        notes.append("no model predicts the peak; peak_rps is the highest throughput measured while the target fell behind")
        concurrency = float(row["concurrency"]) if pd.notna(row["concurrency"]) else None
        return float(row["throughput_rps"]), concurrency, "measured", None
    return None, None, None, None


def _apply_policy(
    levels: pd.DataFrame,
    policy: CapacityPolicy,
    slo_p95_ms: float | None,
    breaking_point: float | None,
    peak: float | None,
    peak_source: str | None,
    latency: LatencyModel | None,
    notes: list[str],
) -> tuple[float | None, float | None, str | None]:
    if policy.basis == "slo":
        basis_rps = _slo_rate(slo_p95_ms, latency, breaking_point, notes)
        if basis_rps is not None:
            return basis_rps * policy.safe_fraction, basis_rps * policy.recommended_fraction, "predicted p95 meets the SLO"
        notes.append("the slo policy had no predicted rate, so it falls back to the breaking point")

    if breaking_point is not None:
        basis_rps, label = breaking_point, "measured breaking point"
    elif peak is not None:
        basis_rps, label = peak, f"predicted peak ({peak_source})" if peak_source != "measured" else "measured peak"
    else:
        passed = levels.loc[levels["passed"], "rate_rps"]
        if passed.empty:
            return None, None, None
        basis_rps, label = float(passed.max()), "highest passed step (lower bound)"
        notes.append(
            f"no breaking point and no predicted peak: the safe load is a fraction of the highest passed "
            f"rate, {basis_rps:.4g} rps, so the real limit lies above; offer higher rates to find it"
        )
    return basis_rps * policy.safe_fraction, basis_rps * policy.recommended_fraction, label


def _slo_rate(
    slo_p95_ms: float | None, latency: LatencyModel | None, breaking_point: float | None, notes: list[str]
) -> float | None:
    if slo_p95_ms is None:
        notes.append("the slo policy needs an SLO: give --slo-p95 or use a run that recorded one")
        return None
    if latency is None or not latency.has_signal or "p95" not in latency.statistics:
        notes.append("the slo policy needs a latency model with a queueing signal and p95 values")
        return None
    rate = latency.rate_for_latency("p95", slo_p95_ms)
    if rate is None:
        return None
    if rate == 0.0:
        notes.append(f"the SLO of {slo_p95_ms:g} ms is below the no-load p95; no rate meets it")
        return None
    if breaking_point is not None and breaking_point < rate:
        notes.append(
            f"the measured breaking point ({breaking_point:g} rps) is below the rate whose predicted p95 meets "
            f"the SLO ({rate:.4g} rps), so the breaking point bounds it"
        )
        return breaking_point
    return rate


def _flag(row: pd.Series, column: str) -> bool:
    value = row.get(column)
    return bool(value) if value is not None and not pd.isna(value) else False


def _number(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    return None if value is None or pd.isna(value) else float(value)


def _step_index(row: pd.Series, position: int) -> int:
    value = row.get("step_index")
    return position if value is None or pd.isna(value) else int(value)
