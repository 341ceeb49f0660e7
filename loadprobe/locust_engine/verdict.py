"""Judging a step measured by Locust, with the criteria of the built-in engine where Locust has the data.

A step fails when its p95 exceeds the SLO, when the error rate exceeds the
limit, when the achieved rate falls short of the offered rate, or when a
worker's report of the step never reached the master. A worker above
GENERATOR_CPU_LIMIT during the step marks the step generator-saturated
instead, as the built-in engine does. The master runs this judgement as each
step ends, to stop at the first failed step, and capplan runs it again on
the same reports to store the step. Locust has no send lag, so that column
stays NULL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from loadprobe.locust_engine.locustfile import LocustStep
from loadprobe.locust_engine.step_reports import StepStats
from loadprobe.step_verdict import GENERATOR_CPU_LIMIT, StepCriteria

__all__ = ["LATENCY_NOTE", "judge_locust_step"]

LATENCY_NOTE = (
    "Locust latency: each step's percentiles come from HdrHistograms the workers keep per step, merged exactly, "
    "but each response time is measured from the request's actual send time, not its intended send time; paced "
    "closed-loop users slow down with the target, so queueing delay is under-reported (coordinated omission)."
)


def judge_locust_step(
    stats: StepStats, step: LocustStep, criteria: StepCriteria, peak_cpu_percent: float | None, workers: int
) -> dict[str, Any]:
    """Return the steps row of one Locust step with ``passed`` and ``fail_reason`` set."""
    span_s = stats.span_s
    ok = stats.requests - stats.failures
    achieved_rps = ok / span_s if span_s > 0 else 0.0
    error_rate = stats.failures / stats.requests if stats.requests else 0.0
    percentiles = stats.percentiles_ms
    p95_ms = percentiles["p95_ms"]
    generator_cpu = None if peak_cpu_percent is None else peak_cpu_percent / 100.0
    saturated = generator_cpu is not None and generator_cpu > GENERATOR_CPU_LIMIT

    reasons = []
    if saturated:
        reasons.append(
            f"generator saturated: a Locust worker used {generator_cpu:.0%} of one core; add workers or hosts"
        )
    else:
        if criteria.slo_p95_ms is not None and p95_ms is not None and p95_ms > criteria.slo_p95_ms:
            reasons.append(f"p95 {p95_ms:.1f} ms > SLO {criteria.slo_p95_ms:.1f} ms")
        if criteria.max_error_rate is not None and error_rate > criteria.max_error_rate:
            reasons.append(f"error rate {error_rate:.2%} > {criteria.max_error_rate:.2%}")
        if achieved_rps < criteria.min_achieved_fraction * step.offered_rps:
            reasons.append(
                f"achieved {achieved_rps:.1f} rps < {criteria.min_achieved_fraction:.0%} of offered {step.offered_rps:.1f} rps"
            )
        if stats.requests == 0:
            reasons.append("no request was sent")
    if stats.workers_reported < stats.workers_expected:
        reasons.append(
            f"only {stats.workers_reported} of {stats.workers_expected} Locust workers reported this step; "
            "check the workers' logs and network"
        )

    return {
        "step_index": stats.step_index,
        "started_at": datetime.fromtimestamp(stats.started_at_s, timezone.utc).replace(tzinfo=None),
        "duration_s": span_s,
        # Locust users are closed-loop: each waits for its response before pacing the next request.
        "model": "closed",
        "users": float(step.users),
        "offered_rps": step.offered_rps,
        "achieved_rps": achieved_rps,
        "requests": stats.requests,
        "ok_requests": ok,
        "errors": stats.failures,
        "dropped": 0,
        "error_rate": error_rate,
        "errors_by_kind": {"locust_failure": stats.failures} if stats.failures else {},
        "mean_ms": stats.mean_ms,
        **percentiles,
        "latency_hdr": stats.latency.encode(),
        "service_p95_ms": None,
        "send_lag_p99_ms": None,
        # Little's law: requests in flight = throughput x mean latency.
        "concurrency_mean": None if stats.mean_ms is None else achieved_rps * stats.mean_ms / 1000.0,
        "generator_cpu": generator_cpu,
        "generator_saturated": saturated,
        "generator_processes": workers,
        "target_saturated": not saturated and achieved_rps < criteria.min_achieved_fraction * step.offered_rps,
        "interrupted": False,
        "passed": not reasons,
        "fail_reason": "; ".join(reasons) or None,
    }
