"""The Locust engine: step plan, merged worker reports, and a real master with two workers on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from capplan.cli import main
from capplan.store import Store
from capplan.store.runs import get_run, get_steps
from loadprobe.histogram import LatencyHistogram
from loadprobe.locust_engine import LocustStep, StepLogReader, judge_locust_step, merge_reports, plan_steps, step_log_line
from loadprobe.step_verdict import StepCriteria
from loadprobe.target_process import free_port

# find_spec, not import: importing locust monkey-patches this process with gevent, which breaks process pools in other tests.
needs_locust = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None, reason="Locust is an optional engine: pip install 'locust>=2.47,<3'"
)

def _report(latencies_ms: list[float], failures: int = 0) -> dict[str, object]:
    """A worker's report of one step, as live.py sends it."""
    histogram = LatencyHistogram()
    for value in latencies_ms:
        histogram.record_s(value / 1000.0)
    return {"requests": len(latencies_ms), "failures": failures, "hdr": histogram.encode() if latencies_ms else ""}


def test_plan_steps_rounds_users() -> None:
    steps = plan_steps([10.0, 20.4, 0.3])

    assert steps == [LocustStep(10, 10.0), LocustStep(20, 20.0), LocustStep(1, 1.0)]


def test_merge_reports_exact_percentiles() -> None:
    # Two workers: one saw 90 fast requests, the other 10 slow ones, so the merged p95 is a slow one.
    reports = [_report([10.0] * 90), _report([400.0] * 10, failures=2)]

    stats = merge_reports(3, 100.0, 110.0, reports, workers_expected=2)

    assert stats.requests == 100
    assert stats.failures == 2
    assert stats.span_s == 10.0
    assert stats.percentiles_ms["p50_ms"] == pytest.approx(10.0, rel=0.001)
    assert stats.percentiles_ms["p95_ms"] == pytest.approx(400.0, rel=0.001)
    assert stats.mean_ms == pytest.approx(49.0, rel=0.001)


def test_step_log_reader_skips_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "steps.log"
    reader = StepLogReader(log)
    assert reader.new_steps() == []

    first = step_log_line(0, 100.0, 106.0, [_report([20.0] * 60)], 1, 35.5)
    second = step_log_line(1, 107.0, 113.0, [_report([25.0] * 120)], 1, 50.0)
    log.write_text(first + second[:20])  # the master is still writing the second line
    steps = reader.new_steps()

    assert [(stats.step_index, cpu) for stats, cpu in steps] == [(0, 35.5)]
    with log.open("a") as handle:
        handle.write(second[20:])
    later = reader.new_steps()
    assert [(stats.step_index, stats.requests) for stats, _ in later] == [(1, 120)]


def test_judge_locust_step_fails_slo_and_flags_cpu() -> None:
    stats = merge_reports(0, 0.0, 5.0, [_report([300.0] * 50)], workers_expected=1)
    criteria = StepCriteria(slo_p95_ms=200.0, max_error_rate=0.01)

    slow = judge_locust_step(stats, LocustStep(10, 10.0), criteria, 40.0, 2)
    busy = judge_locust_step(stats, LocustStep(10, 10.0), criteria, 97.0, 2)

    assert slow["passed"] is False
    assert "p95 300.0 ms > SLO 200.0 ms" in slow["fail_reason"]
    assert slow["achieved_rps"] == 10.0
    assert slow["generator_saturated"] is False
    assert slow["latency_hdr"]
    assert busy["generator_saturated"] is True
    assert busy["fail_reason"].startswith("generator saturated")


def test_judge_locust_step_missing_worker_report() -> None:
    stats = merge_reports(0, 0.0, 5.0, [_report([20.0] * 50)], workers_expected=2)

    row = judge_locust_step(stats, LocustStep(10, 10.0), StepCriteria(), None, 2)

    assert row["passed"] is False
    assert "only 1 of 2 Locust workers reported" in row["fail_reason"]


@pytest.mark.slow
@needs_locust
def test_locust_master_two_workers_store_steps(demo_target, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "capplan.duckdb"

    code = main([
        "probe", "step", demo_target.url, "--engine", "locust", "--workers", "2",
        "--start", "10", "--step", "10", "--max", "20", "--step-duration", "6s",
        "--slo-p95", "500", "--json", "--db", str(db),
    ])

    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload["status"] == "finished"
    assert [step["offered_rps"] for step in payload["steps"]] == [10.0, 20.0]
    store = Store(db)
    run = get_run(store, payload["run_id"])
    assert run["tool"] == "locust"
    config = json.loads(run["config"])
    assert config["workers"] == 2
    assert "intended send time" in config["latency_note"]
    steps = get_steps(store, payload["run_id"])
    assert steps["generator_processes"].tolist() == [2, 2]
    assert steps["model"].tolist() == ["closed", "closed"]
    # Pacing at 1 request/s per user: each step sends requests near its rate; the bounds are loose for a busy machine.
    for offered, requests, span in zip(steps["offered_rps"], steps["requests"], steps["duration_s"]):
        assert requests > 0
        assert requests <= offered * (span + 2)
    assert steps["p95_ms"].notna().all()
    assert (steps["p95_ms"] >= 15).all()  # the demo target serves each request in 20 ms
    # Each step's histogram has every request the workers recorded in it.
    for encoded, requests in zip(steps["latency_hdr"], steps["requests"]):
        assert LatencyHistogram.decode(encoded).count == requests


@pytest.mark.slow
@needs_locust
def test_locust_stops_at_first_failed_step(demo_target, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo target takes 20 ms a request, so an SLO of 10 ms fails the first step and the run stops there."""
    db = tmp_path / "capplan.duckdb"

    code = main([
        "probe", "step", demo_target.url, "--engine", "locust", "--workers", "1",
        "--start", "10", "--step", "10", "--max", "40", "--step-duration", "3s",
        "--slo-p95", "10", "--json", "--db", str(db),
    ])

    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [step["offered_rps"] for step in payload["steps"]] == [10.0]
    assert payload["steps"][0]["passed"] is False
    assert "> SLO 10.0 ms" in payload["steps"][0]["fail_reason"]
    assert payload["breaking_point_rps"] == 10.0
    assert len(get_steps(Store(db), payload["run_id"])) == 1


@pytest.mark.slow
@needs_locust
def test_locust_master_bind_with_worker_of(demo_target, tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "capplan.duckdb"
    steps = ["--start", "5", "--step", "5", "--max", "5", "--step-duration", "5s"]
    master_command = [
        sys.executable, "-m", "capplan", "probe", "step", demo_target.url, *steps, "--engine", "locust",
        "--workers", "1", "--master-bind", f"127.0.0.1:{port}", "--json", "--db", str(db),
    ]
    worker_command = [
        sys.executable, "-m", "capplan", "probe", "step", demo_target.url, *steps, "--engine", "locust",
        "--worker-of", f"127.0.0.1:{port}",
    ]
    master = subprocess.Popen(master_command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(worker_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        output, _ = master.communicate(timeout=120)
        worker_code = worker.wait(timeout=30)
    finally:
        for process in (master, worker):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    payload = json.loads(output)
    assert master.returncode == 0
    assert worker_code == 0
    assert payload["status"] == "finished"
    assert len(payload["steps"]) == 1
    assert get_run(Store(db), payload["run_id"])["tool"] == "locust"
    assert get_steps(Store(db), payload["run_id"])["requests"].iloc[0] > 0
