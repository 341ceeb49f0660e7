"""Stepped and baseline probes against real servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capplan.cli import main
from capplan.store import Store
from capplan.store import runs as run_store

STEP_ARGS = ["--start", "50", "--step", "50", "--max", "400", "--step-duration", "2s", "--slo-p95", "100", "--max-error-rate", "1%"]


def run_cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


@pytest.mark.slow
def test_step_finds_demo_target_limit(demo_target, tmp_path, capsys):
    db = tmp_path / "probe.duckdb"
    payload = run_cli_json(capsys, ["probe", "step", demo_target.url, *STEP_ARGS, "--json", "--db", str(db)])

    capacity = demo_target.config.capacity_rps
    assert payload["breaking_point_rps"] is not None
    assert abs(payload["breaking_point_rps"] - capacity) <= 50
    assert payload["safe_rps"] == pytest.approx(0.8 * payload["breaking_point_rps"])
    assert payload["steps"][-1]["passed"] is False
    assert all(step["passed"] for step in payload["steps"][:-1])
    below = [step for step in payload["steps"] if step["offered_rps"] <= capacity * 0.75]
    assert below, "the plan must test rates well below capacity"
    for step in below:
        assert step["achieved_rps"] == pytest.approx(step["offered_rps"], rel=0.05)
        assert step["p95_ms"] < 40

    stored = run_store.get_steps(Store(db), payload["run_id"])
    assert len(stored) == len(payload["steps"])
    run = run_store.get_run(Store(db), payload["run_id"])
    assert run["status"] == "finished"
    assert run["breaking_point_rps"] == payload["breaking_point_rps"]


@pytest.mark.slow
def test_step_finds_nginx_rate_limit(nginx_rate_limited, tmp_path, capsys):
    url, limit_rps = nginx_rate_limited
    db = tmp_path / "probe.duckdb"
    payload = run_cli_json(capsys, ["probe", "step", url, *STEP_ARGS, "--json", "--db", str(db)])

    assert payload["breaking_point_rps"] is not None
    assert abs(payload["breaking_point_rps"] - limit_rps) <= 50
    failed = payload["steps"][-1]
    assert failed["error_rate"] > 0.01


def test_baseline_json_fields(demo_target, tmp_path, capsys):
    db = tmp_path / "probe.duckdb"
    payload = run_cli_json(
        capsys, ["probe", "baseline", demo_target.url, "--rate", "40", "--duration", "1s", "--json", "--db", str(db)]
    )

    assert set(payload) >= {"run_id", "breaking_point_rps", "safe_rps", "steps"}
    assert payload["breaking_point_rps"] is None
    assert payload["safe_rps"] == pytest.approx(32.0)
    (step,) = payload["steps"]
    assert set(step) >= {"offered_rps", "achieved_rps", "p50_ms", "p95_ms", "p99_ms", "error_rate", "passed"}
    assert step["offered_rps"] == 40
    assert step["passed"] is True
    assert step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"]
    # Latency counts from the intended send time, so it cannot be below the service time.
    assert step["p50_ms"] >= 20.0


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--start", "0", "--step", "10", "--max", "100"], "--start"),
        (["--start", "100", "--step", "10", "--max", "50"], "--max 50"),
        (["--start", "10", "--step", "0", "--max", "50"], "--step"),
        (["--start", "10", "--step", "10", "--max", "50", "--slo-p95", "fast"], "'fast'"),
        (["--start", "10", "--step", "10", "--max", "50", "--max-error-rate", "2"], "'2'"),
        (["--start", "10", "--step", "10", "--max", "50", "--step-duration", "12mo"], "calendar unit"),
    ],
)
def test_step_bad_flags_exit_2(tmp_path, capsys, extra, fragment):
    db = tmp_path / "untouched.duckdb"
    code = main(["probe", "step", "http://127.0.0.1:9/", *extra, "--db", str(db)])
    err = capsys.readouterr().err

    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1
    assert not db.exists()


def test_step_unreachable_url_exit_2(tmp_path, capsys):
    from loadprobe.target_process import free_port

    db = tmp_path / "untouched.duckdb"
    url = f"http://127.0.0.1:{free_port()}/"
    code = main(["probe", "step", url, "--start", "10", "--step", "10", "--max", "20", "--db", str(db)])
    err = capsys.readouterr().err

    assert code == 2
    assert url in err
    assert "cannot reach" in err
    assert not db.exists()


def test_step_interrupt_keeps_finished_steps(demo_target, tmp_path):
    db = tmp_path / "probe.duckdb"
    command = [
        sys.executable, "-m", "capplan", "probe", "step", demo_target.url,
        "--start", "20", "--step", "10", "--max", "200", "--step-duration", "1s", "--db", str(db), "--no-progress",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "CI": ""})
    try:
        deadline = time.monotonic() + 30
        finished = 0
        while time.monotonic() < deadline and finished < 2:
            time.sleep(0.3)
            if db.exists():
                try:
                    with Store(db).read() as con:
                        finished = con.execute("SELECT count(*) FROM steps").fetchone()[0]
                except Exception:
                    finished = 0  # the writer holds the file for a moment; poll again
        assert finished >= 2, "the probe did not finish two steps in 30 s"
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert code == 130
    store = Store(db)
    (run,) = run_store.list_runs(store).to_dict("records")
    assert run["status"] == "interrupted"
    steps = run_store.get_steps(store, run["run_id"])
    assert len(steps) >= 2
    assert steps["passed"].all()
    assert list(steps["step_index"]) == list(range(len(steps)))
