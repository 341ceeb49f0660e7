"""The part of the Locust engine that runs inside Locust: per-step histograms on workers, step judgement on the master.

The generated locustfile imports this module, so the master and every worker
load it. capplan's own process never does, because importing Locust patches
the process with gevent. The protocol, over Locust's custom messages:

1. the master's shape sends ``STEP_START`` with the step index and sets the
   step's users; each worker starts a fresh histogram and counts;
2. when the step has lasted its duration, the shape sends ``STEP_END``; each
   worker stops recording and replies with ``STEP_REPORT`` (its counts and
   encoded histogram);
3. once every worker has answered (or REPORT_WAIT_S has passed), the shape
   merges the reports, judges the step with the built-in engine's criteria,
   appends it to the step log, and either starts the next step or stops the
   test at the first failed one.

Requests finished between ``STEP_END`` and the next ``STEP_START`` (about a
second while the master waits for the reports) belong to no step.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from typing import Any, ClassVar

from locust import LoadTestShape
from locust.runners import MasterRunner, WorkerRunner

from loadprobe.histogram import LatencyHistogram
from loadprobe.locust_engine.locustfile import STEP_LOG_ENV, LocustStep
from loadprobe.locust_engine.step_reports import merge_reports, step_log_line
from loadprobe.locust_engine.verdict import judge_locust_step
from loadprobe.step_verdict import StepCriteria

__all__ = ["STEP_START", "STEP_END", "STEP_REPORT", "REPORT_WAIT_S", "SteppedShape", "on_locust_init"]

logger = logging.getLogger(__name__)

STEP_START = "capplan_step_start"
STEP_END = "capplan_step_end"
STEP_REPORT = "capplan_step_report"
REPORT_WAIT_S = 5.0  # how long the master waits for every worker's report before judging without it


class _WorkerLedger:
    """A worker's counts and latency histogram for the step in progress."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.requests = 0
        self.failures = 0
        self.latency = LatencyHistogram()

    def start(self, step: int) -> None:
        self.step = step
        self.requests = 0
        self.failures = 0
        self.latency = LatencyHistogram()

    def record(self, response_time_ms: float, failed: bool) -> None:
        if self.step is None:
            return
        self.requests += 1
        self.failures += int(failed)
        self.latency.record_s(response_time_ms / 1000.0)

    def end(self, step: int) -> dict[str, Any]:
        """Stop recording and return the report of ``step``; empty when this worker did not record it."""
        recorded = self.step == step
        report = {
            "step": step,
            "requests": self.requests if recorded else 0,
            "failures": self.failures if recorded else 0,
            "hdr": self.latency.encode() if recorded and self.requests else "",
        }
        self.step = None
        return report


_ledger = _WorkerLedger()
_received: dict[int, list[dict[str, Any]]] = defaultdict(list)


def on_locust_init(environment: Any, **_: Any) -> None:
    """Register the step messages; the generated locustfile adds this to ``events.init``."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(STEP_START, _on_step_start)
        runner.register_message(STEP_END, _on_step_end)
        environment.events.request.add_listener(_on_request)
    elif isinstance(runner, MasterRunner):
        runner.register_message(STEP_REPORT, _on_step_report)


def _on_request(response_time: float | None = None, exception: BaseException | None = None, **_: Any) -> None:
    _ledger.record(float(response_time or 0.0), exception is not None)


def _on_step_start(environment: Any, msg: Any, **_: Any) -> None:
    _ledger.start(int(msg.data["step"]))


def _on_step_end(environment: Any, msg: Any, **_: Any) -> None:
    environment.runner.send_message(STEP_REPORT, _ledger.end(int(msg.data["step"])))


def _on_step_report(environment: Any, msg: Any, **_: Any) -> None:
    report = dict(msg.data)
    report["worker"] = msg.node_id
    _received[int(report.pop("step"))].append(report)


class SteppedShape(LoadTestShape):
    """Run the steps one after the other, judging each as it ends; subclasses set the class attributes."""

    abstract: ClassVar[bool] = True
    step_users: ClassVar[list[int]] = []
    step_rates: ClassVar[list[float]] = []
    step_duration_s: ClassVar[float] = 0.0
    criteria: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        self._index = -1
        self._started_s = 0.0
        self._ended_s: float | None = None
        self._deadline_s = 0.0
        self._workers = 0
        self._peak_cpu = 0.0

    def tick(self) -> tuple[int, float] | None:
        now = time.time()
        self._track_cpu()
        if self._index < 0:
            return self._start(0, now)

        if self._ended_s is None:
            if now - self._started_s < self.step_duration_s:
                return self._users()
            # The step's users keep running while the reports come in, but the workers no longer record them.
            self._ended_s = now
            self._workers = self.runner.worker_count
            self._deadline_s = now + REPORT_WAIT_S
            self.runner.send_message(STEP_END, {"step": self._index})
            return self._users()

        reports = _received.get(self._index, [])
        if len(reports) < self._workers and now < self._deadline_s:
            return self._users()
        if not self._finish_step(list(reports)) or self._index + 1 >= len(self.step_users):
            return None
        return self._start(self._index + 1, now)

    def _start(self, index: int, now: float) -> tuple[int, float]:
        self._index = index
        self._started_s = now
        self._ended_s = None
        self._peak_cpu = 0.0
        self.runner.send_message(STEP_START, {"step": index})
        return self._users()

    def _users(self) -> tuple[int, float]:
        users = self.step_users[self._index]
        # Spawn a whole step's users within one second, so the step starts at its rate.
        return users, float(max(1, users))

    def _track_cpu(self) -> None:
        clients = getattr(self.runner, "clients", None)
        for worker in clients.all if clients is not None else ():
            self._peak_cpu = max(self._peak_cpu, float(worker.cpu_usage or 0.0))

    def _finish_step(self, reports: list[dict[str, Any]]) -> bool:
        """Log the finished step and return whether it passed."""
        assert self._ended_s is not None
        stats = merge_reports(self._index, self._started_s, self._ended_s, reports, self._workers)
        step = LocustStep(self.step_users[self._index], self.step_rates[self._index])
        row = judge_locust_step(stats, step, StepCriteria(**self.criteria), self._peak_cpu, self._workers)
        line = step_log_line(self._index, self._started_s, self._ended_s, reports, self._workers, self._peak_cpu)
        path = os.environ.get(STEP_LOG_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as log:
                log.write(line)
        if row["passed"]:
            logger.info("capplan step %d passed with %d requests", self._index, stats.requests)
        else:
            logger.info("capplan step %d failed, stopping: %s", self._index, row["fail_reason"])
        return bool(row["passed"])
