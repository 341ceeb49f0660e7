"""A real Prometheus for the tests, backfilled with a known history, and a fault proxy.

``start_prometheus`` writes OpenMetrics text, turns it into TSDB blocks with
``promtool tsdb create-blocks-from openmetrics``, moves the blocks into a
fresh data directory and starts Debian's ``prometheus`` on 127.0.0.1.

``shop_history`` is the known history that the collection and analyzer
tests check values against. Its facts are module constants, so a test can
compute every expected value from them.

``FaultProxy`` sits between the client and Prometheus and responds with
scripted faults (5xx errors, slow responses, dropped connections) that a
healthy Prometheus cannot produce on demand. It forwards every other request.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from conftest import require_binary
from loadprobe.target_process import free_port

START_TIMEOUT_S = 30.0
# Backfilled blocks older than the retention are deleted at start. The
# retention is measured back from the newest block, so ten years cover the
# fixed histories below.
RETENTION = "3650d"

# The shop history: three weeks of 5-minute samples from a Monday.
HISTORY_START = datetime(2026, 10, 5)  # naive UTC, a Monday
HISTORY_DAYS = 21
HISTORY_STEP_S = 300
HISTORY_SAMPLES = HISTORY_DAYS * 86400 // HISTORY_STEP_S
BASE_RPS = {"a": 100.0, "b": 50.0}
ERROR_FRACTION_A = 0.01
WEEKEND_FACTOR = 0.6
# Instance b restarts here: its counter starts again from zero.
RESET_AT = HISTORY_START + timedelta(days=10, hours=12)
# Instance a has no samples in [GAP_START, GAP_END).
GAP_START = HISTORY_START + timedelta(days=15, hours=6)
GAP_END = GAP_START + timedelta(hours=6)
QUEUE_NAN_EVERY = 97  # every 97th sample of shop_queue_length is NaN

# The checkout window: one hour of 15-second samples with constant, known load.
CHECKOUT_START = datetime(2026, 10, 25, 12)
CHECKOUT_END = CHECKOUT_START + timedelta(hours=1)
CHECKOUT_STEP_S = 15
CHECKOUT_RPS = {"a": 120.0, "b": 80.0}
CHECKOUT_ERROR_FRACTION = 0.03
# Cumulative fraction of requests at or below each bucket bound (seconds).
CHECKOUT_BUCKETS = ((0.1, 0.5), (0.25, 0.7), (0.5, 0.9), (1.0, 0.98), (2.5, 1.0))
CHECKOUT_MEAN_S = 0.3
CHECKOUT_CPU_CORES = {"a": 1.8, "b": 0.6}
CHECKOUT_MEMORY_BYTES = {"a": 1.8 * 2**30, "b": 1.0 * 2**30}
CHECKOUT_UP = {"a": 1, "b": 1, "c": 0}


def epoch_s(moment: datetime) -> int:
    return int(moment.replace(tzinfo=timezone.utc).timestamp())


def shop_rate_rps(instance: str, moment: datetime) -> float:
    """The true request rate of the shop history: a daily cycle peaking at 12:00 UTC, lower at weekends."""
    hour = moment.hour + moment.minute / 60 + moment.second / 3600
    daily = 1.0 + 0.5 * math.sin(2 * math.pi * (hour - 6) / 24)
    weekly = WEEKEND_FACTOR if moment.weekday() >= 5 else 1.0
    return BASE_RPS[instance] * daily * weekly


def history_times() -> list[datetime]:
    return [HISTORY_START + timedelta(seconds=HISTORY_STEP_S * k) for k in range(HISTORY_SAMPLES)]


def in_gap(moment: datetime) -> bool:
    return GAP_START <= moment < GAP_END


def queue_samples() -> list[tuple[datetime, float]]:
    """The samples of shop_queue_length{instance="a"}: k mod 50, NaN every 97th, none in the gap."""
    samples = []
    for k, moment in enumerate(history_times()):
        if in_gap(moment):
            continue
        value = math.nan if k % QUEUE_NAN_EVERY == 0 else float(k % 50)
        samples.append((moment, value))
    return samples


# Prometheus's default --query.lookback-delta: an instant selector returns the
# latest sample at most this old. Prometheus 2.42 includes a sample exactly
# 5 minutes old (checked against the server these tests start).
LOOKBACK_S = 300


def lookback_model(samples: Sequence[tuple[datetime, float]], first: datetime, last: datetime, step_s: int) -> dict[datetime, float]:
    """Return what a range query of a raw gauge returns at each grid point: the latest sample in [t - 5m, t].

    Grid points without such a sample are absent from the result.
    """
    expected: dict[datetime, float] = {}
    index = -1
    moment = first
    while moment <= last:
        while index + 1 < len(samples) and samples[index + 1][0] <= moment:
            index += 1
        if index >= 0 and (moment - samples[index][0]).total_seconds() <= LOOKBACK_S:
            expected[moment] = samples[index][1]
        moment += timedelta(seconds=step_s)
    return expected


def _format_value(value: float) -> str:
    return "NaN" if math.isnan(value) else repr(float(value))


def shop_history() -> str:
    """Return the OpenMetrics text of the shop history (three weeks, 5-minute samples)."""
    lines = ["# TYPE shop_requests counter", "# HELP shop_requests Requests answered, by status code."]
    times = history_times()
    for instance, code in (("a", "200"), ("a", "500"), ("b", "200")):
        total = 0.0
        for moment in times:
            if instance == "a" and in_gap(moment):
                continue
            if instance == "b" and moment == RESET_AT:
                total = 0.0
            fraction = 1.0
            if instance == "a":
                fraction = ERROR_FRACTION_A if code == "500" else 1.0 - ERROR_FRACTION_A
            total += shop_rate_rps(instance, moment) * fraction * HISTORY_STEP_S
            lines.append(f'shop_requests_total{{code="{code}",instance="{instance}"}} {total!r} {epoch_s(moment)}')
    lines += ["# TYPE shop_queue_length gauge", "# HELP shop_queue_length Requests waiting."]
    for moment, value in queue_samples():
        lines.append(f'shop_queue_length{{instance="a"}} {_format_value(value)} {epoch_s(moment)}')
    return "\n".join(lines) + "\n"


def checkout_window() -> str:
    """Return the OpenMetrics text of the checkout hour (15-second samples, constant load)."""
    times = []
    moment = CHECKOUT_START
    while moment <= CHECKOUT_END:
        times.append(moment)
        moment += timedelta(seconds=CHECKOUT_STEP_S)
    elapsed = [(t - CHECKOUT_START).total_seconds() + CHECKOUT_STEP_S for t in times]

    lines = ["# TYPE checkout_requests counter", "# HELP checkout_requests Requests answered, by status code."]
    for instance, rps in CHECKOUT_RPS.items():
        for code, fraction in (("200", 1 - CHECKOUT_ERROR_FRACTION), ("500", CHECKOUT_ERROR_FRACTION)):
            for t, seconds in zip(times, elapsed):
                lines.append(f'checkout_requests_total{{code="{code}",instance="{instance}"}} {rps * fraction * seconds!r} {epoch_s(t)}')

    lines += ["# TYPE checkout_request_duration_seconds histogram", "# HELP checkout_request_duration_seconds Latency."]
    for instance, rps in CHECKOUT_RPS.items():
        for t, seconds in zip(times, elapsed):
            count = rps * seconds
            for bound, fraction in CHECKOUT_BUCKETS:
                lines.append(f'checkout_request_duration_seconds_bucket{{instance="{instance}",le="{bound}"}} {count * fraction!r} {epoch_s(t)}')
            lines.append(f'checkout_request_duration_seconds_bucket{{instance="{instance}",le="+Inf"}} {count!r} {epoch_s(t)}')
            lines.append(f'checkout_request_duration_seconds_count{{instance="{instance}"}} {count!r} {epoch_s(t)}')
            lines.append(f'checkout_request_duration_seconds_sum{{instance="{instance}"}} {count * CHECKOUT_MEAN_S!r} {epoch_s(t)}')

    lines += ["# TYPE checkout_cpu_seconds counter", "# HELP checkout_cpu_seconds CPU time used."]
    for instance, cores in CHECKOUT_CPU_CORES.items():
        for t, seconds in zip(times, elapsed):
            lines.append(f'checkout_cpu_seconds_total{{instance="{instance}"}} {cores * seconds!r} {epoch_s(t)}')
    lines += ["# TYPE checkout_memory_bytes gauge", "# HELP checkout_memory_bytes Resident memory."]
    for instance, size in CHECKOUT_MEMORY_BYTES.items():
        for t in times:
            lines.append(f'checkout_memory_bytes{{instance="{instance}"}} {size!r} {epoch_s(t)}')
    lines += ["# TYPE checkout_up gauge", "# HELP checkout_up Scrape health."]
    for instance, value in CHECKOUT_UP.items():
        for t in times:
            lines.append(f'checkout_up{{instance="{instance}"}} {value} {epoch_s(t)}')
    return "\n".join(lines) + "\n"


@dataclass
class PrometheusServer:
    """A running Prometheus on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    root: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _backfill(promtool: str, text: str, work: Path, data_dir: Path) -> None:
    source = work / "history.om"
    source.write_text(text + "# EOF\n", encoding="utf-8")
    blocks = work / "blocks"
    completed = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=768h", str(source), str(blocks)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if completed.returncode != 0:
        pytest.fail(f"promtool backfill failed ({completed.returncode}): {completed.stderr[-2000:]}")
    for block in blocks.iterdir():
        shutil.move(str(block), data_dir / block.name)


