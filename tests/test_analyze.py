"""``capplan analyze`` against a real Prometheus: a backfilled checkout hour with known values,
and a live demo target under load."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import duckdb
import pytest

from capplan.cli import main
from loadprobe.analyzer.bottlenecks import find_bottlenecks
from loadprobe.analyzer.config import Thresholds, parse_bytes
from loadprobe.analyzer.measure import Measurements
from loadprobe.target_process import DemoTargetProcess
from prometheus_server import (
    CHECKOUT_CPU_CORES,
    CHECKOUT_ERROR_FRACTION,
    CHECKOUT_MEAN_S,
    CHECKOUT_MEMORY_BYTES,
    CHECKOUT_RPS,
    CHECKOUT_START,
    FaultProxy,
    PrometheusServer,
    shop_prometheus,
    start_prometheus,
    wait_for_series,
)

__all__ = ["shop_prometheus"]  # the fixture, imported so pytest finds it here

AT = (CHECKOUT_START.replace(minute=30)).isoformat() + "Z"
CHECKOUT_METRICS = (
    "--requests-metric", "checkout_requests_total",
    "--duration-metric", "checkout_request_duration_seconds",
    "--cpu-metric", "checkout_cpu_seconds_total",
    "--memory-metric", "checkout_memory_bytes",
    "--up-metric", "checkout_up",
)
CAPACITY = ("--cpu-cores", "2", "--memory-limit", "2GiB")
# histogram_quantile interpolates linearly inside the bucket that contains the quantile.
P95_MS = 1000 * (0.5 + 0.5 * (0.95 - 0.9) / (0.98 - 0.9))
P99_MS = 1000 * (1.0 + 1.5 * (0.99 - 0.98) / (1.0 - 0.98))


def analyze(db: Path, url: str, *extra: str) -> int:
    return main(["analyze", "--prometheus", url, "--db", str(db), *extra])


def analyze_json(capsys: pytest.CaptureFixture[str], db: Path, url: str, *extra: str) -> dict:
    code = analyze(db, url, "--json", *extra)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.count("\n") == 1
    return json.loads(captured.out)


def checkout(capsys: pytest.CaptureFixture[str], db: Path, url: str, *extra: str) -> dict:
    return analyze_json(capsys, db, url, "--at", AT, *CHECKOUT_METRICS, *CAPACITY, *extra)


def test_analyze_measures_known_values(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = checkout(capsys, tmp_path / "s.duckdb", shop_prometheus.url)
    metrics = payload["metrics"]
    assert payload["window_start"] == "2026-10-25T12:25:00"
    assert payload["window_end"] == "2026-10-25T12:30:00"
    assert metrics["throughput_rps"] == pytest.approx(sum(CHECKOUT_RPS.values()))
    assert metrics["error_rate"] == pytest.approx(CHECKOUT_ERROR_FRACTION)
    assert metrics["p95_ms"] == pytest.approx(P95_MS)
    assert metrics["p99_ms"] == pytest.approx(P99_MS)
    assert metrics["mean_ms"] == pytest.approx(1000 * CHECKOUT_MEAN_S)
    assert metrics["cpu_cores"] == pytest.approx(sum(CHECKOUT_CPU_CORES.values()))
    assert metrics["cpu_utilisation"] == pytest.approx(CHECKOUT_CPU_CORES["a"] / 2)
    assert metrics["memory_bytes"] == pytest.approx(CHECKOUT_MEMORY_BYTES["a"])
    assert metrics["memory_utilisation"] == pytest.approx(CHECKOUT_MEMORY_BYTES["a"] / 2**31)
    assert metrics["instances"] == 2.0
    assert payload["missing"] == {}


def test_analyze_default_thresholds_bottlenecks(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = checkout(capsys, tmp_path / "s.duckdb", shop_prometheus.url)
    found = {b["metric"]: b for b in payload["bottlenecks"]}
    assert set(found) == {"error_rate", "p95_ms", "p99_ms", "cpu_utilisation", "memory_utilisation"}
    assert {b["severity"] for b in found.values()} == {"warning"}
    assert payload["status"] == "warning"
    assert found["p95_ms"]["threshold"] == 500.0
    assert found["p99_ms"]["threshold"] == 1000.0
    assert found["error_rate"]["threshold"] == 0.01
    assert found["cpu_utilisation"]["threshold"] == 0.8
    assert found["memory_utilisation"]["threshold"] == 0.85
    assert found["p95_ms"]["value"] == pytest.approx(P95_MS)


def test_analyze_recommendations_use_context(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = checkout(capsys, tmp_path / "s.duckdb", shop_prometheus.url)
    advice = {b["metric"]: b["recommendation"] for b in payload["bottlenecks"]}
    # Busiest instance at 90 % of 2 cores, 2 instances: 2 x 0.9 / 0.8 rounds up to 3.
    assert "CPU-bound: scale out to about 3 instances" in advice["p95_ms"]
    assert "run about 3 instances instead of 2" in advice["cpu_utilisation"]
    assert "likely overloaded" in advice["error_rate"]
    assert "leak" in advice["memory_utilisation"]


def test_analyze_latency_not_cpu_bound_advice(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = checkout(capsys, tmp_path / "s.duckdb", shop_prometheus.url, "--max-cpu", "95%", "--max-error-rate", "5%")
    advice = {b["metric"]: b["recommendation"] for b in payload["bottlenecks"]}
    assert "likely spent waiting" in advice["p95_ms"]
    assert "CPU is 90.0 %" in advice["p95_ms"]


def test_analyze_critical_when_far_beyond(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = checkout(capsys, tmp_path / "s.duckdb", shop_prometheus.url, "--p95", "400ms", "--max-error-rate", "0.5%")
    severity = {b["metric"]: b["severity"] for b in payload["bottlenecks"]}
    assert severity["p95_ms"] == "critical"  # 812.5 ms is at least twice 400 ms
    assert severity["error_rate"] == "critical"  # 3 % is at least five times 0.5 %
    assert severity["p99_ms"] == "warning"
    assert payload["status"] == "critical"
    assert payload["bottlenecks"][0]["severity"] == "critical"


def test_analyze_within_raised_thresholds_ok(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = checkout(
        capsys, tmp_path / "s.duckdb", shop_prometheus.url,
        "--p95", "1s", "--p99", "2s", "--max-error-rate", "5%", "--max-cpu", "91%", "--max-memory", "91%",
    )
    assert payload["bottlenecks"] == []
    assert payload["status"] == "ok"


# Throughput is 200 rps: below 250 is a warning, below half of 500 is critical, and 190 is no breach.
@pytest.mark.parametrize("minimum,severity", [("250", "warning"), ("500", "critical"), ("190", None)])
def test_analyze_min_throughput(tmp_path: Path, capsys, shop_prometheus: PrometheusServer, minimum: str, severity: str | None) -> None:
    payload = checkout(capsys, tmp_path / "s.duckdb", shop_prometheus.url, "--min-throughput", minimum)
    found = {b["metric"]: b["severity"] for b in payload["bottlenecks"]}
    assert found.get("throughput_rps") == severity


def test_analyze_selector_limits_instances(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = checkout(capsys, tmp_path / "s.duckdb", shop_prometheus.url, "--selector", 'instance="b"')
    assert payload["metrics"]["throughput_rps"] == pytest.approx(CHECKOUT_RPS["b"])
    assert payload["metrics"]["cpu_utilisation"] == pytest.approx(CHECKOUT_CPU_CORES["b"] / 2)
    assert payload["metrics"]["instances"] == 1.0


def test_analyze_custom_cpu_query(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = analyze_json(
        capsys, tmp_path / "s.duckdb", shop_prometheus.url, "--at", AT, *CHECKOUT_METRICS,
        "--cpu-query", "rate(checkout_cpu_seconds_total[$window]) / 4",
    )
    assert payload["metrics"]["cpu_utilisation"] == pytest.approx(CHECKOUT_CPU_CORES["a"] / 4)


def test_analyze_scalar_memory_query(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = analyze_json(capsys, tmp_path / "s.duckdb", shop_prometheus.url, "--at", AT, *CHECKOUT_METRICS, "--memory-query", "0.42")
    assert payload["metrics"]["memory_utilisation"] == pytest.approx(0.42)


def test_analyze_without_capacity_utilisation_missing(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    payload = analyze_json(capsys, tmp_path / "s.duckdb", shop_prometheus.url, "--at", AT, *CHECKOUT_METRICS)
    assert payload["metrics"]["cpu_utilisation"] is None
    assert payload["metrics"]["memory_utilisation"] is None
    assert "--cpu-cores" in payload["missing"]["cpu_utilisation"]
    assert "--memory-limit" in payload["missing"]["memory_utilisation"]
    assert "cpu_utilisation" not in {b["metric"] for b in payload["bottlenecks"]}


def test_analyze_unknown_metrics_no_data(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    code = analyze(tmp_path / "s.duckdb", shop_prometheus.url, "--json", "--at", AT, "--requests-metric", "nothing_total")
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert code == 0
    assert payload["status"] == "no_data"
    assert payload["metrics"]["throughput_rps"] is None
    assert "nothing_total has no data there" in " ".join(captured.err.split())
    assert "--requests-metric" in payload["missing"]["throughput_rps"]


def test_analyze_stores_analysis_and_bottlenecks(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    payload = checkout(capsys, db, shop_prometheus.url)
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT analysis_id, status, p95_ms, error_rate, window_end, config FROM analyses").fetchone()
        stored = con.execute(
            "SELECT metric, severity, value, threshold, unit FROM analysis_bottlenecks ORDER BY metric"
        ).fetchall()
    assert row[0] == payload["analysis_id"]
    assert row[1] == "warning"
    assert row[2] == pytest.approx(P95_MS)
    assert row[3] == pytest.approx(CHECKOUT_ERROR_FRACTION)
    assert row[4].isoformat() == payload["window_end"]
    assert "checkout_requests_total" in json.loads(row[5])["queries"]["throughput_rps"]
    assert [(m, s, u) for m, s, _, _, u in stored] == [
        ("cpu_utilisation", "warning", "fraction"),
        ("error_rate", "warning", "fraction"),
        ("memory_utilisation", "warning", "fraction"),
        ("p95_ms", "warning", "ms"),
        ("p99_ms", "warning", "ms"),
    ]


def test_analyze_table_output(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    assert analyze(tmp_path / "s.duckdb", shop_prometheus.url, "--at", AT, *CHECKOUT_METRICS, *CAPACITY) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "p95 latency" in out
    assert "812.5 ms" in out
    assert "warning" in out
    assert "run about 3 instances instead of 2" in out


def test_analyze_watch_repeats(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    wait_for_series(shop_prometheus.url, 'prometheus_http_requests_total{job="prometheus"}')
    db = tmp_path / "s.duckdb"
    payload = analyze_json(
        capsys, db, shop_prometheus.url, "--watch", "1s", "--count", "2", "--window", "30s",
        "--requests-metric", "prometheus_http_requests_total",
        "--duration-metric", "prometheus_http_request_duration_seconds",
        "--selector", 'job="prometheus"',
    )
    assert payload["count"] == 2
    assert payload["failed"] == 0
    assert len(payload["analyses"]) == 2
    first, second = payload["analyses"]
    assert second["window_end"] > first["window_end"]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM analyses").fetchone()[0] == 2


def test_analyze_watch_skips_failed_window(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    # Each analysis sends 9 queries; the first one of the first analysis gets a 503 response twice.
    proxy = FaultProxy(shop_prometheus.url, script=[503, 503]).start()
    db = tmp_path / "s.duckdb"
    try:
        code = analyze(db, proxy.url, "--json", "--watch", "1s", "--count", "2", "--retries", "1", *CHECKOUT_METRICS)
    finally:
        proxy.stop()
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert code == 0
    assert payload["count"] == 1
    assert payload["failed"] == 1
    assert "analysis 1 of 2 failed and was skipped" in " ".join(captured.err.split())
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM analyses").fetchone()[0] == 1


ANALYZE_OPTION_ERRORS = [
    (["--watch", "60s", "--at", AT], "cannot be combined with --at"),
    (["--watch", "500ms"], "at most once per second"),
    (["--watch", "5s", "--count", "0"], "--count 0 is outside"),
    (["--max-cpu", "180%"], "outside 0..1"),
    (["--memory-limit", "lots"], "invalid size 'lots'"),
    (["--cpu-cores", "2", "--cpu-query", "up"], "not both"),
    (["--window", "0.5s"], "not a whole number of seconds"),
]


@pytest.mark.parametrize("argv,expected", ANALYZE_OPTION_ERRORS, ids=[case[1] for case in ANALYZE_OPTION_ERRORS])
def test_analyze_option_error(tmp_path: Path, capsys, argv: list[str], expected: str) -> None:
    db = tmp_path / "s.duckdb"
    assert analyze(db, "http://127.0.0.1:9", *argv) == 2
    assert expected in capsys.readouterr().err
    assert not db.exists()


def test_memory_size_units() -> None:
    assert parse_bytes("2GiB") == 2 * 2**30
    assert parse_bytes("512Mi") == 512 * 2**20
    assert parse_bytes("1.5GB") == 1.5e9
    assert parse_bytes("1024") == 1024


def test_bottleneck_at_threshold_not_breach() -> None:
    from datetime import datetime

    m = Measurements(datetime(2026, 1, 1), datetime(2026, 1, 1), 100.0, 0.01, 500.0, 1000.0, 100.0, 1.0, 0.8, 1.0, 0.85, 2.0)
    assert find_bottlenecks(m, Thresholds()) == []


async def _offer_load(url: str, rate_rps: float, duration_s: float) -> None:
    """Send requests at a fixed rate without waiting for responses (an open workload), bounded in count."""
    timeout = aiohttp.ClientTimeout(total=5.0)
    count = int(rate_rps * duration_s)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=1000)) as session:

        async def one() -> None:
            try:
                async with session.get(url) as response:
                    await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass

        started = time.monotonic()
        tasks = []
        for index in range(count):
            delay = started + index / rate_rps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)


@pytest.mark.slow
def test_analyze_live_overloaded_demo_target(tmp_path: Path, capsys, demo_target: DemoTargetProcess) -> None:
    scrape = f"""  - job_name: demo
    scrape_interval: 1s
    static_configs:
      - targets: ['127.0.0.1:{demo_target.port}']
