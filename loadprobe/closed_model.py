"""One step of a closed workload: users that loop with think time.

Each user sends a request, waits for the response, thinks, and repeats, so the
offered rate falls when the target slows down. That mirrors user sessions but
hides queueing from the latency, which is why capacity tests use the open
model. The number of users ramps linearly from ``users_start`` to
``users_end`` over the step.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timezone

from loadprobe.http_engine import RequestSender
from loadprobe.measurement import LiveCounters, StepMeasurement
from loadprobe.open_model import _drain
from loadprobe.scenario_mix import ScenarioMix
from loadprobe.step_recorder import StepRecorder

__all__ = ["run_closed_step"]

RAMP_TICK_S = 0.05  # how often the number of running users is adjusted


async def run_closed_step(
    sender: RequestSender,
    mix: ScenarioMix,
    users_start: float,
    users_end: float,
    duration_s: float,
    *,
    think_time_s: tuple[float, float] = (0.0, 0.0),
    drain_timeout_s: float = 10.0,
    stop: asyncio.Event | None = None,
    live: LiveCounters | None = None,
    seed: int | None = None,
) -> StepMeasurement:
    """Run users for ``duration_s``; think time is drawn uniformly from ``think_time_s``.

    A user's intended send time is the end of its think time, so a generator
    that falls behind still shows up as send lag.
    """
    live = live or LiveCounters()
    rng = random.Random(seed)
    measurement = StepMeasurement(
        model="closed",
        offered_rps=0.0,
        duration_s=duration_s,
        started_at=datetime.now(timezone.utc),
        users=max(users_start, users_end),
    )
    recorder = StepRecorder(measurement)
    in_flight: dict[asyncio.Task[None], tuple[str, float]] = {}
    start = time.perf_counter()
    end = start + duration_s
    think_low, think_high = think_time_s

    async def user(user_id: int, retire: asyncio.Event) -> None:
        intended = time.perf_counter()
        while not retire.is_set() and time.perf_counter() < end:
            spec = mix.pick(rng)
            measurement.sent += 1
            live.sent += 1
            live.in_flight += 1
            measurement.in_flight_max = max(measurement.in_flight_max, live.in_flight)
            task = asyncio.current_task()
            assert task is not None
            in_flight[task] = (spec.name, intended)
            try:
                outcome = await sender.send(spec)
            finally:
                live.in_flight -= 1
                in_flight.pop(task, None)
            recorder.record(spec.name, intended, outcome)
            if outcome.error_kind is None:
                live.ok += 1
            else:
                live.errors += 1
            think = rng.uniform(think_low, think_high) if think_high > 0 else 0.0
            intended = time.perf_counter() + think
            if think > 0:
                await asyncio.sleep(think)
            else:
                await asyncio.sleep(0)

    cpu_start = time.process_time()
    users: list[tuple[asyncio.Task[None], asyncio.Event]] = []
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if stop is not None and stop.is_set():
            measurement.interrupted = True
            break
        elapsed = now - start
        wanted = round(users_start + (users_end - users_start) * elapsed / duration_s)
        running = [entry for entry in users if not entry[1].is_set() and not entry[0].done()]
        for _ in range(max(wanted - len(running), 0)):
            retire = asyncio.Event()
            users.append((asyncio.create_task(user(len(users), retire)), retire))
        for task, retire in running[wanted:]:
            retire.set()  # the user stops after its current request
        await asyncio.sleep(min(RAMP_TICK_S, max(end - time.perf_counter(), 0.0)))

    for _, retire in users:
        retire.set()
    # Users waiting for a response are in in_flight; the rest stop by themselves.
    await _drain(dict(in_flight), recorder, drain_timeout_s)
    for task, _ in users:
        if not task.done():
            task.cancel()
    await asyncio.gather(*(task for task, _ in users), return_exceptions=True)
    now = time.perf_counter()
    measurement.generator_cpu = (time.process_time() - cpu_start) / max(now - start, 1e-9)
    measurement.offered_rps = measurement.sent / duration_s
    recorder.finish(start)
    return measurement
