"""Running a stepped test on Locust's master/worker mode and storing it as a capplan run.

The master and local workers run as ``python -m locust`` subprocesses of this
process (Locust 2.47). The master drives the steps with the generated shape
(:mod:`loadprobe.locust_engine.live`): the workers keep a latency histogram
per step, and the master judges each step as it ends and stops at the first
failed one, as the built-in engine does. It appends each finished step to a
step log, which this process reads while the master runs, so every finished
step is stored (tool 'locust') as soon as it ends and survives a Ctrl-C.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from capplan.errors import ConfigError
from capplan.policy import DEFAULT_POLICY, SafeLoadPolicy
from capplan.store import Store
from capplan.store import runs as run_store
from loadprobe.load_test import RunResult, check_reachable
from loadprobe.locust_engine.locustfile import STEP_LOG_ENV, USER_RPS, locustfile_text, plan_steps
from loadprobe.locust_engine.step_reports import StepLogReader
from loadprobe.locust_engine.verdict import LATENCY_NOTE, judge_locust_step
from loadprobe.step_verdict import StepCriteria

__all__ = ["LocustOptions", "parse_host_port", "run_locust_step", "run_locust_worker"]

logger = logging.getLogger(__name__)

WORKER_WAIT_S = 60        # how long the master waits for --workers to connect
STARTUP_MARGIN_S = 90.0   # allowance beyond the steps' total duration before the run is killed
STOP_WAIT_S = 10.0        # how long a process gets to exit after SIGTERM before SIGKILL
POLL_S = 0.5              # how often the step log is read while the master runs


@dataclass(frozen=True)
class LocustOptions:
    """The master's listen address and the number of workers it waits for.

    Without ``master_bind`` the master listens on 127.0.0.1 at a free port and
    capplan starts ``workers`` local worker processes. With it, capplan starts
    no workers, and ``workers`` workers on other hosts must connect.
    """

    workers: int
    master_bind: tuple[str, int] | None = None


def parse_host_port(text: str, option: str) -> tuple[str, int]:
    """Parse ``HOST:PORT``, such as ``0.0.0.0:5557``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{option} {text!r} is invalid; give HOST:PORT, such as 0.0.0.0:5557")
    return host, int(port)


def run_locust_step(
    store: Store,
    url: str,
    *,
    rates: list[float],
    step_duration_s: float,
    timeout_s: float,
    criteria: StepCriteria,
    options: LocustOptions,
    policy: SafeLoadPolicy = DEFAULT_POLICY,
) -> RunResult:
    """Run the steps on a Locust master with workers, store the run with tool 'locust', and return it."""
    if options.workers < 1:
        raise ConfigError(f"--workers {options.workers} is invalid for --engine locust; give 1 or more")
    _locust()  # fails before a run is stored when Locust is missing
    check_reachable(url)
    steps = plan_steps(rates)
    criteria_args = _criteria_args(criteria)
    with tempfile.TemporaryDirectory(prefix="capplan-locust-") as folder:
        work = Path(folder)
        locustfile = work / "capplan_locustfile.py"
        locustfile.write_text(locustfile_text(url, steps, step_duration_s, timeout_s, criteria_args))
        config = {
            "engine": "locust",
            "rates_rps": [step.offered_rps for step in steps],
            "users": [step.users for step in steps],
            "user_rps": USER_RPS,
            "step_duration_s": step_duration_s,
            "workers": options.workers,
            "master_bind": None if options.master_bind is None else f"{options.master_bind[0]}:{options.master_bind[1]}",
            "criteria": {"slo_p95_ms": criteria.slo_p95_ms, "max_error_rate": criteria.max_error_rate},
            "latency_note": LATENCY_NOTE,
        }
        run_id = run_store.create_run(
            store, kind="step", target_url=url, started_at=_utc_now(), slo_p95_ms=criteria.slo_p95_ms,
            max_error_rate=criteria.max_error_rate, config=config, tool="locust",
        )
        result = RunResult(run_id, "running", None, None, None, None)
        logger.info("run %d started: Locust master with %d worker(s), %d step(s) of %g s", run_id, options.workers, len(steps), step_duration_s)
        reader = StepLogReader(work / "steps.log")

        def store_new_steps() -> None:
            for stats, peak_cpu in reader.new_steps():
                row = judge_locust_step(stats, steps[stats.step_index], criteria, peak_cpu, options.workers)
                run_store.add_step(store, run_id, row, [])
                result.steps.append(row)
                result.scenario_rows.append([])
                logger.info(
                    "step %d: %g rps offered, %.1f achieved, p95 %s ms, %s", stats.step_index, row["offered_rps"],
                    row["achieved_rps"], "n/a" if row["p95_ms"] is None else f"{row['p95_ms']:.1f}",
                    "passed" if row["passed"] else f"failed: {row['fail_reason']}",
                )

        try:
            _run_processes(work, locustfile, url, options, len(steps) * step_duration_s, store_new_steps)
            store_new_steps()
            if not result.steps:
                raise ConfigError(f"the Locust master finished without a step; its log ends: {_tail(work / 'master.log')}")
            result.status = "finished"
        except BaseException as exc:
            result.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            result.stop_reason = f"{type(exc).__name__}: {exc}"
            _close(store, result, policy)
            raise
    _close(store, result, policy)
    return result


