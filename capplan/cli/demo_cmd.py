"""``capplan demo``: the main job, end to end, on the bundled demo target.

It starts the demo target on 127.0.0.1, runs a baseline and a stepped test,
loads a demand history (generated, or the user's CSV), forecasts it, writes the
plan to the store and serves the app. Each stage is stored as it finishes, so
an interrupted demo keeps what it did.
"""

from __future__ import annotations

import argparse
import logging
import math

from rich.console import Console

from capplan.cli import plan_cmd, probe_cmd
from capplan.cli.output import print_json
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.store.series import write_samples
from capplan.units import parse_horizon
from loadprobe.demo_target import TargetConfig
from loadprobe.generator import GeneratorConfig
from loadprobe.load_test import RunPlan, StepPlan, run_load_test
from loadprobe.progress import RichProgress
from loadprobe.step_verdict import StepCriteria
from loadprobe.target_process import start_demo_target

__all__ = ["register"]

logger = logging.getLogger(__name__)

DEMO_SERIES = "demo_requests_rps"
DEMO_SLO_P95_MS = 100.0
DEMO_MAX_ERROR_RATE = 0.01
BASELINE_RPS = 50.0
BASELINE_DURATION_S = 3.0
STEP_START_RPS = 50.0
STEP_RPS = 50.0
STEP_MAX_RPS = 800.0
# The generated history peaks at this multiple of the measured safe load, so
# the plan needs several instances and the runway falls inside the horizon.
DEMO_PEAK_TO_SAFE_LOAD = 2.6


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=[common],
        help="run the main job on the bundled demo target and serve the app",
        description=(
            "Start the demo target on 127.0.0.1, run a baseline and a stepped load test, load a demand "
            "history, forecast it, store a capacity plan, and serve the app."
        ),
    )
    parser.add_argument("--history", metavar="CSV", help="your own demand history (timestamp,value) instead of the generated one")
    parser.add_argument("--name", default=None, help=f"series name for the demand history (default {DEMO_SERIES}, or the CSV's file name)")
    parser.add_argument("--horizon", default="12mo", help="forecast and plan horizon (default 12mo)")
    parser.add_argument("--step-duration", default="3s", help="length of each load step (default 3s)")
    parser.add_argument("--no-serve", action="store_true", help="stop after writing the plan instead of serving the app")
    parser.add_argument("--port", type=int, default=8501, help="port of the app (default 8501)")
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from capplan.demo_history import make_demo_history
    from capplan.units import parse_duration_s
    from forecasting.forecast import forecast_series
    from forecasting.plan import make_plan
    from loadprobe.csv_history import read_history_csv

    # Check every input before anything runs or is written.
    horizon = parse_horizon(args.horizon)
    step_duration_s = parse_duration_s(args.step_duration, "--step-duration")
    user_history = read_history_csv(args.history) if args.history else None
    name = args.name or (_series_name_from_path(args.history) if args.history else DEMO_SERIES)
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is outside 1..65535")

    store = Store(args.db)
    status = Console(stderr=True)
    criteria = StepCriteria(slo_p95_ms=DEMO_SLO_P95_MS, max_error_rate=DEMO_MAX_ERROR_RATE)
    show_progress = not args.json

    status.rule("capplan demo")
    with start_demo_target(TargetConfig(seed=7)) as target:
        status.print(f"1/5 demo target on {target.url} (worker pool of {target.config.workers})")
        status.print(f"2/5 baseline: {BASELINE_RPS:g} rps for {BASELINE_DURATION_S:g} s")
        generator = GeneratorConfig(base_url=target.url)
        baseline_plan = StepPlan(BASELINE_RPS, 0.0, BASELINE_RPS, BASELINE_DURATION_S)
        baseline = run_load_test(
            store,
            target.url,
            kind="baseline",
            plan=RunPlan(stages=baseline_plan.stages(), generator=generator, criteria=criteria),
            progress=RichProgress(status) if show_progress else None,
        )
        if baseline.status == "interrupted":
            return 130
        status.print(f"3/5 stepped test: {STEP_START_RPS:g} rps +{STEP_RPS:g} up to {STEP_MAX_RPS:g}, SLO p95 {DEMO_SLO_P95_MS:g} ms")
        step_plan = StepPlan(STEP_START_RPS, STEP_RPS, STEP_MAX_RPS, step_duration_s)
        stepped = run_load_test(
            store,
            target.url,
            kind="step",
            plan=RunPlan(stages=step_plan.stages(), generator=generator, criteria=criteria),
            progress=RichProgress(status) if show_progress else None,
        )
        if stepped.status == "interrupted":
            return 130
    if not args.json:
        probe_cmd.print_run_table(stepped)
    if stepped.safe_rps is None:
        raise ConfigError(f"run {stepped.run_id} found no safe load: {stepped.stop_reason}")

    if user_history is None:
        peak_rps = math.ceil(stepped.safe_rps * DEMO_PEAK_TO_SAFE_LOAD)
        history = make_demo_history(peak_rps=peak_rps)
        source = "demo"
        status.print(f"4/5 demand history: generated, 365 days hourly, today's peak near {peak_rps} rps")
    else:
        history, source = user_history, "csv"
        status.print(f"4/5 demand history: {args.history}, {len(history)} samples")
    write_samples(store, name, history, source=source, unit="rps")

    status.print(f"5/5 forecast of {name} and capacity plan for {args.horizon}")
    forecast_series(store, name, horizon)
    plan_id, plan = make_plan(store, stepped.run_id, name, horizon)
    if args.json:
        print_json(plan_cmd.plan_payload(plan_id, plan))
    else:
        plan_cmd.print_plan(plan_id, plan)
        status.print(f"store: {store.path}")

    if args.no_serve:
        return 0
    from capplan.cli.app_cmd import serve_app

    serve_app(store.path, port=args.port, block=True)
    return 0


def _series_name_from_path(path: str) -> str:
    from pathlib import Path

    stem = Path(path).stem
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in stem).strip("_")
    return cleaned or "demand"
