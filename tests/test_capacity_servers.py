"""Capacity fits of real servers on 127.0.0.1: a CPU-bound target, a worker pool, a rate limiter, and a change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from capplan.cli import main
from capplan.store import Store
from capplan.store.runs import get_steps
from forecasting.capacity import run_report
from forecasting.run_compare import compare_runs
from loadprobe.demo_target import TargetConfig
from loadprobe.target_process import start_demo_target

from test_capacity import linear_prediction

# 4 ms busy wait per request: about 220 rps once aiohttp's own overhead is added.
CPU_MS = 4.0
# Poisson arrivals seeded per step: every step below offers at least 93 % of its
# nominal count, so none fails the probe's 90 % achieved-rate rule by chance.
CPU_STEPS = ["--start", "70", "--step", "12", "--max", "202", "--step-duration", "3s", "--arrivals", "poisson"]
LOOSE_LIMITS = ["--slo-p95", "5000", "--max-error-rate", "5%", "--workers", "1", "--no-progress", "-q"]


def probe(db: Path, argv: list[str]) -> dict[str, Any]:
    """Run ``capplan probe`` with --json and return its payload."""
    from io import StringIO
    from contextlib import redirect_stdout

    buffer = StringIO()
    with redirect_stdout(buffer):
        code = main(["probe", *argv, *LOOSE_LIMITS, "--json", "--db", str(db)])
    assert code == 0, buffer.getvalue()
    return json.loads(buffer.getvalue())


ATTEMPTS = 3  # a run cut short because other processes starved the generator is measured again


def clean_probe(db: Path, argv: list[str]) -> dict[str, Any]:
    """Run the probe until no step has a saturated generator, at most ATTEMPTS times."""
    reasons = []
    for _ in range(ATTEMPTS):
        payload = probe(db, argv)
        if not any(step["generator_saturated"] for step in payload["steps"]):
            return payload
        reasons.append(payload["stop_reason"])
    pytest.fail(f"every run was cut short by a saturated generator (other processes busy on this machine?): {reasons}")


@pytest.fixture(scope="module")
def cpu_bound_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, int, float]]:
    """A stepped Poisson run against the CPU-bound target, and its peak measured by an overload step."""
    db = tmp_path_factory.mktemp("cpu") / "capplan.duckdb"
    reasons = []
    with start_demo_target(TargetConfig(cpu_ms=CPU_MS)) as target:
        for _ in range(ATTEMPTS):
            overload = probe(db, ["baseline", target.url, "--rate", "450", "--duration", "3s", "--arrivals", "poisson"])
            stepped = probe(db, ["step", target.url, *CPU_STEPS])
            saturated = [step for step in stepped["steps"] if step["generator_saturated"]]
            # The overload step may be flagged for send lag, since its queue holds hundreds of requests in
            # flight; its achieved rate is still the target's throughput.
            if len(stepped["steps"]) >= 8 and not saturated:
                yield Store(db), int(stepped["run_id"]), float(overload["steps"][0]["achieved_rps"])
                return
            reasons.append(stepped["stop_reason"])
    pytest.fail(f"the CPU-bound run was cut short {ATTEMPTS} times (other processes busy on this machine?): {reasons}")


@pytest.mark.slow
def test_capacity_cpu_bound_peak_from_60_percent(cpu_bound_run: tuple[Store, int, float]) -> None:
    store, run_id, peak_rps = cpu_bound_run
    report = run_report(store, run_id, upto_rps=0.6 * peak_rps)
    assert report.levels >= 6, report.notes
    assert report.peak_source == "latency_model", report.notes
    assert report.peak_rps == pytest.approx(peak_rps, rel=0.10)


@pytest.mark.slow
def test_capacity_queue_latency_next_step(tmp_path: Path) -> None:
    """The mean latency of the next untested step of a queue, predicted from the steps before it.

    The demo target with one worker and a fixed 10 ms service time is an
    M/D/1 queue under Poisson arrivals. Its capacity is about 93 requests/s,
    since each request also costs the server some overhead. The mean latency
    bends upward near the capacity, so a straight line through the lighter
    steps falls short at 75 requests/s (about 80 % load). Steps last 10 s:
    at 80 % load a 4 s step ends before its queue settles, so its mean is
    still below the steady state the model predicts.
    """
    db = tmp_path / "capplan.duckdb"
    config = TargetConfig(workers=1, service_ms=10.0, service_cv=0.0, queue_limit=1000, seed=3)
    steps_argv = ["--start", "15", "--step", "10", "--max", "75", "--step-duration", "10s", "--arrivals", "poisson"]
    with start_demo_target(config) as target:
        payload = clean_probe(db, ["step", target.url, *steps_argv])
    store = Store(db)
    run_id = int(payload["run_id"])
    steps = get_steps(store, run_id)
    assert len(steps) == 7, payload["stop_reason"]
    target_step = steps.iloc[-1]
    assert target_step["offered_rps"] == 75

    report = run_report(store, run_id, upto_rps=float(target_step["offered_rps"]) - 1.0)
    predicted = report.predict_latency_ms("mean", float(target_step["offered_rps"]))
    assert predicted is not None
    measured = float(target_step["mean_ms"])
    assert predicted == pytest.approx(measured, rel=0.15)

    earlier = steps[steps["offered_rps"] < target_step["offered_rps"]]
    line = linear_prediction(earlier["offered_rps"].to_numpy(), earlier["mean_ms"].to_numpy(), float(target_step["offered_rps"]))
    assert abs(line - measured) / measured > 0.15


@pytest.mark.slow
def test_capacity_rate_limiter_not_predicted(nginx_rate_limited: tuple[str, float], tmp_path: Path) -> None:
    url, limit_rps = nginx_rate_limited
    db = tmp_path / "capplan.duckdb"
    payload = clean_probe(db, ["step", url, "--start", "40", "--step", "20", "--max", "300", "--step-duration", "1s"])
    report = run_report(Store(db), payload["run_id"], upto_rps=0.9 * limit_rps)
    assert report.peak_rps is None
    assert report.knee_rps is None
    # Steps flagged for a busy machine can leave fewer than 6 levels; either way the report says why.
    explained = [note for note in report.notes if "no signal below it" in note or "usable level" in note]
    assert explained, report.notes

    full = run_report(Store(db), payload["run_id"])
    assert full.breaking_point_rps == pytest.approx(limit_rps, abs=40)
    assert full.peak_source == "measured"


@pytest.mark.slow
def test_capacity_worker_pool_not_predicted_from_below(demo_target, tmp_path: Path) -> None:
    """4 workers at 20 ms queue too little below their 200 rps limit for any model to see it."""
    db = tmp_path / "capplan.duckdb"
    payload = clean_probe(db, ["step", demo_target.url, "--start", "20", "--step", "20", "--max", "300", "--step-duration", "1s"])
    report = run_report(Store(db), payload["run_id"], upto_rps=120.0)
    assert report.peak_rps is None
    assert any("no signal below it" in note for note in report.notes), report.notes
    assert report.safe_basis == "highest passed step (lower bound)"


@pytest.mark.slow
def test_compare_faster_service_helped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Halving the service time (as a cache would) raises the safe load and lowers p95, both measurably."""
    db = tmp_path / "capplan.duckdb"
    steps = ["--start", "60", "--step", "60", "--max", "480", "--step-duration", "1s"]
    runs = []
    for service_ms in (20.0, 10.0):
        config = TargetConfig(workers=4, service_ms=service_ms, service_cv=0.0, queue_limit=100, seed=1)
        with start_demo_target(config) as target:
            # The SLO of 100 ms overrides the loose one of LOOSE_LIMITS, since the last option wins.
            runs.append(clean_probe(db, ["step", target.url, *steps, *LOOSE_LIMITS, "--slo-p95", "100", "--max-error-rate", "1%"])["run_id"])
    comparison = compare_runs(Store(db), runs[0], runs[1], replicates=100, seed=3)
    assert comparison.safe_rps.difference is not None and comparison.safe_rps.difference > 0
    assert comparison.safe_rps.significant
    assert comparison.p95_ms.difference is not None and comparison.p95_ms.difference < 0
    assert comparison.p95_ms.significant
    assert "safe load rose" in comparison.verdict()

    code = main(["capacity", "compare", str(runs[0]), str(runs[1]), "--bootstrap", "50", "--json", "--db", str(db)])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["safe_rps"]["difference"] > 0
    assert len(payload["safe_rps"]["interval"]) == 2


def test_compare_same_run_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capacity", "compare", "3", "3", "--db", str(tmp_path / "s.duckdb")]) == 2
    assert "both runs are 3" in capsys.readouterr().err


def test_linear_prediction_helper() -> None:
    assert linear_prediction(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]), 4.0) == pytest.approx(8.0)
