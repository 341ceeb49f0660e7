"""Mean latency of the next untested step of a real queue: the capacity model against a straight line.

The demo target with one worker and a fixed 10 ms service time is an M/D/1
queue under Poisson arrivals (capacity about 93 requests/s on 127.0.0.1).
The script runs stepped Poisson tests from 15 to 85 requests/s in steps of
10, and for each of the top steps fits the latency model
(``forecasting.capacity``) to the steps below it and predicts that step's
mean latency. The peer is a straight line through the same steps, the
spreadsheet's trend line. Errors are predicted / measured - 1.

Usage: .venv/bin/python bench/queue_latency_prediction.py [--step-duration 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np

from capplan.cli import main
from capplan.store import Store
from capplan.store.runs import get_steps
from forecasting.capacity import run_report
from loadprobe.demo_target import TargetConfig
from loadprobe.target_process import start_demo_target

QUEUE = TargetConfig(workers=1, service_ms=10.0, service_cv=0.0, queue_limit=1000, seed=3)
STEPS = ["--start", "15", "--step", "10", "--max", "85", "--arrivals", "poisson"]
PREDICTED_STEPS = (65.0, 75.0, 85.0)  # offered rps; about 70, 80 and 90 % of the capacity


def run_steps(db: Path, url: str, step_duration: float) -> dict:
    buffer = StringIO()
    with redirect_stdout(buffer):
        code = main(["probe", "step", url, *STEPS, "--step-duration", f"{step_duration:g}s", "--slo-p95", "5000",
                     "--max-error-rate", "5%", "--workers", "1", "--no-progress", "-q", "--json", "--db", str(db)])
    if code != 0:
        raise SystemExit(f"probe failed with exit code {code}: {buffer.getvalue()}")
    return json.loads(buffer.getvalue())


def measure(step_duration: float) -> dict[float, dict[str, float | None]]:
    """Run one stepped test and return, per predicted step, the measured, modelled and straight-line means."""
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.duckdb"
        with start_demo_target(QUEUE) as target:
            payload = run_steps(db, target.url, step_duration)
        if any(step["generator_saturated"] for step in payload["steps"]):
            print(f"  run discarded: a step had a saturated generator ({payload['stop_reason']})", flush=True)
            return {}
        store = Store(db)
        steps = get_steps(store, payload["run_id"])
        results: dict[float, dict[str, float | None]] = {}
        for rate in PREDICTED_STEPS:
            row = steps[steps["offered_rps"] == rate]
            if row.empty:
                continue
            measured = float(row["mean_ms"].iloc[0])
            report = run_report(store, payload["run_id"], upto_rps=rate - 1.0)
            model = report.predict_latency_ms("mean", rate)
            earlier = steps[steps["offered_rps"] < rate]
            slope, intercept = np.polyfit(earlier["offered_rps"].to_numpy(), earlier["mean_ms"].to_numpy(), 1)
            line = float(slope * rate + intercept)
            results[rate] = {
                "measured_ms": measured,
                "model_error": None if model is None else model / measured - 1.0,
                "line_error": line / measured - 1.0,
            }
        return results


def main_bench(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-duration", type=float, default=10.0, help="seconds per step (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="stepped runs (default 3)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.step_duration <= 0:
        parser.error("--repeat must be at least 1 and --step-duration above 0")

    collected: dict[float, list[dict[str, float | None]]] = {rate: [] for rate in PREDICTED_STEPS}
    for attempt in range(args.repeat):
        results = measure(args.step_duration)
        print(f"run {attempt + 1}: {json.dumps(results)}", flush=True)
        for rate, result in results.items():
            collected[rate].append(result)

    print(f"\n{'step (rps)':>10} {'measured mean (ms)':>19} {'model error':>12} {'line error':>11}  runs")
    for rate, results in collected.items():
        if not results:
            print(f"{rate:>10g}  no clean run")
            continue
        model = [r["model_error"] for r in results if r["model_error"] is not None]
        line = [r["line_error"] for r in results if r["line_error"] is not None]
        measured = statistics.median(r["measured_ms"] for r in results if r["measured_ms"] is not None)
        model_text = f"{statistics.median(model):+.1%}" if model else "none"
        print(f"{rate:>10g} {measured:>19.1f} {model_text:>12} {statistics.median(line):>+11.1%}  {len(results)} "
              f"(model range {min(model, default=float('nan')):+.1%} .. {max(model, default=float('nan')):+.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main_bench())
