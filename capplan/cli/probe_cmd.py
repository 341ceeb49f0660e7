"""``capplan probe step`` and ``capplan probe baseline``: open-model load tests."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.policy import SafeLoadPolicy
from capplan.store import Store
from capplan.units import parse_duration_s, parse_fraction, parse_latency_ms
from loadprobe.load_test import RunResult, StepPlan, run_load_test, validate_url
from loadprobe.progress import RichProgress
from loadprobe.step_verdict import StepCriteria

__all__ = ["register", "result_payload", "print_run_table"]


def _positive_rate(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}; give requests per second, such as 50") from None


def _add_shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="target URL, such as http://127.0.0.1:8080/")
    parser.add_argument("--slo-p95", default="500", help="p95 latency SLO; a bare number is ms (default 500)")
    parser.add_argument(
        "--max-error-rate", default="0.01", help="highest error rate a step may have: 0.01 or 1%% (default 0.01)"
    )
    parser.add_argument(
        "--arrivals", choices=["uniform", "poisson"], default="uniform", help="arrival spacing (default uniform)"
    )
    parser.add_argument("--timeout", default="5s", help="per-request timeout (default 5s)")
    parser.add_argument(
        "--max-in-flight", type=int, default=1000, help="requests in flight at once; arrivals beyond it are dropped (default 1000)"
    )
    parser.add_argument("--safe-fraction", type=float, default=0.8, help="safe load as a fraction of the breaking point (default 0.8)")
    parser.add_argument(
        "--recommended-fraction", type=float, default=0.6, help="recommended load as a fraction of the breaking point (default 0.6)"
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress display")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    probe = subparsers.add_parser("probe", help="run load tests against an HTTP target")
    probe_sub = probe.add_subparsers(dest="probe_command", metavar="KIND")
    probe_sub.required = True

    step = probe_sub.add_parser(
        "step",
        parents=[common],
        help="stepped open-model test that stops at the first step breaking the SLO",
        description="Offer rising arrival rates, one step at a time, until a step breaks the SLO.",
    )
    _add_shared(step)
    step.add_argument("--start", type=_positive_rate, required=True, help="rate of the first step, requests/s")
    step.add_argument("--step", type=_positive_rate, required=True, help="rate added per step, requests/s")
    step.add_argument("--max", type=_positive_rate, required=True, help="highest rate to offer, requests/s")
    step.add_argument("--step-duration", default="30s", help="length of each step, such as 30s or 2m (default 30s)")
    step.set_defaults(handler=_run_step)

    baseline = probe_sub.add_parser(
        "baseline",
        parents=[common],
        help="one step at a fixed arrival rate",
        description="Offer one fixed arrival rate for a while and measure it.",
    )
    _add_shared(baseline)
    baseline.add_argument("--rate", type=_positive_rate, required=True, help="arrival rate, requests/s")
    baseline.add_argument("--duration", default="30s", help="length of the test, such as 30s (default 30s)")
    baseline.set_defaults(handler=_run_baseline)


def _criteria_and_policy(args: argparse.Namespace) -> tuple[StepCriteria, SafeLoadPolicy]:
    criteria = StepCriteria(
        slo_p95_ms=parse_latency_ms(args.slo_p95, "--slo-p95"),
        max_error_rate=parse_fraction(args.max_error_rate, "--max-error-rate"),
    )
    policy = SafeLoadPolicy(safe_fraction=args.safe_fraction, recommended_fraction=args.recommended_fraction)
    return criteria, policy


def _execute(args: argparse.Namespace, kind: str, plan: StepPlan) -> int:
    validate_url(args.url)
    criteria, policy = _criteria_and_policy(args)
    progress = None if (args.no_progress or args.json) else RichProgress()
    result = run_load_test(Store(args.db), args.url, kind=kind, plan=plan, criteria=criteria, policy=policy, progress=progress)
    if args.json:
        print_json(result_payload(result))
    else:
        print_run_table(result)
    return 130 if result.status == "interrupted" else 0


def _run_step(args: argparse.Namespace) -> int:
    plan = StepPlan(
        start_rps=args.start,
        step_rps=args.step,
        max_rps=args.max,
        step_duration_s=parse_duration_s(args.step_duration, "--step-duration"),
        arrivals=args.arrivals,
        max_in_flight=args.max_in_flight,
        timeout_s=parse_duration_s(args.timeout, "--timeout"),
    )
    return _execute(args, "step", plan)


def _run_baseline(args: argparse.Namespace) -> int:
    if not args.rate > 0:
        raise ConfigError(f"--rate: {args.rate:g} rps is not a positive rate; give for example --rate 50")
    plan = StepPlan(
        start_rps=args.rate,
        step_rps=0.0,
        max_rps=args.rate,
        step_duration_s=parse_duration_s(args.duration, "--duration"),
        arrivals=args.arrivals,
        max_in_flight=args.max_in_flight,
        timeout_s=parse_duration_s(args.timeout, "--timeout"),
    )
    return _execute(args, "baseline", plan)


def result_payload(result: RunResult) -> dict[str, Any]:
    """Return the ``--json`` object of a run."""
    return {
        "run_id": result.run_id,
        "status": result.status,
        "stop_reason": result.stop_reason,
        "breaking_point_rps": result.breaking_point_rps,
        "safe_rps": result.safe_rps,
        "recommended_rps": result.recommended_rps,
        "steps": [
            {
                "offered_rps": row["offered_rps"],
                "achieved_rps": row["achieved_rps"],
                "p50_ms": row["p50_ms"],
                "p95_ms": row["p95_ms"],
                "p99_ms": row["p99_ms"],
                "error_rate": row["error_rate"],
                "dropped": row["dropped"],
                "generator_saturated": row["generator_saturated"],
                "passed": row["passed"],
                "fail_reason": row["fail_reason"],
            }
            for row in result.steps
        ],
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_run_table(result: RunResult) -> None:
    """Print the steps of a run and its verdict for a person."""
    table = Table(title=f"run {result.run_id} ({result.status})")
    for column in ("offered rps", "achieved rps", "p50 ms", "p95 ms", "p99 ms", "errors", "result"):
        table.add_column(column, justify="right")
    for row in result.steps:
        verdict = "pass" if row["passed"] else ("generator saturated" if row["generator_saturated"] else "FAIL")
        table.add_row(
            f"{row['offered_rps']:g}",
            f"{row['achieved_rps']:.1f}",
            _ms(row["p50_ms"]),
            _ms(row["p95_ms"]),
            _ms(row["p99_ms"]),
            f"{row['error_rate']:.2%}",
            verdict,
        )
    console.print(table)
    breaking = "not reached" if result.breaking_point_rps is None else f"{result.breaking_point_rps:g} rps"
    safe = "unknown" if result.safe_rps is None else f"{result.safe_rps:.1f} rps"
    console.print(f"breaking point: {breaking}   safe load: {safe}")
    console.print(f"stop reason: {result.stop_reason}")
