"""Baseline and stepped load tests: the step plan, the run loop and its storage.

A run row is created before the first request, each step is stored as soon as
it finishes, and the run is closed with its breaking point and safe load. The
run stops at the first failed step, at a saturated generator, or on Ctrl-C or
SIGTERM; in every case the finished steps stay in the store.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx

from capplan.errors import ConfigError, TargetUnreachableError
from capplan.policy import DEFAULT_POLICY, SafeLoadPolicy
from capplan.store import Store
from capplan.store import runs as run_store
from loadprobe.http_engine import AiohttpSender, RequestSender
from loadprobe.open_model import ARRIVAL_KINDS, LiveCounters, run_open_step
from loadprobe.step_verdict import StepCriteria, judge_step

__all__ = ["StepPlan", "RunResult", "ProgressReporter", "check_reachable", "run_load_test", "validate_url"]

logger = logging.getLogger(__name__)

# Hard limits: a plan beyond them is rejected before anything is sent.
MAX_RATE_RPS = 50_000.0
MAX_STEPS = 200
MAX_STEP_DURATION_S = 3600.0
MAX_IN_FLIGHT = 20_000
REACHABILITY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class StepPlan:
    """The offered rates of a run: ``start_rps``, then ``+step_rps`` up to ``max_rps``."""

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
        if self.max_rps > MAX_RATE_RPS:
            raise ConfigError(f"--max {self.max_rps:g} rps is above the limit of {MAX_RATE_RPS:g} rps for one generator")
        if self.max_rps > self.start_rps and not self.step_rps > 0:
            raise ConfigError(f"--step: {self.step_rps:g} rps must be positive to climb from {self.start_rps:g} to {self.max_rps:g} rps")
        if not 1.0 <= self.step_duration_s <= MAX_STEP_DURATION_S:
            raise ConfigError(
                f"--step-duration: {self.step_duration_s:g} s is outside 1 s..{MAX_STEP_DURATION_S:g} s; give for example 30s"
            )
        if self.arrivals not in ARRIVAL_KINDS:
            raise ConfigError(f"--arrivals: {self.arrivals!r} is not one of {', '.join(ARRIVAL_KINDS)}")
        if not 1 <= self.max_in_flight <= MAX_IN_FLIGHT:
            raise ConfigError(f"--max-in-flight: {self.max_in_flight} is outside 1..{MAX_IN_FLIGHT}")
        if not self.timeout_s > 0:
            raise ConfigError(f"--timeout: {self.timeout_s:g} s must be positive")
        if len(self.rates()) > MAX_STEPS:
            raise ConfigError(
                f"the plan has {len(self.rates())} steps, more than {MAX_STEPS}; raise --step or lower --max"
            )

    def rates(self) -> list[float]:
        if self.max_rps == self.start_rps or self.step_rps <= 0:
            return [self.start_rps]
        count = int((self.max_rps - self.start_rps) / self.step_rps + 1e-9) + 1
        return [self.start_rps + index * self.step_rps for index in range(count)]


@dataclass
class RunResult:
    run_id: int
    status: str
    stop_reason: str | None
    breaking_point_rps: float | None
    safe_rps: float | None
    recommended_rps: float | None
    steps: list[dict[str, Any]] = field(default_factory=list)


class ProgressReporter(Protocol):
    def step_started(self, index: int, total: int, rate_rps: float, duration_s: float, live: LiveCounters) -> None: ...

    def step_finished(self, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


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
    plan: StepPlan,
    criteria: StepCriteria,
    policy: SafeLoadPolicy = DEFAULT_POLICY,
    progress: ProgressReporter | None = None,
    sender: RequestSender | None = None,
    check_target: bool = True,
) -> RunResult:
    """Run the plan against ``url``, store every step, and return the outcome.

    ``sender`` replaces the aiohttp engine (a test seam for faults a real
    server cannot produce on demand).
    """
    if check_target:
        check_reachable(url)
    config = {"plan": asdict(plan), "criteria": asdict(criteria), "policy": asdict(policy)}
    run_id = run_store.create_run(
        store,
        kind=kind,
        target_url=url,
        started_at=datetime.now(timezone.utc).replace(tzinfo=None),
        slo_p95_ms=criteria.slo_p95_ms,
        max_error_rate=criteria.max_error_rate,
        config=config,
    )
    logger.info("run %d started: %s test of %s, %d step(s)", run_id, kind, url, len(plan.rates()))
    result = RunResult(run_id, "running", None, None, None, None)
    try:
        asyncio.run(_run_steps(store, url, plan, criteria, result, progress, sender))
    except BaseException:
        result.status = "failed" if result.status == "running" else result.status
        result.stop_reason = result.stop_reason or f"crashed: {sys.exc_info()[1]!r}"
        _close_run(store, result, plan, policy)
        raise
    finally:
        if progress is not None:
            progress.close()
    _close_run(store, result, plan, policy)
    return result


async def _run_steps(
    store: Store,
    url: str,
    plan: StepPlan,
    criteria: StepCriteria,
    result: RunResult,
    progress: ProgressReporter | None,
    sender: RequestSender | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a platform without signal support
    own_sender = sender is None
    engine = sender or AiohttpSender(
        url, timeout_s=plan.timeout_s, max_connections=plan.max_in_flight
    )
    rates = plan.rates()
    try:
        for index, rate in enumerate(rates):
            live = LiveCounters()
            if progress is not None:
                progress.step_started(index, len(rates), rate, plan.step_duration_s, live)
            measurement = await run_open_step(
                engine,
                rate,
                plan.step_duration_s,
                arrivals=plan.arrivals,
                max_in_flight=plan.max_in_flight,
                drain_timeout_s=plan.timeout_s + 1.0,
                stop=stop,
                live=live,
                seed=index,
            )
            if measurement.interrupted:
                result.status = "interrupted"
                result.stop_reason = (
                    f"interrupted during step {index + 1} of {len(rates)} at {rate:g} rps; the unfinished step was discarded"
                )
                logger.warning("run %d interrupted; %d finished step(s) kept", result.run_id, len(result.steps))
                return
            row = judge_step(index, measurement, criteria)
            run_store.add_step(store, result.run_id, row)
            result.steps.append(row)
            if progress is not None:
                progress.step_finished(row)
            if row["generator_saturated"]:
                result.stop_reason = f"generator saturated at {rate:g} rps: {row['fail_reason']}"
                break
            if not row["passed"]:
                result.breaking_point_rps = rate
                result.stop_reason = f"step {index + 1} of {len(rates)} at {rate:g} rps broke the limits: {row['fail_reason']}"
                break
        result.status = "finished"
        if result.stop_reason is None:
            result.stop_reason = f"all {len(rates)} step(s) passed up to {rates[-1]:g} rps"
    finally:
        if own_sender:
            await engine.close()
        for signum in installed:
            loop.remove_signal_handler(signum)


def _close_run(store: Store, result: RunResult, plan: StepPlan, policy: SafeLoadPolicy) -> None:
    passed = [row["offered_rps"] for row in result.steps if row["passed"]]
    highest_passed = max(passed) if passed else None
    result.safe_rps, result.recommended_rps = policy.loads(result.breaking_point_rps, highest_passed)
    if result.breaking_point_rps is None and result.status == "finished" and highest_passed is not None:
        logger.warning(
            "no step broke the limits up to %g rps; the safe load of %.1f rps is a lower bound. "
            "Offer higher rates (--max) to find the breaking point",
            highest_passed,
            result.safe_rps or 0.0,
        )
    run_store.finish_run(
        store,
        result.run_id,
        status=result.status,
        finished_at=datetime.now(timezone.utc).replace(tzinfo=None),
        stop_reason=result.stop_reason,
        breaking_point_rps=result.breaking_point_rps,
        safe_rps=result.safe_rps,
        recommended_rps=result.recommended_rps,
    )
    logger.info(
        "run %d %s: breaking point %s, safe load %s",
        result.run_id,
        result.status,
        "none" if result.breaking_point_rps is None else f"{result.breaking_point_rps:g} rps",
        "none" if result.safe_rps is None else f"{result.safe_rps:.1f} rps",
    )
