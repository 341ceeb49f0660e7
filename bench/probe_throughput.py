"""Requests per generator core: capplan's request engines beside Locust and wrk.

One nginx (1 worker process) on 127.0.0.1 serves a static page. Against it,
each generator runs for --duration seconds (10 by default) with --connections
connections (64 by default), one generator after another:

- capplan's fast engine (FastHttpSender) in a closed loop of one task per connection,
- AiohttpSender the same way,
- Locust's FastHttpUser, one process, headless, one user per connection, no wait time,
- wrk with one thread.

Each generator runs in its own process. The table gives requests/s, the
generator's own CPU seconds (user + sys of that process only, over the load
window) and requests per CPU-second, which is the rate per generator core.
Then the open-model step loop (loadprobe.open_model.run_open_step) offers
increasing fixed rates through the fast engine, and the highest rate whose
send lag p99 stays under 20 ms with nothing dropped or failed is the
open-model ceiling of one generator process.

    .venv/bin/python bench/probe_throughput.py [--duration 10] [--connections 64] [--quiet-below 0.3]

Needs Debian's nginx and wrk, and Locust in the venv (a benchmark extra, not
a capplan dependency): .venv/bin/pip install 'locust>=2.47,<3'. Traffic goes
to 127.0.0.1 only, and every run stops by itself after its duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil  # installed with Locust, the benchmark extra

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadprobe.fasthttp import FastHttpSender, new_event_loop  # noqa: E402
from loadprobe.http_engine import DEFAULT_REQUEST, AiohttpSender, RequestSender, RequestSpec  # noqa: E402
from loadprobe.open_model import run_open_step  # noqa: E402
from loadprobe.scenario_mix import ScenarioMix  # noqa: E402
from loadprobe.step_verdict import GENERATOR_CPU_LIMIT, GENERATOR_LAG_LIMIT_MS  # noqa: E402

DEFAULT_OPEN_RATES = "5000,10000,15000,20000,22500,25000,27500,30000,35000,40000"
PROCESS_TIMEOUT_S = 300.0  # a generator process still running after this is killed
QUIET_SAMPLE_S = 2.0  # window over which --quiet-below measures the machine's load

NGINX_CONF = """
user {user};
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{ listen 127.0.0.1:{port}; root {root}/www; }}
}}
"""

LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Probe(FastHttpUser):
    wait_time = constant(0)

    @task
    def index(self):
        self.client.get("/")
"""


# Worker processes ------------------------------------------------------------


async def closed_loop(sender: RequestSender, duration_s: float, concurrency: int) -> dict[str, Any]:
    """Keep ``concurrency`` requests in flight for ``duration_s``; return counts and this process's CPU time."""
    spec = RequestSpec()
    await sender.send(spec)  # open the first connection before the clock starts
    counts = {"requests": 0, "errors": 0}
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        while time.perf_counter() < deadline:
            outcome = await sender.send(spec)
            counts["requests"] += 1
            if outcome.error_kind is not None:
                counts["errors"] += 1

    cpu_start = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_start
    await sender.close()
    return {**counts, "wall_s": wall_s, "cpu_s": cpu_s}


async def open_model_steps(url: str, rates: list[float], step_duration_s: float, connections: int) -> list[dict[str, Any]]:
    """Run one open-model step per rate until a step misses the send-lag limit; return a row per step."""
    sender = FastHttpSender(url, max_connections=connections)
    mix = ScenarioMix((DEFAULT_REQUEST,))
    await sender.send(DEFAULT_REQUEST)  # open the first connection before the first step
    rows = []
    try:
        for rate in rates:
            measurement = await run_open_step(sender, mix, rate, rate, step_duration_s)
            lag_p99_ms = measurement.send_lag.percentile_ms(99)
            row = {
                "offered_rps": rate,
                "sent": measurement.sent,
                "dropped": measurement.dropped,
                "errors": measurement.total.errors,
                "achieved_rps": measurement.ok_in_window / step_duration_s,
                "lag_p99_ms": lag_p99_ms,
                "latency_p99_ms": measurement.total.latency.percentile_ms(99),
                "generator_cpu": measurement.generator_cpu,
            }
            row["holds"] = (
                lag_p99_ms is not None
                and lag_p99_ms < GENERATOR_LAG_LIMIT_MS
                and measurement.dropped == 0
                and measurement.total.errors == 0
            )
            rows.append(row)
            if not row["holds"]:
                break
    finally:
        await sender.close()
    return rows


