"""Starting and stopping the demo target as a child process on 127.0.0.1.

The target runs in its own process so the load generator and the target do not
share an event loop or a CPU time slice.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from capplan.errors import TargetUnreachableError
from loadprobe.demo_target import TargetConfig

__all__ = ["DemoTargetProcess", "start_demo_target", "free_port"]

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoTargetProcess:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    config: TargetConfig

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning("demo target pid %d did not stop in %.0f s; killing it", self.process.pid, STOP_TIMEOUT_S)
                self.process.kill()
                self.process.wait()
        logger.info("demo target on port %d stopped", self.port)

    def __enter__(self) -> "DemoTargetProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_demo_target(config: TargetConfig | None = None, port: int | None = None, host: str = "127.0.0.1") -> DemoTargetProcess:
    """Start the demo target and wait until ``/health`` responds."""
    config = config or TargetConfig()
    port = port or free_port(host)
    command = [
        sys.executable,
        "-m",
        "loadprobe.demo_target",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(config.workers),
        "--service-ms",
        str(config.service_ms),
        "--service-cv",
        str(config.service_cv),
        "--queue-limit",
        str(config.queue_limit),
        "--cpu-ms",
        str(config.cpu_ms),
    ]
    if config.seed is not None:
        command += ["--seed", str(config.seed)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = DemoTargetProcess(process, host, port, config)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TargetUnreachableError(f"demo target exited with code {process.returncode} before serving on port {port}")
        try:
            if httpx.get(f"http://{host}:{port}/health", timeout=1.0).status_code == 200:
                logger.info("demo target started on %s (capacity %.0f rps)", target.url, config.capacity_rps)
                return target
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    target.stop()
    raise TargetUnreachableError(f"demo target did not respond on port {port} within {START_TIMEOUT_S:.0f} s; check that the port is free")
