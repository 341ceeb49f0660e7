"""Judging a measured step: the SLO, thresholds, and the health of both sides.

A step fails at the first of: p95 latency above the SLO, error rate above the
limit, achieved rate short of the offered rate (open model only), or a
threshold breach. A step whose generator fell behind (late sends or a busy
CPU) is flagged as generator-saturated: its latency is the generator's, not
the target's, so it is never reported as the target failing. A step where the
target could not keep up (shortfall, dropped arrivals or timeouts) is flagged
as target-saturated, with the achieved rate and the queue it built.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from loadprobe.measurement import ScenarioMeasurement, StepMeasurement
from loadprobe.thresholds import Threshold

__all__ = ["StepCriteria", "StepVerdict", "judge_step", "GENERATOR_LAG_LIMIT_MS", "GENERATOR_CPU_LIMIT"]

logger = logging.getLogger(__name__)

# A generator whose p99 send lag exceeds this is not keeping its schedule.
GENERATOR_LAG_LIMIT_MS = 20.0
# Fraction of one core above which a generator process is the bottleneck.
GENERATOR_CPU_LIMIT = 0.9
# Busy fraction of the generator's allowed cores above which other processes may starve it.
MACHINE_BUSY_LIMIT = 0.9


@dataclass(frozen=True)
class StepCriteria:
    """Pass criteria of a step; None switches a criterion off."""

    slo_p95_ms: float | None = None
    max_error_rate: float | None = None
    min_achieved_fraction: float = 0.9
    thresholds: tuple[Threshold, ...] = ()


@dataclass
class StepVerdict:
    row: dict[str, Any]
    scenario_rows: list[dict[str, Any]] = field(default_factory=list)
    threshold_breaches: list[str] = field(default_factory=list)


def _percentiles(part: ScenarioMeasurement) -> dict[str, Any]:
    return {
        "mean_ms": part.latency.mean_ms(),
        "p50_ms": part.latency.percentile_ms(50),
        "p90_ms": part.latency.percentile_ms(90),
        "p95_ms": part.latency.percentile_ms(95),
        "p99_ms": part.latency.percentile_ms(99),
        "max_ms": part.latency.max_ms(),
    }


def _generator_causes(m: StepMeasurement) -> list[str]:
    """Return why the generator fell behind, naming the cause; empty when it kept up."""
    lag_p99_ms = m.send_lag.percentile_ms(99)
    causes = []
    if m.generator_cpu > GENERATOR_CPU_LIMIT:
        causes.append(
            f"a generator process used {m.generator_cpu:.0%} of one core, so it is CPU-bound; "
            "add --workers or use a larger generator machine"
        )
    if lag_p99_ms is not None and lag_p99_ms > GENERATOR_LAG_LIMIT_MS:
        if not causes and m.machine_cpu_busy is not None and m.machine_cpu_busy > MACHINE_BUSY_LIMIT:
            causes.append(
                f"send lag p99 {lag_p99_ms:.1f} ms > {GENERATOR_LAG_LIMIT_MS:.0f} ms while the generator's CPU cores were "
                f"{m.machine_cpu_busy:.0%} busy and the generator used {m.generator_cpu:.0%} of one core: "
                "other processes on this machine compete with the generator for the CPU"
            )
        else:
            causes.append(f"send lag p99 {lag_p99_ms:.1f} ms > {GENERATOR_LAG_LIMIT_MS:.0f} ms: the generator fell behind its schedule")
    return causes


def judge_step(step_index: int, measurement: StepMeasurement, criteria: StepCriteria) -> StepVerdict:
    """Return the stored rows of a step with ``passed`` and ``fail_reason`` set."""
    m = measurement
    total = m.total
    achieved_rps = m.ok_in_window / m.duration_s
    error_rate = (total.errors / total.requests) if total.requests else 0.0
    latency = _percentiles(total)
    mean_ms = latency["mean_ms"]
    timeouts = total.errors_by_kind.get("timeout", 0)
    # Compare with the arrivals this step really drew: a short Poisson step
    # may draw fewer than rate x duration, which is not the target's fault.
    drawn_rps = m.scheduled / m.duration_s if m.scheduled else m.offered_rps
    shortfall = m.model == "open" and achieved_rps < criteria.min_achieved_fraction * drawn_rps

    generator_causes = _generator_causes(m)
    target_saturated = not generator_causes and (shortfall or m.dropped > 0 or timeouts > 0)
    reasons: list[str] = []
    breaches: list[str] = []
    if generator_causes:
        reasons.append("generator saturated: " + "; ".join(generator_causes))
        logger.warning(
            "step %d at %.1f rps is not the target's latency: %s", step_index + 1, m.offered_rps, "; ".join(generator_causes)
        )
    else:
        p95_ms = latency["p95_ms"]
        if criteria.slo_p95_ms is not None and p95_ms is not None and p95_ms > criteria.slo_p95_ms:
            reasons.append(f"p95 {p95_ms:.1f} ms > SLO {criteria.slo_p95_ms:.1f} ms")
        if criteria.max_error_rate is not None and error_rate > criteria.max_error_rate:
            reasons.append(f"error rate {error_rate:.2%} > {criteria.max_error_rate:.2%}")
        if shortfall:
            reasons.append(
                f"achieved {achieved_rps:.1f} rps < {criteria.min_achieved_fraction:.0%} of offered {drawn_rps:.1f} rps"
            )
        if m.sent == 0 and not m.interrupted:
            reasons.append("no request was sent")
        for threshold in criteria.thresholds:
            part = total if threshold.scenario is None else m.scenarios.get(threshold.scenario)
            breach = threshold.breached(part) if part is not None else None
            if breach is not None:
                breaches.append(breach)
        reasons.extend(breaches)
    if target_saturated:
        logger.warning(
            "step %d: the target is saturated at %.1f rps offered: achieved %.1f rps, %d dropped, %d timed out, "
            "up to %d requests in flight",
            step_index + 1, m.offered_rps, achieved_rps, m.dropped, timeouts, m.in_flight_max,
        )  # fmt: skip

    row = {
        "step_index": step_index,
        "started_at": m.started_at.replace(tzinfo=None),
        "duration_s": m.duration_s,
        "model": m.model,
        "users": m.users,
        "offered_rps": m.offered_rps,
        "achieved_rps": achieved_rps,
        "requests": m.sent,
        "ok_requests": total.ok,
        "errors": total.errors,
        "dropped": m.dropped,
        "error_rate": error_rate,
        "errors_by_kind": dict(total.errors_by_kind),
        **latency,
        "service_p95_ms": total.service.percentile_ms(95),
        "send_lag_p99_ms": m.send_lag.percentile_ms(99),
        "generator_cpu": m.generator_cpu,
        "generator_saturated": bool(generator_causes),
        "generator_processes": m.generator_processes,
        "machine_cpu_busy": m.machine_cpu_busy,
        "target_saturated": target_saturated,
        "in_flight_max": m.in_flight_max,
        "concurrency_mean": None if mean_ms is None else achieved_rps * mean_ms / 1000.0,
        "interrupted": m.interrupted,
        "passed": not reasons,
        "fail_reason": "; ".join(reasons) or None,
        "latency_hdr": total.latency.encode(),
        "service_hdr": total.service.encode(),
        "send_lag_hdr": m.send_lag.encode(),
    }
    scenario_rows = [_scenario_row(name, part) for name, part in sorted(m.scenarios.items())]
    return StepVerdict(row=row, scenario_rows=scenario_rows, threshold_breaches=breaches)


def _scenario_row(name: str, part: ScenarioMeasurement) -> dict[str, Any]:
    return {
        "scenario": name,
        "requests": part.requests,
        "ok_requests": part.ok,
        "errors": part.errors,
        "error_rate": (part.errors / part.requests) if part.requests else 0.0,
        "errors_by_kind": dict(part.errors_by_kind),
        **_percentiles(part),
        "latency_hdr": part.latency.encode(),
        "service_hdr": part.service.encode(),
    }

