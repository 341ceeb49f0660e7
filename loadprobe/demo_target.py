"""The demo target: an HTTP service with a real, finite capacity.

A fixed pool of workers serves requests. Each request occupies a worker for a
service time drawn from a gamma distribution with the configured mean and
coefficient of variation. Requests that find every worker busy wait in a queue
of bounded length; a request that finds the queue full is answered 503 at once.
So the capacity is ``workers / mean service time``: below it latency stays near
the service time, near it queueing makes latency bend upward, and above it the
queue fills and errors rise, the way a real service behaves.

With ``cpu_ms`` above 0 the target is CPU-bound instead: each request
busy-waits ``cpu_ms`` on the event loop, so requests are served one at a time
and the capacity is about ``1000 / cpu_ms`` requests/s per process, less
aiohttp's own overhead per request. Requests that arrive meanwhile wait in
the socket backlog, with no queue limit. The busy wait is measured in
wall-clock time, so the capacity stays put when other processes compete for
the core.

It exposes Prometheus metrics at ``/metrics``. Run it with
``capplan target serve`` or ``python -m loadprobe.demo_target``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

__all__ = ["TargetConfig", "build_app", "serve", "main"]

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class TargetConfig:
    """Shape of the demo target's capacity."""

    workers: int = 8
    service_ms: float = 20.0
    service_cv: float = 0.5  # standard deviation / mean of the service time; 0 makes it fixed
    queue_limit: int = 100
    seed: int | None = None
    cpu_ms: float = 0.0  # busy wait per request holding the event loop; 0 uses the worker pool

    @property
    def capacity_rps(self) -> float:
        if self.cpu_ms > 0:
            return 1000.0 / self.cpu_ms
        return self.workers * 1000.0 / self.service_ms


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "demo_requests", "Requests answered, by status code", ["code"], registry=self.registry
        )
        self.latency = Histogram(
            "demo_request_duration_seconds",
            "Time from arrival to response, queueing included",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.busy = Gauge("demo_busy_workers", "Workers serving a request", registry=self.registry)
        self.queued = Gauge("demo_queue_length", "Requests waiting for a worker", registry=self.registry)
        self.workers = Gauge("demo_workers", "Size of the worker pool", registry=self.registry)
        # process_cpu_seconds_total and process_resident_memory_bytes, which a
        # probe run with --prometheus stores per step.
        ProcessCollector(registry=self.registry)


def build_app(config: TargetConfig) -> web.Application:
    """Create the aiohttp application with ``/``, ``/health`` and ``/metrics``."""
    rng = random.Random(config.seed)
    workers = asyncio.Semaphore(config.workers)
    metrics = _Metrics()
    metrics.workers.set(config.workers)
    state = {"waiting": 0}

    def draw_service_s() -> float:
        mean_s = config.service_ms / 1000.0
        if config.service_cv <= 0:
            return mean_s
        shape = 1.0 / (config.service_cv**2)
        return rng.gammavariate(shape, mean_s / shape)

    def busy_wait(duration_s: float) -> None:
        deadline = time.perf_counter() + duration_s
        while time.perf_counter() < deadline:
            pass

    async def handle(request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        if config.cpu_ms > 0:
            # Deliberately blocks the event loop: no other request runs meanwhile.
            busy_wait(config.cpu_ms / 1000.0)
            metrics.requests.labels(code="200").inc()
            metrics.latency.observe(time.perf_counter() - arrived)
            return web.json_response({"ok": True})
        if state["waiting"] >= config.queue_limit:
            metrics.requests.labels(code="503").inc()
            return web.json_response({"error": "queue full"}, status=503)
        state["waiting"] += 1
        metrics.queued.inc()
        try:
            await workers.acquire()
        finally:
            state["waiting"] -= 1
            metrics.queued.dec()
        metrics.busy.inc()
        try:
            await asyncio.sleep(draw_service_s())
        finally:
            workers.release()
            metrics.busy.dec()
        metrics.requests.labels(code="200").inc()
        metrics.latency.observe(time.perf_counter() - arrived)
        return web.json_response({"ok": True})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "capacity_rps": config.capacity_rps})

    async def metrics_page(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/", handle)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_page)
    return app


def serve(config: TargetConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until interrupted; logs the start and the stop."""
    if config.cpu_ms > 0:
        logger.info(
            "demo target on http://%s:%d/ : CPU-bound, %.1f ms busy wait per request, capacity about %.0f rps",
            host,
            port,
            config.cpu_ms,
            config.capacity_rps,
        )
    else:
        logger.info(
            "demo target on http://%s:%d/ : %d workers, %.1f ms mean service, capacity %.0f rps",
            host,
            port,
            config.workers,
            config.service_ms,
            config.capacity_rps,
        )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(build_app(config), host=host, port=port, print=None, access_log=None, handle_signals=True)
    logger.info("demo target on port %d stopped", port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument("--workers", type=int, default=TargetConfig.workers, help="size of the worker pool")
    parser.add_argument("--service-ms", type=float, default=TargetConfig.service_ms, help="mean service time in ms")
    parser.add_argument(
        "--service-cv", type=float, default=TargetConfig.service_cv, help="coefficient of variation of the service time; 0 is fixed"
    )
    parser.add_argument("--queue-limit", type=int, default=TargetConfig.queue_limit, help="requests allowed to wait for a worker")
    parser.add_argument("--seed", type=int, default=None, help="seed of the service-time draws")
    parser.add_argument(
        "--cpu-ms",
        type=float,
        default=TargetConfig.cpu_ms,
        help="busy wait per request in ms, holding the event loop (capacity about 1000 / cpu-ms rps); 0 uses the worker pool",
    )


def config_from_args(args: argparse.Namespace) -> TargetConfig:
    from capplan.errors import ConfigError

    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: need at least 1 worker")
    if not args.service_ms > 0:
        raise ConfigError(f"--service-ms {args.service_ms:g}: the mean service time must be positive")
    if args.service_cv < 0:
        raise ConfigError(f"--service-cv {args.service_cv:g}: must be 0 or more")
    if args.queue_limit < 0:
        raise ConfigError(f"--queue-limit {args.queue_limit}: must be 0 or more")
    if not args.cpu_ms >= 0:
        raise ConfigError(f"--cpu-ms {args.cpu_ms:g}: must be 0 (worker pool) or a busy wait in ms above 0")
    return TargetConfig(
        workers=args.workers,
        service_ms=args.service_ms,
        service_cv=args.service_cv,
        queue_limit=args.queue_limit,
        seed=args.seed,
        cpu_ms=args.cpu_ms,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="capplan's demo HTTP target")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(config_from_args(args), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
