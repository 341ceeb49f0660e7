"""Judging a measured step against the SLO and the generator's own health.

A step fails at the first of: p95 latency above the SLO, error rate above the
limit, or achieved rate short of the offered rate. A step whose generator fell
behind (late sends or a busy CPU) is flagged as saturated: its latency is the
generator's, not the target's, so it is never reported as the target failing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from loadprobe.open_model import StepMeasurement

__all__ = ["StepCriteria", "judge_step", "GENERATOR_LAG_LIMIT_MS", "GENERATOR_CPU_LIMIT"]

logger = logging.getLogger(__name__)

# A generator whose p99 send lag exceeds this is not keeping its schedule.
GENERATOR_LAG_LIMIT_MS = 20.0
# Fraction of one core above which the generator's event loop is the bottleneck.
GENERATOR_CPU_LIMIT = 0.9


@dataclass(frozen=True)
class StepCriteria:
    """What a step must meet to pass."""

    slo_p95_ms: float
    max_error_rate: float
    min_achieved_fraction: float = 0.9


def judge_step(step_index: int, measurement: StepMeasurement, criteria: StepCriteria) -> dict[str, Any]:
    """Return the stored row of a step, with ``passed`` and ``fail_reason`` set."""
    m = measurement
    lag_p99_ms = m.send_lag_percentile_ms(99)
    achieved_rps = m.ok_in_window / m.duration_s
    answered = m.sent
    error_rate = (m.errors / answered) if answered else 0.0
    p95_ms = m.latency.percentile_ms(95)

    saturated_causes = []
    if lag_p99_ms is not None and lag_p99_ms > GENERATOR_LAG_LIMIT_MS:
        saturated_causes.append(f"send lag p99 {lag_p99_ms:.1f} ms > {GENERATOR_LAG_LIMIT_MS:.0f} ms")
    if m.generator_cpu > GENERATOR_CPU_LIMIT:
        saturated_causes.append(f"generator CPU {m.generator_cpu:.0%} of one core > {GENERATOR_CPU_LIMIT:.0%}")

    reasons = []
    if saturated_causes:
        reasons.append("generator saturated: " + "; ".join(saturated_causes))
        logger.warning(
            "step %d at %.1f rps: generator saturated (%s); its latency is not the target's",
            step_index,
            m.offered_rps,
            "; ".join(saturated_causes),
        )
    else:
        if p95_ms is not None and p95_ms > criteria.slo_p95_ms:
            reasons.append(f"p95 {p95_ms:.1f} ms > SLO {criteria.slo_p95_ms:.1f} ms")
        if error_rate > criteria.max_error_rate:
            reasons.append(f"error rate {error_rate:.2%} > {criteria.max_error_rate:.2%}")
        if achieved_rps < criteria.min_achieved_fraction * m.offered_rps:
            reasons.append(f"achieved {achieved_rps:.1f} rps < {criteria.min_achieved_fraction:.0%} of offered {m.offered_rps:.1f} rps")
        if answered == 0:
            reasons.append("no request was sent")

    return {
        "step_index": step_index,
        "started_at": m.started_at.replace(tzinfo=None),
        "duration_s": m.duration_s,
        "offered_rps": m.offered_rps,
        "achieved_rps": achieved_rps,
        "requests": m.sent,
        "ok_requests": m.ok,
        "errors": m.errors,
        "dropped": m.dropped,
        "error_rate": error_rate,
        "errors_by_kind": dict(m.errors_by_kind),
        "mean_ms": m.latency.mean_ms(),
        "p50_ms": m.latency.percentile_ms(50),
        "p90_ms": m.latency.percentile_ms(90),
        "p95_ms": p95_ms,
        "p99_ms": m.latency.percentile_ms(99),
        "max_ms": m.latency.max_ms(),
        "service_p95_ms": m.service.percentile_ms(95),
        "send_lag_p99_ms": lag_p99_ms,
        "generator_cpu": m.generator_cpu,
        "generator_saturated": bool(saturated_causes),
        "passed": not reasons,
        "fail_reason": "; ".join(reasons) or None,
        "latency_hdr": m.latency.encode(),
    }
