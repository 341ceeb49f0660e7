"""``capplan probe``: stepped, baseline and planned load tests."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.policy import SafeLoadPolicy
from capplan.store import Store
from capplan.units import parse_duration_s, parse_fraction, parse_latency_ms
from loadprobe.generator import GeneratorConfig, Stage
from loadprobe.load_test import EXIT_THRESHOLD_FAILED, RunPlan, RunResult, StepPlan, auto_workers, run_load_test, validate_url
from loadprobe.plan_file import parse_think_time, read_plan
from loadprobe.progress import RichProgress
from loadprobe.step_verdict import StepCriteria
from loadprobe.thresholds import parse_threshold

__all__ = ["register", "result_payload", "print_run_table"]

ENGINES = ("auto", "fast", "aiohttp", "locust")  # locust: probe step only, on Locust master/worker processes


def _rate(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}; give requests per second, such as 50") from None


def _add_generator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", default="5s", help="per-request timeout (default 5s)")
    parser.add_argument(
        "--workers",
        default="auto",
        help="generator processes; 'auto' adds one per 2000 rps up to the number of cores (default auto)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="aiohttp",
        help="HTTP engine: aiohttp, fast (asyncio and httptools, about 6 times the requests per CPU-second), "
        "auto (fast for http, aiohttp for https), or locust (probe step only) (default aiohttp)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress display")
    parser.add_argument(
        "--prometheus", metavar="URL", help="Prometheus that scrapes the target: store its CPU and memory per step"
    )
    parser.add_argument(
        "--target-selector",
        metavar="MATCHERS",
        help='label matchers of the target in Prometheus, such as job="api" (default: every process it scrapes)',
    )
    parser.add_argument("--safe-fraction", type=float, default=0.8, help="safe load as a fraction of the breaking point (default 0.8)")
    parser.add_argument(
        "--recommended-fraction", type=float, default=0.6, help="recommended load as a fraction of the breaking point (default 0.6)"
    )


def _add_open_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="target URL, such as http://127.0.0.1:8080/")
    parser.add_argument("--slo-p95", default="500", help="p95 latency SLO; a bare number is ms (default 500)")
    parser.add_argument(
        "--max-error-rate", default="0.01", help="highest error rate a step may have: 0.01 or 1%% (default 0.01)"
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="extra pass condition such as p99<1000 or error_rate<1%%; repeatable",
    )
    parser.add_argument("--arrivals", choices=["uniform", "poisson"], default="uniform", help="arrival spacing (default uniform)")
    parser.add_argument(
        "--max-in-flight", type=int, default=1000, help="requests in flight at once; arrivals beyond it are dropped (default 1000)"
    )
    _add_generator_options(parser)


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
    _add_open_options(step)
    step.add_argument("--start", type=_rate, required=True, help="rate of the first step, requests/s")
    step.add_argument("--step", type=_rate, required=True, help="rate added per step, requests/s")
    step.add_argument("--max", type=_rate, required=True, help="highest rate to offer, requests/s")
    step.add_argument("--step-duration", default="30s", help="length of each step, such as 30s or 2m (default 30s)")
    step.add_argument(
        "--master-bind", metavar="HOST:PORT",
        help="--engine locust: listen for --workers workers from other hosts here, such as 0.0.0.0:5557, and start none locally",
    )
    step.add_argument(
        "--worker-of", metavar="HOST:PORT",
        help="--engine locust: run one Locust worker for the master at HOST:PORT instead of a test; give the same URL and steps",
    )
    step.set_defaults(handler=_run_step)

    baseline = probe_sub.add_parser(
        "baseline",
        parents=[common],
        help="one step at a fixed arrival rate, or a fixed number of users",
        description="Offer one fixed arrival rate (--rate) or run a fixed number of users (--users) and measure it.",
    )
    _add_open_options(baseline)
    load = baseline.add_mutually_exclusive_group(required=True)
    load.add_argument("--rate", type=_rate, help="arrival rate, requests/s (open model)")
    load.add_argument("--users", type=int, help="concurrent users, each looping with think time (closed model)")
    baseline.add_argument("--think-time", default="0s", help="closed model: think time, fixed (1s) or a range (1s..3s)")
    baseline.add_argument("--duration", default="30s", help="length of the test, such as 30s (default 30s)")
    baseline.set_defaults(handler=_run_baseline)

    run = probe_sub.add_parser(
        "run",
        parents=[common],
        help="run a TOML plan: k6-style stages, weighted scenarios and thresholds",
        description="Run the stages and scenarios of a TOML plan; exit 99 when a threshold aborts it.",
    )
    run.add_argument("plan", metavar="PLAN.toml", help="plan file")
    run.add_argument("--url", help="target URL, overriding the plan's url")
    run.add_argument("--slo-p95", default=None, help="p95 latency SLO per step, overriding the plan's slo_p95; a bare number is ms")
    run.add_argument(
        "--max-error-rate", default=None, help="highest error rate a step may have, overriding the plan's max_error_rate: 0.01 or 1%%"
    )
    _add_generator_options(run)
    run.set_defaults(handler=_run_plan_file)


def _workers(text: str, max_rate_rps: float) -> int:
    if text == "auto":
        return auto_workers(max_rate_rps)
    try:
        workers = int(text)
    except ValueError:
        raise ConfigError(f"--workers {text!r} is not a whole number; give 1, 2, ... or auto") from None
    if workers < 1:
        raise ConfigError(f"--workers {workers}: need at least 1 generator process")
    return workers


def _policy(args: argparse.Namespace) -> SafeLoadPolicy:
    return SafeLoadPolicy(safe_fraction=args.safe_fraction, recommended_fraction=args.recommended_fraction)


def _criteria(args: argparse.Namespace, thresholds: tuple = ()) -> StepCriteria:
    return StepCriteria(
        slo_p95_ms=None if args.slo_p95 is None else parse_latency_ms(args.slo_p95, "--slo-p95"),
        max_error_rate=None if args.max_error_rate is None else parse_fraction(args.max_error_rate, "--max-error-rate"),
        thresholds=thresholds,
    )


def _execute(args: argparse.Namespace, kind: str, plan: RunPlan, url: str) -> int:
    from dataclasses import replace

    if args.prometheus:
        validate_url(args.prometheus)
        plan = replace(plan, prometheus_url=args.prometheus, prometheus_selector=args.target_selector)
    policy = _policy(args)
    progress = None if (args.no_progress or args.json) else RichProgress()
    result = run_load_test(Store(args.db), url, kind=kind, plan=plan, policy=policy, progress=progress)
    if args.json:
        print_json(result_payload(result))
    else:
        print_run_table(result)
    if result.status == "interrupted":
        return 130
    if result.exit_reason == "threshold":
        return EXIT_THRESHOLD_FAILED
    return 0


def _run_step(args: argparse.Namespace) -> int:
    validate_url(args.url)
    step_plan = StepPlan(
        start_rps=args.start,
        step_rps=args.step,
        max_rps=args.max,
        step_duration_s=parse_duration_s(args.step_duration, "--step-duration"),
        arrivals=args.arrivals,
    )
    if args.engine == "locust":
        return _run_locust_step(args, step_plan)
    if args.master_bind or args.worker_of:
        raise ConfigError("--master-bind and --worker-of need --engine locust")
    generator = GeneratorConfig(
        base_url=args.url,
        engine=args.engine,
        timeout_s=parse_duration_s(args.timeout, "--timeout"),
        max_in_flight=args.max_in_flight,
        arrivals=args.arrivals,
        workers=_workers(args.workers, args.max),
    )
    thresholds = tuple(parse_threshold(text) for text in args.threshold)
    plan = RunPlan(stages=step_plan.stages(), generator=generator, criteria=_criteria(args, thresholds))
    return _execute(args, "step", plan, args.url)


def _run_locust_step(args: argparse.Namespace, step_plan: StepPlan) -> int:
    """Run the step plan on Locust master/worker processes, or one worker with --worker-of."""
    import os

    from loadprobe.locust_engine import LocustOptions, parse_host_port, run_locust_step, run_locust_worker

    if args.threshold:
        raise ConfigError("--threshold is not supported with --engine locust; use --slo-p95 and --max-error-rate")
    timeout_s = parse_duration_s(args.timeout, "--timeout")
    if args.worker_of:
        master = parse_host_port(args.worker_of, "--worker-of")
        return run_locust_worker(
            args.url, master, rates=step_plan.rates(), step_duration_s=step_plan.step_duration_s, timeout_s=timeout_s
        )
    # "auto" starts one local Locust worker per CPU core.
    workers = _workers(args.workers, 0.0) if args.workers != "auto" else (os.cpu_count() or 1)
    bind = parse_host_port(args.master_bind, "--master-bind") if args.master_bind else None
    result = run_locust_step(
        Store(args.db), args.url, rates=step_plan.rates(), step_duration_s=step_plan.step_duration_s,
        timeout_s=timeout_s, criteria=_criteria(args), options=LocustOptions(workers=workers, master_bind=bind),
        policy=_policy(args),
    )
    if args.json:
        print_json(result_payload(result))
    else:
        print_run_table(result)
    return 0


def _reject_locust(args: argparse.Namespace, command: str) -> None:
    if args.engine == "locust":
        raise ConfigError(f"--engine locust works with 'capplan probe step' only; run '{command}' with --engine aiohttp or fast")


def _run_baseline(args: argparse.Namespace) -> int:
    _reject_locust(args, "capplan probe baseline")
    validate_url(args.url)
    duration_s = parse_duration_s(args.duration, "--duration")
    if args.rate is not None:
        if not args.rate > 0:
            raise ConfigError(f"--rate: {args.rate:g} rps is not a positive rate; give for example --rate 50")
        stage = Stage("open", args.rate, args.rate, duration_s)
    else:
        if args.users < 1:
            raise ConfigError(f"--users {args.users}: need at least 1 user")
        stage = Stage("closed", float(args.users), float(args.users), duration_s)
    generator = GeneratorConfig(
        base_url=args.url,
        engine=args.engine,
        timeout_s=parse_duration_s(args.timeout, "--timeout"),
        max_in_flight=args.max_in_flight,
        arrivals=args.arrivals,
        think_time_s=parse_think_time(args.think_time),
        workers=_workers(args.workers, args.rate or 0.0),
    )
    thresholds = tuple(parse_threshold(text) for text in args.threshold)
    plan = RunPlan(stages=(stage,), generator=generator, criteria=_criteria(args, thresholds))
    return _execute(args, "baseline", plan, args.url)


def _run_plan_file(args: argparse.Namespace) -> int:
    from dataclasses import replace

    _reject_locust(args, "capplan probe run")
    load_plan = read_plan(args.plan, url=args.url)
    validate_url(load_plan.generator.base_url)
    generator = load_plan.generator
    if args.workers != "auto":
        generator = replace(generator, workers=_workers(args.workers, 0.0))
    elif generator.workers == 1 and load_plan.stages[0].model == "open":
        peak_rps = max(max(stage.start, stage.end) for stage in load_plan.stages)
        generator = replace(generator, workers=auto_workers(peak_rps))
    if args.engine != "aiohttp":
        generator = replace(generator, engine=args.engine)
    if args.slo_p95 is None and load_plan.slo_p95_ms is not None:
        args.slo_p95 = f"{load_plan.slo_p95_ms}ms"
    if args.max_error_rate is None and load_plan.max_error_rate is not None:
        args.max_error_rate = str(load_plan.max_error_rate)
    plan = RunPlan(
        stages=load_plan.stages,
        generator=generator,
        criteria=_criteria(args, load_plan.thresholds),
        stop_on_failed_step=False,
        abort_on_threshold=load_plan.abort_on_fail,
        grace_s=load_plan.grace_s,
    )
    return _execute(args, "plan", plan, generator.base_url)


def result_payload(result: RunResult) -> dict[str, Any]:
    """Return the ``--json`` object of a run."""
    steps = []
    for row, scenario_rows in zip(result.steps, result.scenario_rows):
        steps.append(
            {
                "model": row["model"],
                "offered_rps": row["offered_rps"],
                "achieved_rps": row["achieved_rps"],
                "users": row["users"],
                "p50_ms": row["p50_ms"],
                "p95_ms": row["p95_ms"],
                "p99_ms": row["p99_ms"],
                "service_p95_ms": row["service_p95_ms"],
                "error_rate": row["error_rate"],
                "errors_by_kind": row["errors_by_kind"],
                "dropped": row["dropped"],
                "send_lag_p99_ms": row["send_lag_p99_ms"],
                "generator_cpu": row["generator_cpu"],
                "generator_saturated": row["generator_saturated"],
                "target_saturated": row["target_saturated"],
                "concurrency_mean": row["concurrency_mean"],
                "passed": row["passed"],
                "fail_reason": row["fail_reason"],
                "scenarios": [
                    {key: scenario[key] for key in ("scenario", "requests", "error_rate", "p50_ms", "p95_ms", "p99_ms")}
                    for scenario in scenario_rows
                ],
            }
        )
    return {
        "run_id": result.run_id,
        "status": result.status,
        "exit_reason": result.exit_reason,
        "stop_reason": result.stop_reason,
        "breaking_point_rps": result.breaking_point_rps,
        "safe_rps": result.safe_rps,
        "recommended_rps": result.recommended_rps,
        "steps": steps,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_run_table(result: RunResult) -> None:
    """Print the steps of a run and its verdict for a person."""
    table = Table(title=f"run {result.run_id} ({result.status})")
    for column in ("offered rps", "achieved rps", "p50 ms", "p95 ms", "p99 ms", "errors", "result"):
        table.add_column(column, justify="right")
    for row in result.steps:
        if row["generator_saturated"]:
            verdict = "generator saturated"
        else:
            verdict = "pass" if row["passed"] else "FAIL"
            if row["target_saturated"]:
                verdict += " (target saturated)"
        table.add_row(
            f"{row['offered_rps']:g}" if row["model"] == "open" else f"{row['offered_rps']:.1f} ({row['users']:g} users)",
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
