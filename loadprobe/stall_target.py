"""A target that freezes: every ``period_s`` its whole process stops for ``stall_s``.

It models a stop-the-world pause (garbage collection, a blocking call on the
event loop): requests that arrive during the freeze wait in the kernel's
accept queue and are answered when it ends. A load tool that measures latency
from the intended send time reports those waits; a closed-loop tool that
stops sending while it waits reports only a few slow requests. With a constant
arrival rate, the true latency of every request follows from the schedule,
which makes this target a check of a tool's honesty.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from aiohttp import web

__all__ = ["build_app", "main", "true_latencies_ms"]

logger = logging.getLogger(__name__)


def build_app(period_s: float, stall_s: float) -> web.Application:
    """Create the freezing application; the first freeze starts ``period_s - stall_s`` after start."""

    async def freezer(app: web.Application) -> object:
        async def loop() -> None:
            while True:
                await asyncio.sleep(period_s - stall_s)
                time.sleep(stall_s)  # deliberately blocks the whole event loop

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/", handle)
    app.router.add_get("/health", handle)
    app.cleanup_ctx.append(freezer)
    return app


def true_latencies_ms(rate_rps: float, duration_s: float, period_s: float, stall_s: float, phase_s: float, service_ms: float = 0.0) -> list[float]:
    """Return each request's true latency for uniform arrivals against the freeze schedule.

    A request arriving ``t`` seconds into a cycle whose freeze starts at
    ``period_s - stall_s`` waits until the freeze ends. ``phase_s`` is where in
    its cycle the target was when the first request arrived.
    """
    freeze_start = period_s - stall_s
    latencies = []
    for index in range(int(round(rate_rps * duration_s))):
        position = (phase_s + index / rate_rps) % period_s
        wait_s = period_s - position if position >= freeze_start else 0.0
        latencies.append(wait_s * 1000.0 + service_ms)
    return latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="an HTTP target that freezes periodically")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--period", type=float, default=5.0, help="seconds from one freeze to the next")
    parser.add_argument("--stall", type=float, default=1.0, help="length of each freeze in seconds")
    args = parser.parse_args(argv)
    if not 0 < args.stall < args.period:
        parser.error(f"--stall {args.stall:g} must be positive and shorter than --period {args.period:g}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.info("stall target on http://%s:%d/: freezes %.1f s every %.1f s", args.host, args.port, args.stall, args.period)
    web.run_app(build_app(args.period, args.stall), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
