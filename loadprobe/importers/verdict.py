"""Judging imported steps against an SLO the user gives, and the run's safe load.

Without ``--slo-p95`` or ``--max-error-rate`` an imported step has no
verdict: it is stored as passed with no fail reason, and the run gets no
breaking point and no safe load, because capplan cannot tell what the test
was meant to prove. With either option, a step fails at the first of: p95
above the SLO, error rate above the limit, or successful throughput below
``min_achieved_fraction`` of the offered rate. The breaking point is the
offered rate of the first failing step in time order, and the safe and
recommended loads follow from :class:`capplan.policy.SafeLoadPolicy`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from capplan.policy import SafeLoadPolicy
from loadprobe.importers.model import ImportOptions

__all__ = ["RunVerdict", "judge_run"]

logger = logging.getLogger(__name__)


@dataclass
class RunVerdict:
    breaking_point_rps: float | None = None
    safe_rps: float | None = None
    recommended_rps: float | None = None
    stop_reason: str | None = None


def judge_run(rows: list[dict[str, Any]], options: ImportOptions, run_label: str) -> RunVerdict:
    """Set ``passed`` and ``fail_reason`` on each row and return the run's loads."""
    if options.slo_p95_ms is None and options.max_error_rate is None:
        return RunVerdict(stop_reason="imported without an SLO; pass --slo-p95 or --max-error-rate to judge the steps")
    policy = SafeLoadPolicy(options.safe_fraction, options.recommended_fraction)
    verdict = RunVerdict()
    highest_passed: float | None = None
    for row in rows:
        reasons = _fail_reasons(row, options)
        row["passed"] = not reasons
        row["fail_reason"] = "; ".join(reasons) or None
        if reasons and verdict.breaking_point_rps is None:
            verdict.breaking_point_rps = row["offered_rps"]
            verdict.stop_reason = (
                f"step {row['step_index'] + 1} at {row['offered_rps']:.1f} rps offered broke the limits: {row['fail_reason']}"
            )
        elif not reasons and verdict.breaking_point_rps is None:
            highest_passed = max(highest_passed or 0.0, row["offered_rps"])
    verdict.safe_rps, verdict.recommended_rps = policy.loads(verdict.breaking_point_rps, highest_passed)
    if verdict.breaking_point_rps is None:
        verdict.stop_reason = "no step broke the limits"
        if highest_passed is not None:
            logger.warning(
                "%s: no step broke the limits up to %.1f rps offered; the safe load of %.1f rps is a lower bound",
                run_label,
                highest_passed,
                verdict.safe_rps or 0.0,
            )
    return verdict


def _fail_reasons(row: dict[str, Any], options: ImportOptions) -> list[str]:
    reasons = []
    p95_ms = row.get("p95_ms")
    if options.slo_p95_ms is not None and p95_ms is not None and p95_ms > options.slo_p95_ms:
        reasons.append(f"p95 {p95_ms:.1f} ms > SLO {options.slo_p95_ms:.1f} ms")
    if options.max_error_rate is not None and row["error_rate"] > options.max_error_rate:
        reasons.append(f"error rate {row['error_rate']:.2%} > {options.max_error_rate:.2%}")
    if row["achieved_rps"] < options.min_achieved_fraction * row["offered_rps"]:
        reasons.append(
            f"achieved {row['achieved_rps']:.1f} rps < {options.min_achieved_fraction:.0%} "
            f"of offered {row['offered_rps']:.1f} rps"
        )
    return reasons
