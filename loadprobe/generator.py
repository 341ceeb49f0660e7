"""Load generators: one in-process event loop, or a pool of worker processes.

Python runs one event loop per core at best, so rates beyond what one process
can schedule are spread over worker processes. Each worker offers an equal
share of the stage: its share of the rate, with uniform arrivals interleaved by
phase, or its share of the users. It returns a mergeable measurement, and the
parent merges them, so percentiles cover every request of the step.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import multiprocessing
import multiprocessing.connection
import signal
from dataclasses import dataclass, replace
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from loadprobe.closed_model import run_closed_step
from loadprobe.http_engine import RequestSender, RequestSpec
from loadprobe.measurement import LiveCounters, StepMeasurement
from loadprobe.open_model import run_open_step
from loadprobe.scenario_mix import ScenarioMix

__all__ = ["Stage", "GeneratorConfig", "InProcessGenerator", "ProcessPoolGenerator", "make_generator", "make_sender"]

logger = logging.getLogger(__name__)

LIVE_FIELDS = ("sent", "ok", "errors", "dropped", "in_flight")
STOP_POLL_S = 0.05  # how often a worker publishes its counters and checks the stop event
WORKER_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Stage:
    """One step of a run: ``start`` and ``end`` are rates (open) or users (closed)."""

    model: str
    start: float
    end: float
    duration_s: float

    @property
    def label(self) -> str:
        unit = "rps" if self.model == "open" else "users"
        if self.start == self.end:
            return f"{self.start:g} {unit}"
        return f"{self.start:g}->{self.end:g} {unit}"


@dataclass(frozen=True)
class GeneratorConfig:
    """Generator settings shared by every stage of a run."""

    base_url: str
    specs: tuple[RequestSpec, ...] = (RequestSpec(),)
    engine: str = "aiohttp"
    timeout_s: float = 5.0
    max_in_flight: int = 1000
    arrivals: str = "uniform"
    think_time_s: tuple[float, float] = (0.0, 0.0)
    workers: int = 1


def make_sender(config: GeneratorConfig, max_connections: int) -> RequestSender:
    """Create the request engine named by the configuration ("auto", "fast" or "aiohttp")."""
    from loadprobe import http_engine

    try:
        return http_engine.make_sender(config.engine, config.base_url, config.timeout_s, max_connections)
    except ValueError as exc:
        from capplan.errors import ConfigError

        raise ConfigError(f"--engine {config.engine!r} is not available here; use auto, fast or aiohttp") from exc


async def run_stage(
    sender: RequestSender,
    mix: ScenarioMix,
    config: GeneratorConfig,
    stage: Stage,
    *,
    stop: asyncio.Event,
    live: LiveCounters,
    seed: int,
    share: float = 1.0,
    phase: float = 0.0,
    max_in_flight: int | None = None,
    drain_timeout_s: float | None = None,
) -> StepMeasurement:
    """Run this process's ``share`` of a stage on the current event loop."""
    drain = drain_timeout_s if drain_timeout_s is not None else config.timeout_s + 1.0
    if stage.model == "open":
        return await run_open_step(
            sender,
            mix,
            stage.start * share,
            stage.end * share,
            stage.duration_s,
            arrivals=config.arrivals,
            max_in_flight=max_in_flight or config.max_in_flight,
            drain_timeout_s=drain,
            stop=stop,
            live=live,
            seed=seed,
            phase=phase,
        )
    return await run_closed_step(
        sender,
        mix,
        stage.start * share,
        stage.end * share,
        stage.duration_s,
        think_time_s=config.think_time_s,
        drain_timeout_s=drain,
        stop=stop,
        live=live,
        seed=seed,
    )


class InProcessGenerator:
    """Generate from the caller's event loop; ``sender`` may replace the engine (a test seam)."""

    def __init__(self, config: GeneratorConfig, sender: RequestSender | None = None) -> None:
        self.config = config
        self._own_sender = sender is None
        self._sender = sender or make_sender(config, config.max_in_flight)
        self._mix = ScenarioMix(config.specs)
        self._live = LiveCounters()

    @property
    def processes(self) -> int:
        return 1

    def live(self) -> LiveCounters:
        return self._live

    async def run_stage(self, stage: Stage, seed: int, stop: asyncio.Event, drain_timeout_s: float | None = None) -> StepMeasurement:
        self._live = LiveCounters()
        return await run_stage(
            self._sender, self._mix, self.config, stage, stop=stop, live=self._live, seed=seed, drain_timeout_s=drain_timeout_s
        )

    async def close(self) -> None:
        if self._own_sender:
            await self._sender.close()


def _worker_main(
    connection: multiprocessing.connection.Connection,
    config: GeneratorConfig,
    index: int,
    live_array: SynchronizedArray,  # type: ignore[type-arg]
    stop_event: Any,
) -> None:
    """Serve stage commands in a worker process until it receives the close command."""
    # The parent handles Ctrl-C and sets stop_event to stop the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_worker_loop(connection, config, index, live_array, stop_event))


