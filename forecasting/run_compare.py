"""Comparing two runs of the same service, before and after a change, with bootstrap intervals.

Two differences are reported, each as ``after - before`` with a percentile
bootstrap interval:

- safe load: the safe load of :mod:`forecasting.capacity` under one policy.
- p95 at equal rate: the measured p95 of the steps at the highest offered
  rate both runs measured (or at ``at_rps``). At a rate that one of the runs
  did not measure, the latency model's prediction is used instead.

A bootstrap replicate resamples every step's requests from its stored latency
histogram (a multinomial draw over the histogram's buckets), draws its error
count with binomial noise, judges the step again against the run's SLO, and
recomputes the capacity report. The achieved throughput is kept as measured. So the
interval covers the sampling noise of the requests, including a borderline
step that would have passed or failed on another day. It does not cover
drift between the days the runs were made.

NOTE: requests are resampled as independent draws, but latencies inside a
queueing step are correlated, so the intervals are somewhat too narrow near
saturation. The USL does not enter the comparison (the safe load comes from
the breaking point or the latency model), which keeps each replicate fast.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from capplan.errors import ConfigError, InputDataError
from capplan.store import Store
from capplan.store.runs import get_run, get_steps
from forecasting.capacity import (
    MAX_LATENCY_ERROR_RATE,
    MIN_ACHIEVED_FRACTION,
    CapacityPolicy,
    CapacityReport,
    build_report,
    usable_levels,
)

__all__ = ["DEFAULT_REPLICATES", "Difference", "RunComparison", "compare_runs"]

logger = logging.getLogger(__name__)

DEFAULT_REPLICATES = 300
DEFAULT_CONFIDENCE = 0.95
MIN_VALID_SHARE = 0.5        # below this share of replicates with a value, no interval is given
EQUAL_RATE_TOLERANCE = 0.005  # offered rates within 0.5 % count as the same rate
_PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p95_ms": 95.0, "p99_ms": 99.0}


@dataclass(frozen=True)
class Difference:
    """A before/after pair and ``after - before`` with its bootstrap interval; None where unknown."""

    before: float | None
    after: float | None
    difference: float | None
    low: float | None
    high: float | None

    @property
    def relative(self) -> float | None:
        if self.difference is None or not self.before:
            return None
        return self.difference / self.before

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "difference": self.difference,
            "interval": [self.low, self.high],
            "relative": self.relative,
            "significant": self.significant,
        }


@dataclass
class RunComparison:
    """The comparison of run ``run_after`` against ``run_before``."""

    run_before: int
    run_after: int
    rate_rps: float | None
    rate_source: str | None
    safe_rps: Difference
    p95_ms: Difference
    replicates: int
    confidence: float
    policy: CapacityPolicy
    notes: list[str] = field(default_factory=list)

    def verdict(self) -> str:
        """Return one sentence on whether the change helped, by the measured intervals."""
        parts = []
        if self.safe_rps.significant and self.safe_rps.difference is not None:
            direction = "rose" if self.safe_rps.difference > 0 else "fell"
            parts.append(f"safe load {direction} by {abs(self.safe_rps.difference):.4g} rps")
        if self.p95_ms.significant and self.p95_ms.difference is not None:
            direction = "fell" if self.p95_ms.difference < 0 else "rose"
            parts.append(f"p95 at {self.rate_rps:.4g} rps {direction} by {abs(self.p95_ms.difference):.4g} ms")
        if not parts:
            return f"no difference is measurable at {self.confidence:.0%} confidence"
        return "; ".join(parts) + f" ({self.confidence:.0%} bootstrap intervals exclude 0)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_before": self.run_before,
            "run_after": self.run_after,
            "rate_rps": self.rate_rps,
            "rate_source": self.rate_source,
            "safe_rps": self.safe_rps.as_dict(),
            "p95_ms": self.p95_ms.as_dict(),
            "replicates": self.replicates,
            "confidence": self.confidence,
            "policy": {"basis": self.policy.basis, "safe_fraction": self.policy.safe_fraction},
            "verdict": self.verdict(),
            "notes": self.notes,
        }


@dataclass
class _RunData:
    run_id: int
    levels: pd.DataFrame
    histograms: list[tuple[np.ndarray, np.ndarray] | None]
    durations_s: np.ndarray
    requests: np.ndarray
    slo_p95_ms: float | None
    max_error_rate: float | None
    rejudge: bool


def compare_runs(
    store: Store,
    run_before: int,
    run_after: int,
    policy: CapacityPolicy | None = None,
    at_rps: float | None = None,
    replicates: int = DEFAULT_REPLICATES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> RunComparison:
    """Compare two stored runs; see the module docstring for what is resampled."""
    if not 10 <= replicates <= 100_000:
        raise ConfigError(f"--bootstrap {replicates} is outside 10..100000; 300 is a good default")
    if not 0.5 <= confidence < 1:
        raise ConfigError(f"confidence {confidence!r} is outside [0.5, 1); give for example 0.95")
    if at_rps is not None and not (math.isfinite(at_rps) and at_rps > 0):
        raise ConfigError(f"--at {at_rps!r} is invalid; give a rate above 0 in requests/s")
    if run_before == run_after:
        raise ConfigError(f"both runs are {run_before}; compare two different runs, before and after the change")
    policy = policy or CapacityPolicy()
    notes: list[str] = []
    before = _load(store, run_before, notes)
    after = _load(store, run_after, notes)

    base_before = _report(before, before.levels, policy)
    base_after = _report(after, after.levels, policy)
    rate, rate_source = _comparison_rate(before, after, base_before, base_after, at_rps)
    if rate is None:
        notes.append("the runs share no rate that both measured or both can predict; p95 is not compared")

    rng = np.random.default_rng(seed)
    safe_pairs: list[tuple[float | None, float | None]] = []
    p95_pairs: list[tuple[float | None, float | None]] = []
    for _ in range(replicates):
        levels_before = _resample(before, rng)
        levels_after = _resample(after, rng)
        report_before = _report(before, levels_before, policy)
        report_after = _report(after, levels_after, policy)
        safe_pairs.append((report_before.safe_rps, report_after.safe_rps))
        if rate is not None:
            p95_pairs.append((_p95_at(levels_before, report_before, rate), _p95_at(levels_after, report_after, rate)))

    safe = _difference(base_before.safe_rps, base_after.safe_rps, safe_pairs, confidence, "safe load", notes)
    p95 = (
        _difference(
            _p95_at(before.levels, base_before, rate),
            _p95_at(after.levels, base_after, rate),
            p95_pairs,
            confidence,
            "p95",
            notes,
        )
        if rate is not None
        else Difference(None, None, None, None, None)
    )
    logger.info("compared run %d against run %d with %d bootstrap replicates", run_after, run_before, replicates)
    return RunComparison(run_before, run_after, rate, rate_source, safe, p95, replicates, confidence, policy, notes)


def _load(store: Store, run_id: int, notes: list[str]) -> _RunData:
    run = get_run(store, run_id)
    steps = get_steps(store, run_id)
    if steps.empty:
        raise InputDataError(f"run {run_id} has no stored steps; only stepped runs can be compared")
    levels, excluded = usable_levels(steps)
    kept_steps = steps[~steps["step_index"].isin([item["step_index"] for item in excluded])].reset_index(drop=True)
    histograms = [_decode(text) for text in kept_steps.get("latency_hdr", pd.Series([None] * len(kept_steps)))]
    missing = sum(1 for item in histograms if item is None)
    if missing:
        notes.append(
            f"run {run_id}: {missing} step(s) have no latency histogram; their latency is held fixed, "
            "so the intervals are too narrow"
        )
    slo = _optional_float(run.get("slo_p95_ms"))
    max_error_rate = _optional_float(run.get("max_error_rate"))
    data = _RunData(
        run_id=run_id,
        levels=levels,
        histograms=histograms,
        durations_s=pd.to_numeric(kept_steps["duration_s"], errors="coerce").fillna(1.0).to_numpy(dtype=float),
        requests=pd.to_numeric(kept_steps["requests"], errors="coerce").fillna(0).to_numpy(dtype=int),
        slo_p95_ms=slo,
        max_error_rate=max_error_rate,
        rejudge=False,
    )
    # Judging again is only sound when the stored verdicts follow the rules this module knows.
    data.rejudge = slo is not None and bool((_judge(data, levels) == levels["passed"].to_numpy()).all())
    if not data.rejudge:
        notes.append(
            f"run {run_id}: the stored pass/fail verdicts use rules beyond the SLO, error rate and achieved rate "
            "(or the run has no SLO), so replicates keep them as stored"
        )
    return data


def _report(data: _RunData, levels: pd.DataFrame, policy: CapacityPolicy) -> CapacityReport:
    return build_report(
        levels,
        policy,
        source=f"run {data.run_id}",
        open_model=True,
        slo_p95_ms=data.slo_p95_ms,
        run_id=data.run_id,
        fit_usl_model=False,
    )


def _resample(data: _RunData, rng: np.random.Generator) -> pd.DataFrame:
    levels = data.levels.copy()
    for position, histogram in enumerate(data.histograms):
        if histogram is None:
            continue
        values_ms, counts = histogram
        total = int(counts.sum())
        drawn = rng.multinomial(total, counts / total)
        levels.loc[position, "mean_ms"] = float((values_ms * drawn).sum() / total)
        cumulative = np.cumsum(drawn)
        for column, percentile in _PERCENTILES.items():
            rank = max(1, int(percentile / 100.0 * total + 0.5))
            levels.loc[position, column] = float(values_ms[int(np.searchsorted(cumulative, rank))])
    # Throughput stays as measured: with uniform arrivals it carries no sampling noise, and with
    # seeded Poisson arrivals its noise is already in the one measured value.
    requests = np.maximum(data.requests, 1)
    error_rate = levels["error_rate"].fillna(0.0).to_numpy(dtype=float).clip(0.0, 1.0)
    levels["error_rate"] = rng.binomial(requests, error_rate) / requests
    levels["concurrency"] = levels["throughput_rps"] * levels["mean_ms"] / 1000.0
    offered = levels["offered_rps"]
    levels["kept_up"] = (offered.isna() | (levels["throughput_rps"] >= MIN_ACHIEVED_FRACTION * levels["drawn_rps"])) & (
        levels["error_rate"] <= MAX_LATENCY_ERROR_RATE
    )
    if data.rejudge:
        levels["passed"] = _judge(data, levels)
    return levels


def _judge(data: _RunData, levels: pd.DataFrame) -> np.ndarray:
    """Return the pass verdict of each level by the probe's rules: p95 SLO, error rate and achieved rate."""
    passed = np.ones(len(levels), dtype=bool)
    if data.slo_p95_ms is not None:
        passed &= ~(levels["p95_ms"].to_numpy(dtype=float) > data.slo_p95_ms)
    if data.max_error_rate is not None:
        passed &= ~(levels["error_rate"].fillna(0.0).to_numpy(dtype=float) > data.max_error_rate)
    # The probe compares with the arrivals each step drew, not its nominal rate.
    drawn = levels["drawn_rps"].to_numpy(dtype=float)
    passed &= ~(levels["throughput_rps"].to_numpy(dtype=float) < MIN_ACHIEVED_FRACTION * drawn)
    return passed


