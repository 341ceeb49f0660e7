"""Latency honesty and saturation flags of the probe, against real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from capplan.cli import main
from capplan.store import Store
from capplan.store import runs as run_store
from loadprobe.generator import GeneratorConfig, Stage
from loadprobe.http_engine import Outcome, RequestSpec
from loadprobe.load_test import RunPlan, run_load_test
from loadprobe.step_verdict import StepCriteria
from loadprobe.target_process import free_port


@pytest.fixture
def stall_target() -> Iterator[str]:
    """The freezing target: the whole process stops for 1 s every 5 s."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "loadprobe.stall_target", "--port", str(port), "--period", "5", "--stall", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=2.0)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_stalling_server_p99_counts_the_freeze(stall_target, tmp_path, capsys):
    # 200 requests/s for two 5 s cycles: a fifth of the requests arrive during
    # a freeze and wait up to 1 s, so the true p99 is about 950 ms.
    code = main(
        ["probe", "baseline", stall_target, "--rate", "200", "--duration", "10s", "--slo-p95", "2000",
         "--json", "--db", str(tmp_path / "s.duckdb")]
    )  # fmt: skip
    payload = json.loads(capsys.readouterr().out)

    assert code == 0
    step = payload["steps"][0]
    assert step["p99_ms"] >= 900
    assert step["p50_ms"] < 50
    assert step["generator_saturated"] is False


def test_rate_above_capacity_flags_target(demo_target, tmp_path, capsys):
    capacity = demo_target.config.capacity_rps
    code = main(
        ["probe", "baseline", demo_target.url, "--rate", f"{capacity * 2:g}", "--duration", "3s",
         "--json", "--db", str(tmp_path / "s.duckdb")]
    )  # fmt: skip
    payload = json.loads(capsys.readouterr().out)

    assert code == 0
    step = payload["steps"][0]
    assert step["generator_saturated"] is False, step["fail_reason"]
    assert step["target_saturated"] is True, step
    assert step["passed"] is False
    assert step["achieved_rps"] == pytest.approx(capacity, rel=0.15)
    assert "achieved" in step["fail_reason"]
    # Queueing shows as concurrency far above the 4 workers' own.
    assert step["concurrency_mean"] > demo_target.config.workers


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_pinned_generator_flagged_with_cause(nginx_static, tmp_path):
    # Three busy loops share core 0 with the generator, which then gets about
    # a quarter of a core: far too little to schedule 3000 requests/s.
    busy_code = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end:\n    pass\n"
    pin = lambda: os.sched_setaffinity(0, {0})  # noqa: E731
    spinners = [subprocess.Popen([sys.executable, "-c", busy_code], preexec_fn=pin) for _ in range(3)]
    try:
        time.sleep(0.5)
        result = subprocess.run(
            [sys.executable, "-m", "capplan", "probe", "baseline", nginx_static, "--rate", "3000", "--duration", "3s",
             "--workers", "1", "--json", "--db", str(tmp_path / "s.duckdb")],
            preexec_fn=pin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()

    assert result.returncode == 0, result.stderr
    step = json.loads(result.stdout)["steps"][0]
    assert step["generator_saturated"] is True
    assert "compete with the generator for the CPU" in step["fail_reason"]
    logged = " ".join(result.stderr.split())  # rich wraps long log lines
    assert "WARNING" in logged
    assert "compete with the generator for the CPU" in logged
    assert step["target_saturated"] is False


class ResettingSender:
    """Every request ends in a connection reset.

    A mock, because a real server cannot be made to reset exactly every
    connection on demand; the ordinary tests use real servers.
    """

    async def send(self, spec: RequestSpec) -> Outcome:
        now = time.perf_counter()
        return Outcome(sent_at=now, done_at=now + 0.001, status=None, error_kind="reset")

    async def close(self) -> None:
        return None


def test_injected_resets_counted_by_kind(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    plan = RunPlan(
        stages=(Stage("open", 50, 50, 1.0),),
        generator=GeneratorConfig(base_url="http://127.0.0.1:9/"),
        criteria=StepCriteria(slo_p95_ms=500, max_error_rate=0.01),
    )
    result = run_load_test(store, "http://127.0.0.1:9/", kind="baseline", plan=plan, sender=ResettingSender(), check_target=False)

    step = result.steps[0]
    assert step["errors_by_kind"] == {"reset": 50}
    assert step["error_rate"] == 1.0
    assert step["passed"] is False
    assert result.breaking_point_rps == 50
    stored = run_store.get_steps(store, result.run_id).iloc[0]
    assert json.loads(stored["errors_by_kind"]) == {"reset": 50}
