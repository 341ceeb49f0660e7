"""Capacity per instance judged against the review's latency SLO.

A run stores its breaking point against the SLO it was run with. A review may
ask about another SLO, so the steps are judged again with the rules of the
stepped test. The breaking point is the first step, in offered-rate order,
that fails: its p95 latency exceeds the SLO, its error rate exceeds the run's
limit, or its achieved rate falls below 90 % of the offered rate. Steps whose
generator was saturated are skipped, because their latency is the generator's
and not the target's. Safe load follows from the breaking point by the
default safe-load policy.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import pandas as pd

from capplan.policy import DEFAULT_POLICY
from capplan.review.model import RunInfo

__all__ = ["MIN_ACHIEVED_FRACTION", "DEFAULT_MAX_ERROR_RATE", "judge_steps", "with_review_slo"]

logger = logging.getLogger(__name__)

MIN_ACHIEVED_FRACTION = 0.9       # the stepped test's default: achieved below this share of offered fails
DEFAULT_MAX_ERROR_RATE = 0.01     # used when a run stored no error-rate limit


def judge_steps(
    steps: pd.DataFrame, slo_p95_ms: float, max_error_rate: float
) -> tuple[float | None, float | None]:
    """Return (breaking_point_rps, highest_passed_rps) of steps judged against ``slo_p95_ms``.

    ``steps`` needs offered_rps, achieved_rps, error_rate, p95_ms and
    generator_saturated. Either value is None when no step broke or none passed.
    """
    highest_passed: float | None = None
    for step in steps.sort_values("offered_rps").itertuples(index=False):
        if bool(step.generator_saturated):
            continue
        p95 = float(step.p95_ms) if step.p95_ms is not None and not pd.isna(step.p95_ms) else math.inf
        achieved_fraction = float(step.achieved_rps) / float(step.offered_rps) if step.offered_rps else 0.0
        broken = p95 > slo_p95_ms or float(step.error_rate) > max_error_rate or achieved_fraction < MIN_ACHIEVED_FRACTION
        if broken:
            return float(step.offered_rps), highest_passed
        highest_passed = float(step.offered_rps)
    return None, highest_passed


def with_review_slo(run: RunInfo, slo_p95_ms: float | None) -> RunInfo:
    """Return the run with its breaking point and safe load judged against the review's SLO.

    Without a review SLO, or when it equals the run's, the stored values are kept.
    """
    if slo_p95_ms is None or run.slo_p95_ms == slo_p95_ms or run.steps.empty:
        return replace(
            run,
            review_slo_p95_ms=run.slo_p95_ms if slo_p95_ms is None else slo_p95_ms,
            breaking_point_rps_at_review_slo=run.breaking_point_rps,
            safe_rps_at_review_slo=run.safe_rps,
        )
    max_error_rate = run.max_error_rate if run.max_error_rate is not None else DEFAULT_MAX_ERROR_RATE
    breaking_point, highest_passed = judge_steps(run.steps, slo_p95_ms, max_error_rate)
    safe_rps, _ = DEFAULT_POLICY.loads(breaking_point, highest_passed)
    logger.info(
        "run %d judged against the review SLO of %.0f ms (its own: %s ms): breaking point %s rps, safe load %s rps",
        run.run_id, slo_p95_ms, run.slo_p95_ms, breaking_point, safe_rps,
    )
    return replace(
        run,
        review_slo_p95_ms=slo_p95_ms,
        breaking_point_rps_at_review_slo=breaking_point,
        safe_rps_at_review_slo=safe_rps,
    )