def run_worker(args: argparse.Namespace) -> int:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        if args.worker == "open-model":
            rates = [float(rate) for rate in args.open_rates.split(",")]
            result: Any = runner.run(open_model_steps(args.url, rates, args.open_step_duration, args.connections))
        else:
            sender: RequestSender
            if args.worker == "fast":
                sender = FastHttpSender(args.url, max_connections=args.connections)
            else:
                sender = AiohttpSender(args.url, max_connections=args.connections)
            result = runner.run(closed_loop(sender, args.duration, args.connections))
    print(json.dumps(result))
    return 0


# Parent: servers, peer tools and CPU accounting ---------------------------------


@dataclass
class ProcessRun:
    """One generator process run to its end, and the CPU time each party used meanwhile.

    ``generator_cpu_s`` covers the whole process, or only the time between two
    log lines when the run was given marks. ``nginx_cpu_s`` and
    ``others_cpu_s`` (every other process on the machine) cover the whole run.
    """

    stdout: str
    generator_cpu_s: float
    nginx_cpu_s: float
    others_cpu_s: float
    wall_s: float


@dataclass
class GeneratorResult:
    """Requests one generator completed, and its own CPU seconds over its load window."""

    requests: int
    errors: int
    wall_s: float
    cpu_s: float
    run: ProcessRun

    @property
    def rate_rps(self) -> float:
        return self.requests / self.wall_s

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.cpu_s


def machine_busy_s() -> float:
    """Return the CPU seconds all processes on this machine have used since boot."""
    times = psutil.cpu_times()
    return float(sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal")))


def tree_cpu_s(process: psutil.Process) -> float:
    """Return the user + sys seconds of ``process`` and its children (nginx's master and worker)."""
    total = 0.0
    for member in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def run_measured(command: list[str], nginx: psutil.Process, marks: tuple[str, str] | None = None) -> ProcessRun:
    """Run a generator process to its end and account for the CPU time used meanwhile.

    With ``marks``, the generator's CPU time is sampled when its stderr shows
    the first text and again at the second, which bracket its load window.
    """
    wall_start, busy_start, nginx_start = time.perf_counter(), machine_busy_s(), tree_cpu_s(nginx)
    with tempfile.TemporaryFile("w+") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True)
        killer = threading.Timer(PROCESS_TIMEOUT_S, process.kill)
        killer.start()
        monitor = psutil.Process(process.pid)
        marked: list[float] = []
        assert process.stderr is not None
        for line in process.stderr:
            if marks is not None and len(marked) < 2 and marks[len(marked)] in line:
                times = monitor.cpu_times()
                marked.append(times.user + times.system)
        # os.wait4 rather than Popen.wait, because it also returns the child's rusage.
        _, status, usage = os.wait4(process.pid, 0)
        killer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:2])} exited with {process.returncode}")
        stdout.seek(0)
        output = stdout.read()
    wall_s = time.perf_counter() - wall_start
    process_cpu_s = usage.ru_utime + usage.ru_stime
    nginx_cpu_s = tree_cpu_s(nginx) - nginx_start
    others_cpu_s = max(machine_busy_s() - busy_start - nginx_cpu_s - process_cpu_s, 0.0)
    if marks is not None:
        if len(marked) < 2:
            raise RuntimeError(f"the log of {command[0]} did not show {marks[0]!r} and then {marks[1]!r}; check its version")
        process_cpu_s = marked[1] - marked[0]
    return ProcessRun(output, process_cpu_s, nginx_cpu_s, others_cpu_s, wall_s)


