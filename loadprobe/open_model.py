"""One step of an open workload: a fixed arrival rate for a fixed time.

Arrivals follow a schedule that does not wait for responses, so a slow target
cannot slow the offered load down. Latency is measured from each request's
intended send time, so time a request spent waiting for the generator or for a
connection counts against the target (no coordinated omission); service time
from the actual send is kept beside it. Arrivals that find the in-flight cap
full are counted as dropped and never sent late.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from loadprobe.histogram import LatencyHistogram
from loadprobe.http_engine import Outcome, RequestSender

__all__ = ["LiveCounters", "StepMeasurement", "arrival_offsets", "run_open_step", "ARRIVAL_KINDS"]

ARRIVAL_KINDS = ("uniform", "poisson")
START_DELAY_S = 0.02  # lead time before the first arrival, so it is not already late
YIELD_EVERY = 64  # arrivals fired back to back before the scheduler yields to the loop


@dataclass
class LiveCounters:
    """Counters the progress display reads while a step runs."""

    sent: int = 0
    ok: int = 0
    errors: int = 0
    dropped: int = 0
    in_flight: int = 0


@dataclass
class StepMeasurement:
    """Everything measured during one step, before it is judged."""

    offered_rps: float
    duration_s: float
    started_at: datetime
    scheduled: int = 0
    sent: int = 0
    dropped: int = 0
    ok: int = 0
    ok_in_window: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    service: LatencyHistogram = field(default_factory=LatencyHistogram)
    send_lags_s: list[float] = field(default_factory=list)
    generator_cpu: float = 0.0
    interrupted: bool = False

    @property
    def errors(self) -> int:
        return sum(self.errors_by_kind.values())

    def send_lag_percentile_ms(self, percentile: float) -> float | None:
        if not self.send_lags_s:
            return None
        return float(np.percentile(self.send_lags_s, percentile)) * 1000.0


def arrival_offsets(rate_rps: float, duration_s: float, kind: str, rng: random.Random) -> Iterator[float]:
    """Yield arrival times in seconds from the step start, up to ``duration_s``.

    ``uniform`` spaces arrivals evenly; ``poisson`` draws exponential gaps with
    the same mean, which is how independent users arrive.
    """
    if kind == "uniform":
        count = int(round(rate_rps * duration_s))
        for index in range(count):
            yield index / rate_rps
        return
    offset = rng.expovariate(rate_rps)
    while offset < duration_s:
        yield offset
        offset += rng.expovariate(rate_rps)


async def run_open_step(
    sender: RequestSender,
    rate_rps: float,
    duration_s: float,
    *,
    arrivals: str = "uniform",
    max_in_flight: int = 1000,
    drain_timeout_s: float = 10.0,
    stop: asyncio.Event | None = None,
    live: LiveCounters | None = None,
    seed: int | None = None,
) -> StepMeasurement:
    """Offer ``rate_rps`` for ``duration_s`` and measure every request.

    After the last arrival the step waits up to ``drain_timeout_s`` for
    requests still in flight; those still unanswered then count as timeouts.
    Setting ``stop`` ends the arrivals early and marks the step interrupted.
    """
    live = live or LiveCounters()
    rng = random.Random(seed)
    measurement = StepMeasurement(offered_rps=rate_rps, duration_s=duration_s, started_at=datetime.now(timezone.utc))
    outcomes: list[tuple[float, Outcome]] = []
    tasks: dict[asyncio.Task[None], float] = {}

    async def one_request(intended: float) -> None:
        live.in_flight += 1
        try:
            outcome = await sender.send()
        finally:
            live.in_flight -= 1
        outcomes.append((intended, outcome))
        if outcome.error_kind is None:
            live.ok += 1
        else:
            live.errors += 1

    cpu_start = time.process_time()
    start = time.perf_counter() + START_DELAY_S
    for fired, offset in enumerate(arrival_offsets(rate_rps, duration_s, arrivals, rng)):
        if stop is not None and stop.is_set():
            measurement.interrupted = True
            break
        intended = start + offset
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif fired % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        measurement.scheduled += 1
        if live.in_flight >= max_in_flight:
            measurement.dropped += 1
            live.dropped += 1
            continue
        task = asyncio.create_task(one_request(intended))
        tasks[task] = intended
        task.add_done_callback(lambda done: tasks.pop(done, None))
        measurement.sent += 1
        live.sent += 1

    abandoned: list[float] = []
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=drain_timeout_s)
        abandoned = [tasks[task] for task in pending if task in tasks]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    now = time.perf_counter()
    measurement.generator_cpu = (time.process_time() - cpu_start) / max(now - start, 1e-9)

    _summarise(measurement, outcomes, start, abandoned_intended=abandoned, now=now)
    return measurement


def _summarise(
    measurement: StepMeasurement,
    outcomes: list[tuple[float, Outcome]],
    start: float,
    abandoned_intended: list[float],
    now: float,
) -> None:
    latencies_s: list[float] = []
    for intended, outcome in outcomes:
        measurement.send_lags_s.append(max(outcome.sent_at - intended, 0.0))
        if outcome.error_kind in ("refused", "reset"):
            # A refused or reset connection has no response time to speak of.
            kind = outcome.error_kind
            measurement.errors_by_kind[kind] = measurement.errors_by_kind.get(kind, 0) + 1
            continue
        latency_s = outcome.done_at - intended
        latencies_s.append(latency_s)
        measurement.latency.record_s(latency_s)
        measurement.service.record_s(outcome.done_at - outcome.sent_at)
        if outcome.error_kind is None:
            measurement.ok += 1
        else:
            kind = outcome.error_kind
            measurement.errors_by_kind[kind] = measurement.errors_by_kind.get(kind, 0) + 1
    if abandoned_intended:
        # Requests still unanswered after the drain wait are timeouts whose
        # latency is at least the time they have waited so far.
        kind_count = measurement.errors_by_kind.get("timeout", 0)
        measurement.errors_by_kind["timeout"] = kind_count + len(abandoned_intended)
        for intended in abandoned_intended:
            measurement.latency.record_s(now - intended)

    # Throughput is counted in a window as long as the step, shifted by the
    # median latency: a target that keeps up answers every arrival inside it,
    # and a saturated one only as many as its capacity allows.
    shift_s = float(np.median(latencies_s)) if latencies_s else 0.0
    window_start = start + shift_s
    window_end = window_start + measurement.duration_s
    measurement.ok_in_window = sum(
        1 for _, outcome in outcomes if outcome.error_kind is None and window_start <= outcome.done_at <= window_end
    )
