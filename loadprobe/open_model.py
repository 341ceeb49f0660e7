"""One step of an open workload: arrivals on a schedule, for a fixed time.

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
from datetime import datetime, timezone

from loadprobe.arrivals import arrival_offsets
from loadprobe.http_engine import RequestSender, RequestSpec
from loadprobe.measurement import LiveCounters, StepMeasurement
from loadprobe.scenario_mix import ScenarioMix
from loadprobe.step_recorder import StepRecorder

__all__ = ["run_open_step"]

START_DELAY_S = 0.02  # lead time before the first arrival, so it is not already late
YIELD_EVERY = 64  # arrivals fired back to back before the scheduler yields to the loop


async def run_open_step(
    sender: RequestSender,
    mix: ScenarioMix,
    rate_start_rps: float,
    rate_end_rps: float,
    duration_s: float,
    *,
    arrivals: str = "uniform",
    max_in_flight: int = 1000,
    drain_timeout_s: float = 10.0,
    stop: asyncio.Event | None = None,
    live: LiveCounters | None = None,
    seed: int | None = None,
    phase: float = 0.0,
) -> StepMeasurement:
    """Offer a rate ramping from ``rate_start_rps`` to ``rate_end_rps`` for ``duration_s``.

    After the last arrival the step waits up to ``drain_timeout_s`` for
    requests still in flight; those still unanswered then count as timeouts.
    Setting ``stop`` ends the arrivals early and marks the step interrupted.
    """
    live = live or LiveCounters()
    rng = random.Random(seed)
    measurement = StepMeasurement(
        model="open",
        offered_rps=(rate_start_rps + rate_end_rps) / 2.0,
        duration_s=duration_s,
        started_at=datetime.now(timezone.utc),
    )
    recorder = StepRecorder(measurement)
    in_flight: dict[asyncio.Task[None], tuple[str, float]] = {}

    async def one_request(spec: RequestSpec, intended: float) -> None:
        live.in_flight += 1
        measurement.in_flight_max = max(measurement.in_flight_max, live.in_flight)
        try:
            outcome = await sender.send(spec)
        finally:
            live.in_flight -= 1
        recorder.record(spec.name, intended, outcome)
        if outcome.error_kind is None:
            live.ok += 1
        else:
            live.errors += 1

    cpu_start = time.process_time()
    start = time.perf_counter() + START_DELAY_S
    schedule = arrival_offsets(rate_start_rps, rate_end_rps, duration_s, arrivals, rng, phase)
    for fired, offset in enumerate(schedule):
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
        spec = mix.pick(rng)
        task = asyncio.create_task(one_request(spec, intended))
        in_flight[task] = (spec.name, intended)
        task.add_done_callback(lambda done: in_flight.pop(done, None))
        measurement.sent += 1
        live.sent += 1

    await _drain(in_flight, recorder, drain_timeout_s)
    now = time.perf_counter()
    measurement.generator_cpu = (time.process_time() - cpu_start) / max(now - start, 1e-9)
    recorder.finish(start)
    return measurement


async def _drain(
    in_flight: dict[asyncio.Task[None], tuple[str, float]], recorder: StepRecorder, timeout_s: float
) -> None:
    """Wait for requests in flight; count those still unanswered as timeouts."""
    if not in_flight:
        return
    _, pending = await asyncio.wait(set(in_flight), timeout=timeout_s)
    now = time.perf_counter()
    for task in pending:
        entry = in_flight.get(task)
        if entry is not None:
            recorder.record_abandoned(entry[0], entry[1], now)
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