def _comparison_rate(
    before: _RunData, after: _RunData, report_before: CapacityReport, report_after: CapacityReport, at_rps: float | None
) -> tuple[float | None, str | None]:
    if at_rps is not None:
        if _step_at(before.levels, at_rps) is not None and _step_at(after.levels, at_rps) is not None:
            return at_rps, "measured in both runs"
        return at_rps, "predicted by the latency models"
    rates_before = before.levels.loc[before.levels["kept_up"], "offered_rps"].dropna()
    rates_after = after.levels.loc[after.levels["kept_up"], "offered_rps"].dropna()
    common = [rate for rate in rates_before if (abs(rates_after - rate) <= EQUAL_RATE_TOLERANCE * rate).any()]
    if common:
        return float(max(common)), "highest rate measured in both runs"
    if report_before.latency is not None and report_after.latency is not None and len(rates_before) and len(rates_after):
        return float(min(rates_before.max(), rates_after.max())), "predicted by the latency models"
    return None, None


def _p95_at(levels: pd.DataFrame, report: CapacityReport, rate_rps: float | None) -> float | None:
    if rate_rps is None:
        return None
    position = _step_at(levels, rate_rps)
    if position is not None:
        value = levels.loc[position, "p95_ms"]
        return None if pd.isna(value) else float(value)
    return report.predict_latency_ms("p95", rate_rps)


