"""Peak throughput predicted from light load, against the peak measured in the same run.

For each target on 127.0.0.1 (the demo target's worker pool and a CPU-bound
target), the script measures the peak throughput with an overload step
(Poisson arrivals well above capacity, so the achieved rate is the peak),
runs a stepped Poisson test, hides the steps above 60 % of the measured peak
and fits the peak with ``forecasting.capacity``. It prints the prediction
error, or the report's note when no model can predict the peak.

Usage: .venv/bin/python bench/capacity_prediction.py [--step-duration 3] [--repeat 3]
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

from capplan.cli import main
from capplan.errors import InputDataError
from capplan.store import Store
from forecasting.capacity import run_report
from loadprobe.demo_target import TargetConfig
from loadprobe.target_process import start_demo_target

HIDE_ABOVE = 0.6  # steps above this fraction of the measured peak are hidden from the fit
TARGETS = {
    "demo target (8 workers, 20 ms, cv 0.5)": (TargetConfig(seed=7), 40, 40, 560, 700),
    "CPU-bound (4 ms busy wait per request)": (TargetConfig(cpu_ms=4.0), 70, 12, 202, 450),
}


def probe(db: Path, argv: list[str]) -> dict:
    buffer = StringIO()
    with redirect_stdout(buffer):
        code = main(["probe", *argv, "--slo-p95", "5000", "--max-error-rate", "5%", "--workers", "1",
                     "--no-progress", "-q", "--json", "--db", str(db)])
    if code != 0:
        raise SystemExit(f"probe failed with exit code {code}: {buffer.getvalue()}")
    return json.loads(buffer.getvalue())


def measure(config: TargetConfig, start: int, step: int, maximum: int, overload: int, step_duration: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.duckdb"
        with start_demo_target(config) as target:
            peak = probe(db, ["baseline", target.url, "--rate", str(overload), "--duration", "3s", "--arrivals", "poisson"])
            run = probe(db, ["step", target.url, "--start", str(start), "--step", str(step), "--max", str(maximum),
                             "--step-duration", f"{step_duration:g}s", "--arrivals", "poisson"])
        peak_rps = float(peak["steps"][0]["achieved_rps"])
        saturated = sum(1 for item in run["steps"] if item["generator_saturated"])
        try:
            report = run_report(Store(db), run["run_id"], upto_rps=HIDE_ABOVE * peak_rps)
        except InputDataError as exc:
            return {"measured_peak_rps": peak_rps, "predicted_peak_rps": None, "source": None, "levels": 0,
                    "saturated_steps": saturated, "error": None, "note": str(exc), "stop_reason": run["stop_reason"]}
    return {
        "measured_peak_rps": peak_rps,
        "predicted_peak_rps": report.peak_rps,
        "source": report.peak_source,
        "levels": report.levels,
        "saturated_steps": saturated,
        "error": None if report.peak_rps is None else report.peak_rps / peak_rps - 1.0,
        "note": None if report.peak_rps is not None else "; ".join(report.notes),
        "stop_reason": run["stop_reason"],
    }


def main_bench(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-duration", type=float, default=3.0, help="seconds per step (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (default 3)")
    args = parser.parse_args(argv)
    for name, (config, start, step, maximum, overload) in TARGETS.items():
        errors = []
        for attempt in range(args.repeat):
            result = measure(config, start, step, maximum, overload, args.step_duration)
            print(f"{name} run {attempt + 1}: {json.dumps(result)}", flush=True)
            if result["error"] is not None:
                errors.append(result["error"])
        if errors:
            print(f"{name}: prediction error median {statistics.median(errors):+.1%}, "
                  f"range {min(errors):+.1%} .. {max(errors):+.1%} over {len(errors)} run(s)")
        else:
            print(f"{name}: no prediction in any run")
    return 0


if __name__ == "__main__":
    sys.exit(main_bench())