def _criteria_args(criteria: StepCriteria) -> dict[str, float | None]:
    """Return the criteria the master can judge live; k6-style thresholds are not run on Locust."""
    if criteria.thresholds:
        raise ConfigError("--threshold is not supported with --engine locust; use --slo-p95 and --max-error-rate")
    return {
        "slo_p95_ms": criteria.slo_p95_ms,
        "max_error_rate": criteria.max_error_rate,
        "min_achieved_fraction": criteria.min_achieved_fraction,
    }


def run_locust_worker(url: str, master: tuple[str, int], *, rates: list[float], step_duration_s: float, timeout_s: float) -> int:
    """Run one Locust worker for a master on another host until the master stops it; return its exit code."""
    with tempfile.TemporaryDirectory(prefix="capplan-locust-worker-") as folder:
        locustfile = Path(folder) / "capplan_locustfile.py"
        # The workers do not judge steps, so their copy of the file needs no criteria.
        locustfile.write_text(locustfile_text(url, plan_steps(rates), step_duration_s, timeout_s, {}))
        command = [*_locust(), "-f", str(locustfile), "--worker", "--master-host", master[0], "--master-port", str(master[1])]
        logger.info("Locust worker connecting to master %s:%d", *master)
        process = subprocess.Popen(command)
        try:
            return process.wait()
        finally:
            _stop(process)


def _run_processes(
    work: Path, locustfile: Path, url: str, options: LocustOptions, steps_s: float, on_poll: Callable[[], None]
) -> None:
    """Run the master (and local workers) until the master exits, calling ``on_poll`` every POLL_S seconds."""
    host, port = options.master_bind or ("127.0.0.1", _free_port())
    parsed = urlparse(url)
    env = {**os.environ, STEP_LOG_ENV: str(work / "steps.log")}
    master_log = work / "master.log"
    master_command = [
        *_locust(), "-f", str(locustfile), "--master", "--headless",
        "--expect-workers", str(options.workers), "--expect-workers-max-wait", str(WORKER_WAIT_S),
        "--master-bind-host", host, "--master-bind-port", str(port),
        "-H", f"{parsed.scheme}://{parsed.netloc}",
        "--exit-code-on-error", "0",
    ]
    processes: list[subprocess.Popen[bytes]] = []
    with master_log.open("wb") as log:
        try:
            master = subprocess.Popen(master_command, stdout=log, stderr=subprocess.STDOUT, env=env)
            processes.append(master)
            if options.master_bind is None:
                worker_command = [*_locust(), "-f", str(locustfile), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
                for _ in range(options.workers):
                    processes.append(subprocess.Popen(worker_command, stdout=log, stderr=subprocess.STDOUT))
            # Each step also waits up to REPORT_WAIT_S for the workers' reports.
            deadline_s = WORKER_WAIT_S + steps_s * 1.5 + STARTUP_MARGIN_S
            give_up = time.monotonic() + deadline_s
            code = None
            while code is None:
                on_poll()
                if time.monotonic() > give_up:
                    raise ConfigError(
                        f"the Locust master did not finish within {deadline_s:.0f} s; check that {options.workers} "
                        f"worker(s) can connect to {host}:{port}; its log ends: {_tail(master_log)}"
                    )
                try:
                    code = master.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    code = None
            if code != 0:
                raise ConfigError(f"the Locust master exited with code {code}; its log ends: {_tail(master_log)}")
        finally:
            for process in processes:
                _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_WAIT_S)


def _close(store: Store, result: RunResult, policy: SafeLoadPolicy) -> None:
    failed = [row for row in result.steps if not row["passed"] and not row["generator_saturated"]]
    result.breaking_point_rps = failed[0]["offered_rps"] if failed else None
    if failed and result.status == "finished":
        result.exit_reason = "breaking_point"
    elif result.status == "finished":
        result.exit_reason = "completed"
    passed = [row["offered_rps"] for row in result.steps if row["passed"]]
    if result.breaking_point_rps is not None:
        passed = [rate for rate in passed if rate < result.breaking_point_rps]
    result.safe_rps, result.recommended_rps = policy.loads(result.breaking_point_rps, max(passed, default=None))
    run_store.finish_run(
        store, result.run_id, status=result.status, finished_at=_utc_now(), stop_reason=result.stop_reason,
        exit_reason=result.exit_reason, breaking_point_rps=result.breaking_point_rps, safe_rps=result.safe_rps,
        recommended_rps=result.recommended_rps,
    )


def _locust() -> list[str]:
    """Return the command that starts Locust in this interpreter, or raise ConfigError when it is not installed."""
    if importlib.util.find_spec("locust") is None:
        raise ConfigError(
            "--engine locust needs Locust, which is not installed in this Python; run "
            "\"pip install 'locust>=2.47,<3'\" or use --engine aiohttp"
        )
    return [sys.executable, "-m", "locust"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