def _step_at(levels: pd.DataFrame, rate_rps: float) -> int | None:
    matches = levels.index[(levels["offered_rps"] - rate_rps).abs() <= EQUAL_RATE_TOLERANCE * rate_rps]
    return int(matches[0]) if len(matches) else None


def _difference(
    before: float | None,
    after: float | None,
    pairs: list[tuple[float | None, float | None]],
    confidence: float,
    label: str,
    notes: list[str],
) -> Difference:
    point = after - before if before is not None and after is not None else None
    deltas = np.array([b - a for a, b in pairs if a is not None and b is not None], dtype=float)
    if len(pairs) == 0 or len(deltas) < MIN_VALID_SHARE * len(pairs):
        notes.append(f"{label}: too few bootstrap replicates had a value in both runs to give an interval")
        return Difference(before, after, point, None, None)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(deltas, [tail, 100.0 - tail])
    return Difference(before, after, point, float(low), float(high))


def _decode(text: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if text is None or (isinstance(text, float) and math.isnan(text)) or not str(text):
        return None
    histogram = HdrHistogram.decode(str(text).encode("ascii"))
    values = []
    counts = []
    for item in histogram.get_recorded_iterator():
        values.append(item.value_iterated_to / 1000.0)  # microseconds to ms
        counts.append(item.count_added_in_this_iter_step)
    if not counts or sum(counts) == 0:
        return None
    return np.asarray(values, dtype=float), np.asarray(counts, dtype=float)


def _optional_float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
