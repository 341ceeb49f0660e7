"""Running a load test: stages in order, each stored as soon as it finishes.

A run row is created before the first request, each step is stored with its
per-scenario rows in one transaction, and the run is closed with its breaking
point and safe load. A run stops at the first failed step (stepped tests), at
a threshold breach when the plan aborts on failure (exit 99), at a saturated
generator, or on Ctrl-C or SIGTERM. In every case the finished steps stay in
the store.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol
from urllib.parse import urlparse

import httpx
import psutil

from capplan.errors import ConfigError, TargetUnreachableError
from capplan.policy import DEFAULT_POLICY, SafeLoadPolicy
from capplan.store import Store
from capplan.store import runs as run_store
from loadprobe.arrivals import ARRIVAL_KINDS
from loadprobe.generator import GeneratorConfig, Stage, make_generator
from loadprobe.http_engine import RequestSender
from loadprobe.limits import check_stage_limits
from loadprobe.measurement import LiveCounters
from loadprobe.step_verdict import StepCriteria, judge_step

__all__ = [
    "StepPlan",
    "RunPlan",
    "RunResult",
    "ProgressReporter",
    "check_reachable",
    "run_load_test",
    "validate_url",
    "auto_workers",
    "EXIT_THRESHOLD_FAILED",
]

logger = logging.getLogger(__name__)

REACHABILITY_TIMEOUT_S = 5.0
LIVE_CHECK_S = 0.5
# A live error-rate check needs this many completed requests before it may abort a step.
LIVE_CHECK_MIN_REQUESTS = 100
# Requests/s one generator process schedules comfortably; "auto" adds a
# process per this much of the highest rate, up to the number of cores.
RATE_PER_PROCESS_RPS = 2000.0
EXIT_THRESHOLD_FAILED = 99


@dataclass(frozen=True)
class StepPlan:
    """The rates of a stepped test: ``start_rps``, then ``+step_rps`` up to ``max_rps``."""

    start_rps: float
    step_rps: float
    max_rps: float
    step_duration_s: float
    arrivals: str = "uniform"
    max_in_flight: int = 1000
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.start_rps > 0:
            raise ConfigError(f"--start: {self.start_rps:g} rps is not a positive rate; give the first step's rate, such as --start 10")
        if self.max_rps < self.start_rps:
            raise ConfigError(f"--max {self.max_rps:g} rps is below --start {self.start_rps:g} rps; raise --max or lower --start")
        if self.max_rps > self.start_rps and not self.step_rps > 0:
            raise ConfigError(f"--step: {self.step_rps:g} rps must be positive to climb from {self.start_rps:g} to {self.max_rps:g} rps")
        if self.arrivals not in ARRIVAL_KINDS:
            raise ConfigError(f"--arrivals: {self.arrivals!r} is not one of {', '.join(ARRIVAL_KINDS)}")

    def rates(self) -> list[float]:
        if self.max_rps == self.start_rps or self.step_rps <= 0:
            return [self.start_rps]
        count = int((self.max_rps - self.start_rps) / self.step_rps + 1e-9) + 1
        return [self.start_rps + index * self.step_rps for index in range(count)]

    def stages(self) -> tuple[Stage, ...]:
        return tuple(Stage("open", rate, rate, self.step_duration_s) for rate in self.rates())


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs: stages, generator, pass criteria and how to stop."""

    stages: tuple[Stage, ...]
    generator: GeneratorConfig
    criteria: StepCriteria
    stop_on_failed_step: bool = True
    abort_on_threshold: bool = False
    grace_s: float = 5.0
    prometheus_url: str | None = None  # when set, each step stores the target's CPU and memory
    prometheus_selector: str | None = None  # label matchers of the target, such as job="api"

    def __post_init__(self) -> None:
        check_stage_limits(self.stages, self.generator)


@dataclass
class RunResult:
    run_id: int
    status: str
    stop_reason: str | None
    breaking_point_rps: float | None
    safe_rps: float | None
    recommended_rps: float | None
    exit_reason: str | None = None  # completed | breaking_point | threshold | generator_saturated | interrupted
    steps: list[dict[str, Any]] = field(default_factory=list)
    scenario_rows: list[list[dict[str, Any]]] = field(default_factory=list)


class ProgressReporter(Protocol):
    def step_started(self, index: int, total: int, label: str, duration_s: float, live: Callable[[], LiveCounters]) -> None: ...

    def step_finished(self, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def auto_workers(max_rate_rps: float) -> int:
    """Return how many generator processes a rate needs: one per RATE_PER_PROCESS_RPS, up to the cores."""
    cores = psutil.cpu_count(logical=True) or 1
    return max(1, min(cores, math.ceil(max_rate_rps / RATE_PER_PROCESS_RPS)))


def validate_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"URL {url!r} is not an http(s) URL; give one such as http://127.0.0.1:8080/")