def wait_for_quiet(limit_cores: float, max_wait_s: float) -> None:
    """Wait until the machine's busy CPU is below ``limit_cores``, for at most ``max_wait_s``.

    Between runs nginx is idle, so what is busy then is other work on the machine.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        busy_start = machine_busy_s()
        time.sleep(QUIET_SAMPLE_S)
        busy_cores = (machine_busy_s() - busy_start) / QUIET_SAMPLE_S
        if busy_cores < limit_cores:
            return
        if time.monotonic() > deadline:
            print(f"other processes still use {busy_cores:.2f} cores after {max_wait_s:g} s; measuring anyway", file=sys.stderr)
            return
        print(f"waiting: other processes use {busy_cores:.2f} cores", file=sys.stderr)


@contextlib.contextmanager
def nginx_server(port: int) -> Iterator[tuple[str, psutil.Process]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: apt-get install -y nginx")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "www").mkdir()
        (root / "www" / "index.html").write_text("ok\n")
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=getpass.getuser(), root=root, port=port))
        server = subprocess.Popen([nginx, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")])
        try:
            time.sleep(1.0)
            if server.poll() is not None:
                raise SystemExit(f"nginx exited with {server.returncode}; see {root / 'error.log'}")
            yield f"http://127.0.0.1:{port}/", psutil.Process(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)


def run_python_worker(kind: str, url: str, nginx: psutil.Process, args: argparse.Namespace) -> tuple[Any, ProcessRun]:
    command = [
        sys.executable, __file__, "--worker", kind, "--url", url,
        "--duration", str(args.duration), "--connections", str(args.connections),
        "--open-rates", args.open_rates, "--open-step-duration", str(args.open_step_duration),
    ]  # fmt: skip
    run = run_measured(command, nginx)
    return json.loads(run.stdout.strip().splitlines()[-1]), run


def run_capplan(kind: str, url: str, nginx: psutil.Process, args: argparse.Namespace) -> GeneratorResult:
    result, run = run_python_worker(kind, url, nginx, args)
    return GeneratorResult(result["requests"], result["errors"], result["wall_s"], result["cpu_s"], run)


def run_locust(url: str, nginx: psutil.Process, args: argparse.Namespace) -> GeneratorResult | None:
    """Run Locust headless in one process and read its final stats."""
    locust = Path(sys.executable).parent / "locust"
    if not locust.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp) / "locustfile.py"
        locustfile.write_text(LOCUSTFILE)
        users = str(args.connections)
        command = [
            str(locust), "-f", str(locustfile), "--headless", "-u", users, "-r", users,
            "-t", f"{int(args.duration)}s", "--host", url.rstrip("/"), "--only-summary",
            "--csv", str(Path(tmp) / "run"), "--json-file", str(Path(tmp) / "stats"),
        ]  # fmt: skip
        # Locust logs one line when the users start and one when the run time is over.
        run = run_measured(command, nginx, marks=("Ramping to", "run-time limit reached"))
        # NOTE: Locust's --csv stats file is written on a timer and misses the
        # last second or so of a --run-time run, so the final stats come from
        # --json-file, which Locust writes after the users stop.
        entries = json.loads((Path(tmp) / "stats.json").read_text())
    requests = sum(entry["num_requests"] for entry in entries)
    errors = sum(entry["num_failures"] for entry in entries)
    wall_s = max(entry["last_request_timestamp"] for entry in entries) - min(entry["start_time"] for entry in entries)
    return GeneratorResult(requests, errors, wall_s, run.generator_cpu_s, run)


def run_wrk(url: str, nginx: psutil.Process, args: argparse.Namespace) -> GeneratorResult | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    run = run_measured([wrk, "-t1", f"-c{args.connections}", f"-d{int(args.duration)}s", url], nginx)
    requests = re.search(r"(\d+) requests in ([0-9.]+)(m?s)", run.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", run.stdout)
    if requests is None:
        raise RuntimeError(f"cannot read wrk's output:\n{run.stdout}")
    wall_s = float(requests.group(2)) / (1000.0 if requests.group(3) == "ms" else 1.0)
    return GeneratorResult(int(requests.group(1)), int(errors.group(1)) if errors else 0, wall_s, run.generator_cpu_s, run)


# Report ------------------------------------------------------------------------


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_description() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    memory_gib = psutil.virtual_memory().total / 1024**3
    system = platform.platform()
    with contextlib.suppress(OSError):
        match = re.search(r'PRETTY_NAME="(.+)"', Path("/etc/os-release").read_text())
        system = match.group(1) if match else system
    return f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB, {system}, Python {platform.python_version()}"


def tool_versions() -> str:
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    wrk_path = shutil.which("wrk")
    wrk = subprocess.run([wrk_path, "-v"], capture_output=True, text=True).stdout.split()[1] if wrk_path else "not installed"
    packages = ", ".join(f"{name} {version_of(name)}" for name in ("httptools", "uvloop", "aiohttp", "locust"))
    return f"nginx {nginx}, wrk {wrk}, {packages}"


def print_report(
    results: dict[str, GeneratorResult | None], open_rows: list[dict[str, Any]], open_run: ProcessRun, args: argparse.Namespace
) -> None:
    fast = results["capplan FastHttpSender"]
    assert fast is not None
    print(f"\nMachine: {machine_description()}")
    print(f"Tools: {tool_versions()}")
    print(f"Each generator: {args.connections} connections for {args.duration:g} s against nginx (1 worker) on 127.0.0.1.")
    print("nginx and other processes: CPU share of one core over the generator's whole run.\n")
    print("| generator | requests/s | errors | generator CPU s | requests per CPU-second | FastHttpSender per CPU-second vs it | nginx CPU | other processes CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        if result is None:
            print(f"| {name} | not installed | | | | | | |")
            continue
        run = result.run
        print(
            f"| {name} | {result.rate_rps:,.0f} | {result.errors:,} | {result.cpu_s:.2f} | {result.per_cpu_second:,.0f} "
            f"| {fast.per_cpu_second / result.per_cpu_second:.2f}x | {run.nginx_cpu_s / run.wall_s:.0%} | {run.others_cpu_s / run.wall_s:.0%} |"
        )
    print()
    for name, result in results.items():
        if result is not None and result is not fast:
            print(f"FastHttpSender / {name}: {fast.rate_rps / result.rate_rps:.2f}x requests/s, {fast.per_cpu_second / result.per_cpu_second:.2f}x requests per CPU-second")

    print(f"\nOpen-model step loop with FastHttpSender ({args.open_step_duration:g} s per step, uniform arrivals, "
          f"{args.connections} connections; other processes used {open_run.others_cpu_s / open_run.wall_s:.0%} of a core):\n")
    print("| offered rps | achieved rps | sent | dropped | errors | send lag p99 ms | latency p99 ms | generator CPU | holds |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in open_rows:
        lag = "n/a" if row["lag_p99_ms"] is None else f"{row['lag_p99_ms']:.1f}"
        latency = "n/a" if row["latency_p99_ms"] is None else f"{row['latency_p99_ms']:.1f}"
        print(
            f"| {row['offered_rps']:,.0f} | {row['achieved_rps']:,.0f} | {row['sent']:,} | {row['dropped']:,} | {row['errors']:,} "
            f"| {lag} | {latency} | {row['generator_cpu']:.0%} | {'yes' if row['holds'] else 'no'} |"
        )
    held = [row["offered_rps"] for row in open_rows if row["holds"]]
    unsaturated = [row["offered_rps"] for row in open_rows if row["holds"] and row["generator_cpu"] <= GENERATOR_CPU_LIMIT]
    print(f"\nOpen-model ceiling (send lag p99 < {GENERATOR_LAG_LIMIT_MS:g} ms, nothing dropped or failed): {describe_rate(held)}")
    print(f"The same, also within the step verdict's CPU limit ({GENERATOR_CPU_LIMIT:.0%} of a core): {describe_rate(unsaturated)}")


def describe_rate(rates: list[float]) -> str:
    return f"{max(rates):,.0f} requests/s" if rates else "below the lowest rate tried"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per generator (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="connections, tasks or users per generator (default 64)")
    parser.add_argument("--open-rates", default=DEFAULT_OPEN_RATES, help="comma-separated offered rates in requests/s, climbed in order")
    parser.add_argument("--open-step-duration", type=float, default=5.0, help="seconds per open-model step (default 5)")
    parser.add_argument("--port", type=int, default=18080, help="nginx's port on 127.0.0.1 (default 18080)")
    parser.add_argument(
        "--quiet-below", type=float, default=None, metavar="CORES",
        help="before each generator, wait until other processes use fewer than CORES cores (default: do not wait)",
    )  # fmt: skip
    parser.add_argument("--quiet-wait", type=float, default=600.0, help="seconds to wait for --quiet-below at most (default 600)")
    parser.add_argument("--worker", choices=("fast", "aiohttp", "open-model"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.duration <= 60:
        parser.error(f"--duration {args.duration:g} s is outside 1..60 s")
    if not 1 <= args.open_step_duration <= 60:
        parser.error(f"--open-step-duration {args.open_step_duration:g} s is outside 1..60 s")
    if args.worker:
        return run_worker(args)
    # A SIGTERM unwinds like Ctrl-C, so the finally blocks stop nginx.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    def announce(name: str) -> None:
        if args.quiet_below is not None:
            wait_for_quiet(args.quiet_below, args.quiet_wait)
        print(f"{name} ...", file=sys.stderr)

    with nginx_server(args.port) as (url, nginx):
        results: dict[str, GeneratorResult | None] = {}
        announce("wrk")
        results["wrk -t1"] = run_wrk(url, nginx, args)
        announce("Locust FastHttpUser")
        results["Locust FastHttpUser"] = run_locust(url, nginx, args)
        announce("capplan FastHttpSender")
        results["capplan FastHttpSender"] = run_capplan("fast", url, nginx, args)
        announce("capplan AiohttpSender")
        results["capplan AiohttpSender"] = run_capplan("aiohttp", url, nginx, args)
        announce("open-model steps")
        open_rows, open_run = run_python_worker("open-model", url, nginx, args)
    print_report(results, open_rows, open_run, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