@contextmanager
def start_prometheus(
    root: Path,
    history: Sequence[str] = (),
    scrape_configs: str = "",
    scrape_interval_s: float = 15.0,
) -> Iterator[PrometheusServer]:
    """Start Prometheus with the given OpenMetrics histories backfilled; stop it on exit.

    ``scrape_configs`` is the YAML list under ``scrape_configs:``, indented by
    two spaces; ``{port}`` in it becomes Prometheus's own port.
    """
    prometheus = require_binary("prometheus", "/usr/bin/prometheus")
    promtool = require_binary("promtool", "/usr/bin/promtool")
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    if history:
        _backfill(promtool, "".join(history), root, data_dir)
    port = free_port()
    config = root / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval_s:g}s\n  evaluation_interval: 60s\n"
        f"scrape_configs:\n{scrape_configs.replace('{port}', str(port)) if scrape_configs else '  []'}\n",
        encoding="utf-8",
    )
    log_path = root / "prometheus.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = PrometheusServer(process, port, root, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()
        log.close()


def _wait_ready(server: PrometheusServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"prometheus exited with {server.process.returncode}: {server.log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"prometheus did not become ready on {server.url} within {START_TIMEOUT_S:.0f} s")


def wait_for_series(url: str, query: str, timeout_s: float = 20.0, minimum: int = 1) -> None:
    """Wait until an instant query at now returns at least ``minimum`` series."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=2.0)
        if response.status_code == 200 and len(response.json()["data"]["result"]) >= minimum:
            return
        time.sleep(0.25)
    pytest.fail(f"{query!r} returned no series from {url} within {timeout_s:.0f} s")


@dataclass
class ProxyRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class FaultProxy:
    """An HTTP server on 127.0.0.1 that forwards to ``upstream`` after its scripted faults.

    Each API request (``/api/v1/...``) takes the next entry of ``script``:
    ``"pass"`` forwards it, an int responds with that status, ``"slow"``
    waits ``slow_s`` and then forwards, and ``"drop"`` closes the connection
    without a response. When the script is used up every request is forwarded.
    With ``expected_authorization`` set, a request without exactly that
    header gets a 401 response.
    """

    upstream: str
    script: list[object] = field(default_factory=list)
    slow_s: float = 2.0
    expected_authorization: str | None = None
    requests: list[ProxyRequest] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _next_action(self) -> object:
        with self._lock:
            return self.script.pop(0) if self.script else "pass"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                params = dict(httpx.QueryParams(query))
                with proxy._lock:
                    proxy.requests.append(ProxyRequest(path, params, {k.lower(): v for k, v in self.headers.items()}))
                if proxy.expected_authorization is not None and self.headers.get("Authorization") != proxy.expected_authorization:
                    self._answer(401, b'{"status":"error","errorType":"unauthorized","error":"unauthorized"}')
                    return
                action = proxy._next_action() if path.startswith("/api/v1/") else "pass"
                if action == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(action, int):
                    self._answer(action, b'{"status":"error","errorType":"unavailable","error":"injected fault"}')
                    return
                if action == "slow":
                    time.sleep(proxy.slow_s)
                upstream = httpx.get(f"{proxy.upstream}{self.path}", timeout=30.0)
                self._answer(upstream.status_code, upstream.content)

            def _answer(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first, as in the timeout tests

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def api_requests(self, path: str = "/api/v1/query_range") -> list[ProxyRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]


SELF_SCRAPE = """  - job_name: prometheus
    scrape_interval: 1s
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""

_shared: dict[str, PrometheusServer] = {}


@pytest.fixture(scope="session")
def shop_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One Prometheus per test session with the shop history and the checkout hour backfilled.

    It also scrapes itself every second, for tests that need live data.
    Test modules import this fixture; the server is shared between them.
    """
    if "shop" in _shared:
        yield _shared["shop"]
        return
    root = tmp_path_factory.mktemp("prometheus")
    with start_prometheus(root, [shop_history(), checkout_window()], scrape_configs=SELF_SCRAPE) as server:
        _shared["shop"] = server
        try:
            yield server
        finally:
            _shared.pop("shop", None)