async def _worker_loop(
    connection: multiprocessing.connection.Connection,
    config: GeneratorConfig,
    index: int,
    live_array: SynchronizedArray,  # type: ignore[type-arg]
    stop_event: Any,
) -> None:
    loop = asyncio.get_running_loop()
    per_worker_cap = math.ceil(config.max_in_flight / config.workers)
    sender = make_sender(config, per_worker_cap)
    mix = ScenarioMix(config.specs)
    connection.send(("ready", index))
    try:
        while True:
            command, payload = await loop.run_in_executor(None, connection.recv)
            if command == "close":
                return
            stage, seed, drain_timeout_s = payload
            live = LiveCounters()
            stop = asyncio.Event()

            async def publish_and_watch() -> None:
                base = index * len(LIVE_FIELDS)
                while True:
                    for offset, name in enumerate(LIVE_FIELDS):
                        live_array[base + offset] = getattr(live, name)
                    if stop_event.is_set():
                        stop.set()
                    await asyncio.sleep(STOP_POLL_S)

            watcher = asyncio.create_task(publish_and_watch())
            gc.collect()  # collect between steps, not during one: a pause shows as send lag
            gc.disable()
            try:
                measurement = await run_stage(
                    sender,
                    mix,
                    config,
                    stage,
                    stop=stop,
                    live=live,
                    seed=seed * 1000 + index,
                    share=1.0 / config.workers,
                    phase=index / config.workers,
                    max_in_flight=per_worker_cap,
                    drain_timeout_s=drain_timeout_s,
                )
            finally:
                gc.enable()
                watcher.cancel()
            connection.send(("result", measurement.to_dict()))
    finally:
        await sender.close()


class ProcessPoolGenerator:
    """Spread each stage over ``config.workers`` processes and merge their measurements."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        context = multiprocessing.get_context("spawn")
        self._live_array = context.Array("q", config.workers * len(LIVE_FIELDS), lock=False)
        self._stop_event = context.Event()
        self._connections: list[multiprocessing.connection.Connection] = []
        self._processes: list[Any] = []
        for index in range(config.workers):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(child_end, config, index, self._live_array, self._stop_event),
                name=f"capplan-generator-{index}",
                daemon=True,
            )
            process.start()
            self._connections.append(parent_end)
            self._processes.append(process)
        for connection in self._connections:
            if not connection.poll(WORKER_START_TIMEOUT_S):
                self._terminate()
                raise RuntimeError(f"a generator worker did not start within {WORKER_START_TIMEOUT_S:.0f} s")
            connection.recv()
        logger.info("started %d generator worker processes", config.workers)

    @property
    def processes(self) -> int:
        return self.config.workers

    def live(self) -> LiveCounters:
        totals = [0] * len(LIVE_FIELDS)
        for index in range(len(self._live_array)):
            totals[index % len(LIVE_FIELDS)] += self._live_array[index]
        return LiveCounters(**dict(zip(LIVE_FIELDS, totals)))

    async def run_stage(self, stage: Stage, seed: int, stop: asyncio.Event, drain_timeout_s: float | None = None) -> StepMeasurement:
        loop = asyncio.get_running_loop()
        self._stop_event.clear()
        for index in range(len(self._live_array)):
            self._live_array[index] = 0
        for connection in self._connections:
            connection.send(("stage", (stage, seed, drain_timeout_s)))

        async def forward_stop() -> None:
            await stop.wait()
            self._stop_event.set()

        forwarder = asyncio.create_task(forward_stop())
        try:
            results = await asyncio.gather(*(loop.run_in_executor(None, connection.recv) for connection in self._connections))
        finally:
            forwarder.cancel()
        merged: StepMeasurement | None = None
        for _, payload in results:
            part = StepMeasurement.from_dict(payload)
            if merged is None:
                merged = replace(part, generator_processes=1)
                merged.offered_rps = part.offered_rps
            else:
                merged.merge(part)
        assert merged is not None
        if stage.model == "open":
            merged.offered_rps = (stage.start + stage.end) / 2.0
        else:
            merged.offered_rps = merged.sent / stage.duration_s
        return merged

    async def close(self) -> None:
        for connection in self._connections:
            try:
                connection.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for process in self._processes:
            process.join(timeout=5.0)
        self._terminate()
        logger.info("stopped %d generator worker processes", len(self._processes))

    def _terminate(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=2.0)


def make_generator(config: GeneratorConfig, sender: RequestSender | None = None) -> InProcessGenerator | ProcessPoolGenerator:
    """Return an in-process generator for one worker, else a process pool."""
    if config.workers <= 1 or sender is not None:
        return InProcessGenerator(replace(config, workers=1), sender)
    return ProcessPoolGenerator(config)