def check_reachable(url: str) -> None:
    """Send one request so an unreachable target fails before a run is stored."""
    validate_url(url)
    try:
        httpx.get(url, timeout=REACHABILITY_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise TargetUnreachableError(
            f"cannot reach {url}: {exc.__class__.__name__}: {exc}; check that the server is running and the host and port are right"
        ) from exc


def run_load_test(
    store: Store,
    url: str,
    *,
    kind: str,
    plan: RunPlan,
    policy: SafeLoadPolicy = DEFAULT_POLICY,
    progress: ProgressReporter | None = None,
    sender: RequestSender | None = None,
    check_target: bool = True,
) -> RunResult:
    """Run the plan against ``url``, store every step, and return the outcome.

    ``sender`` replaces the request engine in one process (a test seam for
    faults a real server cannot produce on demand).
    """
    if check_target:
        check_reachable(url)
    config = {
        "stages": [asdict(stage) for stage in plan.stages],
        "generator": {**asdict(plan.generator), "specs": [spec.name for spec in plan.generator.specs]},
        "criteria": {
            "slo_p95_ms": plan.criteria.slo_p95_ms,
            "max_error_rate": plan.criteria.max_error_rate,
            "min_achieved_fraction": plan.criteria.min_achieved_fraction,
            "thresholds": [threshold.text for threshold in plan.criteria.thresholds],
        },
        "policy": asdict(policy),
    }
    run_id = run_store.create_run(
        store,
        kind=kind,
        target_url=url,
        started_at=datetime.now(timezone.utc).replace(tzinfo=None),
        slo_p95_ms=plan.criteria.slo_p95_ms,
        max_error_rate=plan.criteria.max_error_rate,
        config=config,
    )
    logger.info("run %d started: %s test of %s, %d step(s)", run_id, kind, url, len(plan.stages))
    result = RunResult(run_id, "running", None, None, None, None)
    try:
        asyncio.run(_run_steps(store, plan, result, progress, sender))
    except BaseException:
        result.status = "failed" if result.status == "running" else result.status
        result.stop_reason = result.stop_reason or f"crashed: {sys.exc_info()[1]!r}"
        _close_run(store, result, policy)
        raise
    finally:
        if progress is not None:
            progress.close()
    _close_run(store, result, policy)
    return result


def _install_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[int]:
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a platform without signal support
    return installed


async def _watch_error_rate(plan: RunPlan, live: Callable[[], LiveCounters], abort: asyncio.Event, reason: list[str]) -> None:
    """Abort the step when the live total error rate breaks an error_rate threshold."""
    limits = [t for t in plan.criteria.thresholds if t.metric == "error_rate" and t.scenario is None and t.op in ("<", "<=")]
    if not limits:
        return
    while True:
        await asyncio.sleep(LIVE_CHECK_S)
        counters = live()
        answered = counters.ok + counters.errors
        if answered < LIVE_CHECK_MIN_REQUESTS:
            continue
        rate = counters.errors / answered
        for threshold in limits:
            broken = rate >= threshold.value if threshold.op == "<" else rate > threshold.value
            if broken:
                reason.append(f"threshold {threshold.text!r} failed while running: error_rate reached {rate:.4g}")
                abort.set()
                return


async def _run_steps(
    store: Store,
    plan: RunPlan,
    result: RunResult,
    progress: ProgressReporter | None,
    sender: RequestSender | None,
) -> None:
    interrupt = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = _install_stop_signals(loop, interrupt)
    generator = make_generator(plan.generator, sender)
    stages = plan.stages
    try:
        for index, stage in enumerate(stages):
            stop = asyncio.Event()
            abort_reason: list[str] = []
            relay = asyncio.create_task(_relay(interrupt, stop))
            watcher = asyncio.create_task(_watch_error_rate(plan, generator.live, stop, abort_reason)) if plan.abort_on_threshold else None
            if progress is not None:
                progress.step_started(index, len(stages), stage.label, stage.duration_s, generator.live)
            psutil.cpu_percent(interval=None, percpu=True)
            # A cyclic garbage collection mid-step pauses the event loop for tens
            # of milliseconds and shows up as send lag, so collect between steps.
            gc.collect()
            gc.disable()
            try:
                measurement = await generator.run_stage(stage, seed=index, stop=stop, drain_timeout_s=plan.generator.timeout_s + plan.grace_s)
            finally:
                gc.enable()
                relay.cancel()
                if watcher is not None:
                    watcher.cancel()
            measurement.machine_cpu_busy = _generator_cores_busy()

            if interrupt.is_set():
                result.status, result.exit_reason = "interrupted", "interrupted"
                result.stop_reason = f"interrupted during step {index + 1} of {len(stages)} ({stage.label}); the unfinished step was discarded"
                logger.warning("run %d interrupted; %d finished step(s) kept", result.run_id, len(result.steps))
                return
            verdict = judge_step(index, measurement, plan.criteria)
            if plan.prometheus_url is not None:
                verdict.row.update(await loop.run_in_executor(None, _target_resources, plan, measurement.started_at, stage.duration_s))
            if abort_reason:
                verdict.row["passed"] = False
                verdict.row["fail_reason"] = "; ".join(filter(None, [verdict.row["fail_reason"], *abort_reason]))
            with _signals_deferred():
                run_store.add_step(store, result.run_id, verdict.row, verdict.scenario_rows)
            result.steps.append(verdict.row)
            result.scenario_rows.append(verdict.scenario_rows)
            if progress is not None:
                progress.step_finished(verdict.row)

            row = verdict.row
            if row["generator_saturated"]:
                result.exit_reason = "generator_saturated"
                result.stop_reason = f"generator saturated at step {index + 1} ({stage.label}): {row['fail_reason']}"
                break
            breaches = [*verdict.threshold_breaches, *abort_reason]
            if plan.abort_on_threshold and breaches:
                result.exit_reason = "threshold"
                result.stop_reason = f"aborted at step {index + 1} ({stage.label}): {'; '.join(breaches)}"
                result.breaking_point_rps = row["offered_rps"]
                logger.warning("run %d aborted: %s", result.run_id, "; ".join(breaches))
                break
            if not row["passed"] and plan.stop_on_failed_step:
                result.exit_reason = "breaking_point"
                result.breaking_point_rps = row["offered_rps"]
                result.stop_reason = f"step {index + 1} of {len(stages)} ({stage.label}) broke the limits: {row['fail_reason']}"
                break
        result.status = "finished"
        if result.stop_reason is None:
            result.exit_reason = "completed"
            failed = sum(1 for row in result.steps if not row["passed"])
            result.stop_reason = f"all {len(stages)} step(s) ran; {failed} failed"
            first_failed = next((row for row in result.steps if not row["passed"]), None)
            if first_failed is not None:
                result.breaking_point_rps = first_failed["offered_rps"]
    finally:
        await generator.close()
        for signum in installed:
            loop.remove_signal_handler(signum)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, so a store write is never cut short.

    A signal that arrives meanwhile is delivered when the block ends and then
    stops the run as usual.
    """
    blocked = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    except (AttributeError, OSError):  # a platform without POSIX signal masks
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _target_resources(plan: RunPlan, started_at: datetime, duration_s: float) -> dict[str, float | None]:
    """Return the target's CPU cores and memory during a step, from Prometheus; None values when it has none."""
    from datetime import timedelta

    from loadprobe.prometheus import target_resources

    assert plan.prometheus_url is not None
    start = started_at.astimezone(timezone.utc)
    return target_resources(plan.prometheus_url, start, start + timedelta(seconds=duration_s), plan.prometheus_selector)


def _generator_cores_busy() -> float | None:
    """Return how busy the cores this process may run on were since the last call (0-1)."""
    per_core = psutil.cpu_percent(interval=None, percpu=True)
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = list(range(len(per_core)))
    busy = [per_core[core] for core in allowed if core < len(per_core)]
    return sum(busy) / len(busy) / 100.0 if busy else None


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


def _close_run(store: Store, result: RunResult, policy: SafeLoadPolicy) -> None:
    candidates = [row for row in result.steps if row["passed"]]
    if result.breaking_point_rps is not None:
        candidates = [row for row in candidates if row["offered_rps"] < result.breaking_point_rps]
    highest_passed = max((row["offered_rps"] for row in candidates), default=None)
    result.safe_rps, result.recommended_rps = policy.loads(result.breaking_point_rps, highest_passed)
    if result.breaking_point_rps is None and result.status == "finished" and highest_passed is not None:
        logger.warning(
            "no step broke the limits up to %g rps; the safe load of %.1f rps is a lower bound. "
            "Offer higher rates (--max) to find the breaking point",
            highest_passed,
            result.safe_rps or 0.0,
        )
    with _signals_deferred():
        _store_run_end(store, result)
    logger.info(
        "run %d %s: breaking point %s, safe load %s",
        result.run_id,
        result.status,
        "none" if result.breaking_point_rps is None else f"{result.breaking_point_rps:g} rps",
        "none" if result.safe_rps is None else f"{result.safe_rps:.1f} rps",
    )


def _store_run_end(store: Store, result: RunResult) -> None:
    run_store.finish_run(
        store,
        result.run_id,
        status=result.status,
        finished_at=datetime.now(timezone.utc).replace(tzinfo=None),
        stop_reason=result.stop_reason,
        exit_reason=result.exit_reason,
        breaking_point_rps=result.breaking_point_rps,
        safe_rps=result.safe_rps,
        recommended_rps=result.recommended_rps,
    )
