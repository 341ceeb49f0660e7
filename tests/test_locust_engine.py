"""The Locust engine: step plan, history cutting, and a real master with two workers on 127.0.0.1."""

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
from loadprobe.locust_engine import LocustStep, cut_steps, judge_locust_step, plan_steps, read_history, read_step_log
from loadprobe.step_verdict import StepCriteria
from loadprobe.target_process import free_port

# find_spec, not import: importing locust monkey-patches this process with gevent, which breaks process pools in other tests.
needs_locust = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None, reason="Locust is an optional engine: pip install 'locust>=2.47,<3'"
)

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
    "Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
    "Total Min Response Time,Total Max Response Time,Total Average Content Size"
)


def _history_line(time_s: int, users: int, p95: str, total: int, failures: int, mean_ms: float) -> str:
    return (
        f"{time_s},{users},,Aggregated,0,0,10,11,12,13,14,{p95},16,17,18,19,20,"
        f"{total},{failures},10,{mean_ms},1,20,2"
    )


def test_plan_steps_rounds_users() -> None:
    steps = plan_steps([10.0, 20.4, 0.3])

    assert steps == [LocustStep(10, 10.0), LocustStep(20, 20.0), LocustStep(1, 1.0)]


def test_cut_steps_counts_and_mean(tmp_path: Path) -> None:
    history = tmp_path / "run_stats_history.csv"
    history.write_text("\n".join([
        HEADER,
        "100,0,,step,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0",  # not Aggregated: skipped
        _history_line(100, 0, "N/A", 0, 0, 0.0),
        _history_line(105, 10, "15", 50, 0, 10.0),
        _history_line(110, 20, "30", 150, 10, 20.0),
    ]) + "\n")
    log = tmp_path / "steps.log"
    log.write_text("0,100.2,0.0\n1,105.1,35.5\n2,110.4,50.0\n")

    boundaries, peak_cpu = read_step_log(log)
    steps = cut_steps(read_history(history), boundaries)

    assert peak_cpu == [35.5, 50.0]
    assert [step.requests for step in steps] == [50, 100]
    assert [step.failures for step in steps] == [0, 10]
    assert [step.span_s for step in steps] == [5.0, 5.0]
    assert steps[1].mean_ms == pytest.approx((150 * 20.0 - 50 * 10.0) / 100)
    assert steps[0].percentiles_ms["p95_ms"] == 15.0
    assert steps[1].percentiles_ms["max_ms"] == 20.0


def test_judge_locust_step_fails_slo_and_flags_cpu(tmp_path: Path) -> None:
    history = tmp_path / "h.csv"
    history.write_text("\n".join([HEADER, _history_line(0, 1, "N/A", 0, 0, 0.0), _history_line(5, 10, "300", 50, 0, 100.0)]) + "\n")
    stats = cut_steps(read_history(history), [0.0, 5.0])[0]
    criteria = StepCriteria(slo_p95_ms=200.0, max_error_rate=0.01)

    slow = judge_locust_step(stats, LocustStep(10, 10.0), criteria, 40.0, 2)
    busy = judge_locust_step(stats, LocustStep(10, 10.0), criteria, 97.0, 2)

    assert slow["passed"] is False
    assert "p95 300.0 ms > SLO 200.0 ms" in slow["fail_reason"]
    assert slow["achieved_rps"] == 10.0
    assert slow["generator_saturated"] is False
    assert busy["generator_saturated"] is True
    assert busy["fail_reason"].startswith("generator saturated")


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