"""
    with start_prometheus(tmp_path / "prometheus", scrape_configs=scrape) as prometheus:
        wait_for_series(prometheus.url, 'demo_workers{job="demo"}')
        # The demo target serves 200 requests/s with a queue of 100; 400 requests/s overflow it.
        asyncio.run(_offer_load(demo_target.url, rate_rps=400.0, duration_s=3.0))
        time.sleep(2.5)  # two more scrapes, so the last responses are counted
        payload = analyze_json(
            capsys, tmp_path / "s.duckdb", prometheus.url, "--window", "15s",
            "--requests-metric", "demo_requests_total",
            "--duration-metric", "demo_request_duration_seconds",
            "--selector", 'job="demo"',
        )
    metrics = payload["metrics"]
    found = {b["metric"]: b for b in payload["bottlenecks"]}
    assert metrics["throughput_rps"] > 20
    assert metrics["error_rate"] > 0.05
    assert found["error_rate"]["severity"] == "critical"
    assert metrics["p95_ms"] > 20  # at least the 20 ms service time
    assert metrics["instances"] == 1.0
    # The demo target exports process metrics; serving 400 requests/s takes
    # a Python process some CPU but less than a core.
    assert payload["metrics"]["cpu_cores"] is not None
    assert 0.0 < payload["metrics"]["cpu_cores"] < 1.0
