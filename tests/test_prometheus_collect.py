"""``capplan collect --prometheus`` against a real Prometheus with a backfilled history."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from capplan.cli import main
from capplan.store import Store
from loadprobe.prometheus.client import PrometheusClient
from loadprobe.prometheus.collector import CollectRequest, collect_prometheus
from prometheus_server import (
    CHECKOUT_BUCKETS,
    CHECKOUT_CPU_CORES,
    CHECKOUT_END,
    CHECKOUT_ERROR_FRACTION,
    CHECKOUT_MEAN_S,
    CHECKOUT_MEMORY_BYTES,
    CHECKOUT_RPS,
    CHECKOUT_START,
    ERROR_FRACTION_A,
    GAP_END,
    GAP_START,
    HISTORY_DAYS,
    HISTORY_START,
    QUEUE_NAN_EVERY,
    RESET_AT,
    FaultProxy,
    PrometheusServer,
    lookback_model,
    queue_samples,
    shop_prometheus,
    shop_rate_rps,
)

__all__ = ["shop_prometheus"]  # the fixture, imported so pytest finds it here

HISTORY_END = HISTORY_START + timedelta(days=HISTORY_DAYS) - timedelta(minutes=5)
SINCE = HISTORY_START.isoformat() + "Z"
UNTIL = HISTORY_END.isoformat() + "Z"


def collect(db: Path, url: str, query: str, name: str, *extra: str) -> int:
    return main(
        ["collect", "--prometheus", url, "--query", query, "--name", name, "--db", str(db), "--json", "--no-progress", *extra]
    )


def collect_json(capsys: pytest.CaptureFixture[str], db: Path, url: str, query: str, name: str, *extra: str) -> dict:
    code = collect(db, url, query, name, *extra)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def stored_rows(db: Path, series: str) -> list[tuple[datetime, float | None]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT ts, value FROM samples WHERE series_name = ? ORDER BY ts", [series]).fetchall()


def sql(db: Path, query: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query, params or []).fetchall()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def queue_model(step_s: int) -> dict[datetime, float]:
    return lookback_model(queue_samples(), HISTORY_START, HISTORY_END, step_s)


def test_collect_gauge_matches_history(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    payload = collect_json(capsys, db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "5m")
    expected = queue_model(300)
    rows = stored_rows(db, 'queue{instance="a"}')
    assert payload["samples_written"] == len(expected)
    assert [ts for ts, _ in rows] == sorted(expected)
    for ts, value in rows:
        if math.isnan(expected[ts]):
            assert value is not None and math.isnan(value), ts
        else:
            assert value == expected[ts], ts


def test_collect_nan_distinct_from_missing(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    collect_json(capsys, db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "5m")
    nan_rows, null_rows, total = sql(
        db, "SELECT count(*) FILTER (WHERE isnan(value)), count(*) FILTER (WHERE value IS NULL), count(*) FROM samples"
    )[0]
    nan_samples = sum(1 for _, v in queue_samples() if math.isnan(v))
    grid_points = HISTORY_DAYS * 288
    # The gap loses 72 samples, but the first gap point still returns the sample 5 minutes before it.
    gap_points = int((GAP_END - GAP_START).total_seconds() // 300) - 1
    gap_indices = range(int((GAP_START - HISTORY_START).total_seconds()) // 300, int((GAP_END - HISTORY_START).total_seconds()) // 300)
    assert nan_samples == len([k for k in range(0, HISTORY_DAYS * 288, QUEUE_NAN_EVERY) if k not in gap_indices])
    assert nan_rows == nan_samples
    assert null_rows == 0
    assert total == grid_points - gap_points


def test_collect_gap_has_no_rows(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    collect_json(capsys, db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "5m")
    inside = sql(db, "SELECT count(*) FROM samples WHERE ts > ? AND ts < ?", [GAP_START, GAP_END])[0][0]
    at_edges = sql(db, "SELECT count(*) FROM samples WHERE ts IN (?, ?)", [GAP_START, GAP_END])[0][0]
    assert inside == 0
    assert at_edges == 2


def test_collect_chunks_stay_under_point_limit(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    proxy = FaultProxy(shop_prometheus.url).start()
    try:
        db = tmp_path / "s.duckdb"
        payload = collect_json(capsys, db, proxy.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "60s")
        ranges = [(float(r.params["start"]), float(r.params["end"]), float(r.params["step"])) for r in proxy.api_requests()]
    finally:
        proxy.stop()
    assert len(ranges) == 3
    for start, end, step in ranges:
        assert (end - start) / step + 1 <= 11_000
    for (_, previous_end, step), (next_start, _, _) in zip(ranges, ranges[1:]):
        assert next_start == previous_end + step
    assert payload["chunks_written"] == 3
    assert payload["samples_total"] == len(queue_model(60))


def test_collect_counter_read_through_rate(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    payload = collect_json(
        capsys, db, shop_prometheus.url, 'shop_requests_total{instance="a",code="200"}', "shop_a",
        "--since", SINCE, "--until", UNTIL, "--step", "5m",
    )
    assert payload["query"] == 'rate(shop_requests_total{instance="a",code="200"}[300s])'
    values = dict(stored_rows(db, 'shop_a{code="200",instance="a"}'))
    monday_noon = HISTORY_START + timedelta(hours=12)
    monday_midnight = HISTORY_START + timedelta(days=1)
    saturday_noon = HISTORY_START + timedelta(days=5, hours=12)
    for moment in (monday_noon, monday_midnight, saturday_noon):
        assert values[moment] == pytest.approx(shop_rate_rps("a", moment) * (1 - ERROR_FRACTION_A), rel=1e-9)
    assert values[monday_noon] == pytest.approx(148.5)
    assert values[saturday_noon] / values[monday_noon] == pytest.approx(0.6)


def test_collect_counter_reset_never_negative(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    collect_json(
        capsys, db, shop_prometheus.url, 'shop_requests_total{instance="b"}', "shop_b",
        "--since", SINCE, "--until", UNTIL, "--step", "5m",
    )
    values = dict(stored_rows(db, 'shop_b{code="200",instance="b"}'))
    assert min(values.values()) > 0
    assert values[RESET_AT] == pytest.approx(shop_rate_rps("b", RESET_AT), rel=1e-9)


def test_collect_raw_counter_keeps_reset(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    payload = collect_json(
        capsys, db, shop_prometheus.url, 'shop_requests_total{instance="b"}', "shop_b_raw",
        "--since", SINCE, "--until", UNTIL, "--step", "5m", "--raw",
    )
    values = dict(stored_rows(db, 'shop_b_raw{code="200",instance="b"}'))
    assert payload["query"] == 'shop_requests_total{instance="b"}'
    assert values[RESET_AT] == pytest.approx(shop_rate_rps("b", RESET_AT) * 300)
    assert values[RESET_AT] < values[RESET_AT - timedelta(minutes=5)]


def test_collect_keeps_labels(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    payload = collect_json(capsys, db, shop_prometheus.url, "shop_requests_total", "req", "--since", SINCE, "--until", UNTIL, "--step", "1h")
    names = [item["name"] for item in payload["series_labels"]]
    assert names == ['req{code="200",instance="a"}', 'req{code="200",instance="b"}', 'req{code="500",instance="a"}']
    labels = {name: json.loads(text) for name, text in sql(db, "SELECT name, labels FROM series ORDER BY name")}
    assert labels['req{code="500",instance="a"}'] == {"code": "500", "instance": "a"}
    base_names = {row[0] for row in sql(db, "SELECT DISTINCT base_name FROM prometheus_series")}
    assert base_names == {"req"}


def test_collect_gauge_keeps_metric_name_label(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    payload = collect_json(capsys, db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "1h")
    assert payload["series_labels"] == [
        {"name": 'queue{instance="a"}', "labels": {"__name__": "shop_queue_length", "instance": "a"}}
    ]


def test_collect_resume_continues_from_last_sample(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    middle = HISTORY_START + timedelta(days=10)
    first = collect_json(capsys, db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", middle.isoformat(), "--step", "5m")
    second = collect_json(capsys, db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "5m")
    expected = queue_model(300)
    assert first["resumed_from"] is None
    assert second["resumed_from"] == middle.isoformat()
    assert second["samples_written"] == sum(1 for ts in expected if ts >= middle)
    assert second["samples_total"] == len(expected)


def test_collect_twice_no_duplicates(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    args = ("--since", SINCE, "--until", UNTIL, "--step", "5m")
    first = collect_json(capsys, db, shop_prometheus.url, "shop_requests_total", "req", *args)
    second = collect_json(capsys, db, shop_prometheus.url, "shop_requests_total", "req", *args)
    again = collect_json(capsys, db, shop_prometheus.url, "shop_requests_total", "req", *args, "--no-resume")
    assert second["samples_total"] == first["samples_total"]
    assert second["samples_written"] == 3  # the last point of each series, read again
    assert again["samples_written"] == first["samples_total"]
    assert again["samples_total"] == first["samples_total"]
    assert sql(db, "SELECT count(*) FROM (SELECT series_name, ts FROM samples GROUP BY ALL HAVING count(*) > 1)")[0][0] == 0


def test_collect_failed_chunk_keeps_written_chunks(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    proxy = FaultProxy(shop_prometheus.url, script=["pass", 503, 503]).start()
    try:
        code = collect(db, proxy.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "60s", "--retries", "1")
    finally:
        proxy.stop()
    err = capsys.readouterr().err
    chunk_one_end = HISTORY_START + timedelta(minutes=10_999)
    chunk_two = f"{(chunk_one_end + timedelta(minutes=1)).isoformat()}Z..{(chunk_one_end + timedelta(minutes=11_000)).isoformat()}Z"
    assert code == 2
    assert "answered HTTP 503 to the query 'shop_queue_length'" in err
    assert chunk_two in err
    assert "gave up after 2 attempts" in err
    expected = queue_model(60)
    assert sql(db, "SELECT count(*) FROM samples")[0][0] == sum(1 for ts in expected if ts <= chunk_one_end)
    status, collected_until, error = sql(db, "SELECT status, collected_until, error FROM prometheus_collections")[0]
    assert status == "failed"
    assert collected_until == chunk_one_end
    assert "HTTP 503" in error

    resumed = collect_json(capsys, db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "60s")
    assert resumed["resumed_from"] == chunk_one_end.isoformat()
    assert resumed["samples_total"] == len(expected)


def test_collect_interrupt_keeps_first_chunk(tmp_path: Path, shop_prometheus: PrometheusServer) -> None:
    store = Store(tmp_path / "s.duckdb")

    class StopAfterFirstChunk:
        def started(self, chunks: int) -> None:
            pass

        def chunk_written(self, chunk, samples: int) -> None:
            raise KeyboardInterrupt  # what Ctrl-C raises in the writing thread

        def close(self) -> None:
            pass

    request = CollectRequest(name="queue", query="shop_queue_length", since=HISTORY_START, until=HISTORY_END, step_s=60)
    with PrometheusClient(shop_prometheus.url) as client:
        with pytest.raises(KeyboardInterrupt):
            collect_prometheus(store, client, request, progress=StopAfterFirstChunk())
    chunk_one_end = HISTORY_START + timedelta(minutes=10_999)
    assert sql(store.path, "SELECT max(ts) FROM samples")[0][0] == chunk_one_end
    assert sql(store.path, "SELECT status, chunks_written FROM prometheus_collections")[0] == ("interrupted", 1)


def test_collect_json_shape(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    code = collect(db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "1h")
    out = capsys.readouterr().out
    payload = json.loads(out)
    assert code == 0
    assert out.count("\n") == 1
    assert {"series", "samples_written", "samples_total", "min_value", "max_value"} <= set(payload)
    assert payload["series"] == "queue"
    assert payload["samples_written"] == payload["samples_total"] == len(queue_model(3600))
    numbers = [v for v in queue_model(3600).values() if not math.isnan(v)]
    assert payload["min_value"] == min(numbers)
    assert payload["max_value"] == max(numbers)
    assert payload["first_ts"] == HISTORY_START.isoformat()


def test_collect_table_output(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    code = main(["collect", "--prometheus", shop_prometheus.url, "--query", "shop_requests_total", "--name", "req",
                 "--since", SINCE, "--until", UNTIL, "--step", "1h", "--db", str(db), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "rate(shop_requests_total[3600s])" in out
    assert 'req{code="500",instance="a"}' in out


CHECKOUT_OPTIONS = (
    "--requests-metric", "checkout_requests_total",
    "--duration-metric", "checkout_request_duration_seconds",
    "--cpu-metric", "checkout_cpu_seconds_total",
    "--memory-metric", "checkout_memory_bytes",
    "--up-metric", "checkout_up",
    "--since", (CHECKOUT_START + timedelta(minutes=10)).isoformat(),
    "--until", CHECKOUT_END.isoformat(),
    "--step", "60s",
    "--rate-window", "5m",
)
TOTAL_RPS = sum(CHECKOUT_RPS.values())
# p95 lies in the bucket from 0.5 s (90 %) to 1.0 s (98 %); histogram_quantile interpolates linearly.
P95_MS = 1000 * (0.5 + 0.5 * (0.95 - 0.9) / (0.98 - 0.9))
P99_MS = 1000 * (1.0 + 1.5 * (0.99 - 0.98) / (1.0 - 0.98))
P50_MS = 1000 * 0.1 * 0.5 / CHECKOUT_BUCKETS[0][1]

STANDARD_CASES = [
    ("request_rate", {"request_rate": TOTAL_RPS}),
    ("error_rate", {"error_rate": CHECKOUT_ERROR_FRACTION}),
    ("latency_p50_ms", {"latency_p50_ms": P50_MS}),
    ("latency_p95_ms", {"latency_p95_ms": P95_MS}),
    ("latency_p99_ms", {"latency_p99_ms": P99_MS}),
    ("latency_mean_ms", {"latency_mean_ms": 1000 * CHECKOUT_MEAN_S}),
    ("cpu_cores_by_instance", {f'cpu_cores_by_instance{{instance="{i}"}}': c for i, c in CHECKOUT_CPU_CORES.items()}),
    ("memory_bytes_by_instance", {f'memory_bytes_by_instance{{instance="{i}"}}': b for i, b in CHECKOUT_MEMORY_BYTES.items()}),
    ("instance_count", {"instance_count": 2.0}),
]


@pytest.mark.parametrize("standard,expected", STANDARD_CASES, ids=[case[0] for case in STANDARD_CASES])
def test_collect_standard_query_values(tmp_path: Path, capsys, shop_prometheus: PrometheusServer, standard: str, expected: dict) -> None:
    db = tmp_path / "s.duckdb"
    code = main(["collect", "--prometheus", shop_prometheus.url, "--standard", standard, "--db", str(db), "--json", *CHECKOUT_OPTIONS])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    assert payload["series"] == standard
    assert payload["samples_written"] == 51 * len(expected)  # 12:10 to 13:00 every minute
    for series, value in expected.items():
        values = [v for _, v in stored_rows(db, series)]
        assert values == pytest.approx([value] * 51, rel=1e-9), series


def test_collect_standard_sets_unit(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    assert main(["collect", "--prometheus", shop_prometheus.url, "--standard", "latency_p95_ms", "--db", str(db), "--json", *CHECKOUT_OPTIONS]) == 0
    assert sql(db, "SELECT unit FROM series")[0][0] == "ms"


def test_collect_bad_query_leaves_no_store(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    assert collect(db, shop_prometheus.url, "rate(shop_requests_total[5m]", "req", "--since", SINCE, "--until", UNTIL) == 2
    err = capsys.readouterr().err
    assert "rejected the query 'rate(shop_requests_total[5m]'" in err
    assert "parse error" in err
    assert not db.exists()


def test_collect_bad_query_leaves_store_unchanged(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    collect_json(capsys, db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "1h")
    before = digest(db)
    assert collect(db, shop_prometheus.url, "sum(", "other", "--since", SINCE, "--until", UNTIL) == 2
    assert digest(db) == before


def test_collect_unknown_metric_rejected(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    assert collect(db, shop_prometheus.url, "shop_nonexistent", "x", "--since", SINCE, "--until", UNTIL) == 2
    err = capsys.readouterr().err
    assert "returned no samples" in err
    assert "/api/v1/label/__name__/values" in err
    assert not db.exists()


def test_collect_other_query_same_name_rejected(tmp_path: Path, capsys, shop_prometheus: PrometheusServer) -> None:
    db = tmp_path / "s.duckdb"
    collect_json(capsys, db, shop_prometheus.url, "shop_queue_length", "queue", "--since", SINCE, "--until", UNTIL, "--step", "1h")
    assert collect(db, shop_prometheus.url, "shop_queue_length * 2", "queue", "--since", SINCE, "--until", UNTIL, "--step", "1h") == 2
    assert "give another --name" in capsys.readouterr().err


def test_collect_unreachable_names_query_and_window(tmp_path: Path, capsys) -> None:
    from loadprobe.target_process import free_port

    db = tmp_path / "s.duckdb"
    url = f"http://127.0.0.1:{free_port()}"
    assert collect(db, url, "up", "up", "--since", "2026-10-05T00:00:00Z", "--until", "2026-10-05T01:00:00Z", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert f"cannot connect to Prometheus at {url} for the query 'up' for 2026-10-05T00:00:00Z..2026-10-05T01:00:00Z" in err
    assert "Connection refused" in err
    assert not db.exists()


OPTION_ERRORS = [
    (["--csv", "x.csv", "--prometheus", "http://127.0.0.1:9"], "not both"),
    (["--csv", "x.csv", "--query", "up"], "--query needs --prometheus URL"),
    (["--prometheus", "http://127.0.0.1:9"], "exactly one of --query PROMQL or --standard NAME"),
    (["--prometheus", "http://127.0.0.1:9", "--query", "up", "--step", "500ms"], "not a whole number of seconds"),
    (["--prometheus", "http://127.0.0.1:9", "--query", "up", "--since", "yesterday"], "--since: invalid time 'yesterday'"),
    (["--prometheus", "http://127.0.0.1:9", "--query", "up", "--since", "1d", "--until", "2d"], "is not before --until"),
    (["--prometheus", "http://127.0.0.1:9", "--query", "up", "--name", "a{b}"], "without braces"),
    (["--prometheus", "http://u:p@127.0.0.1:9", "--query", "up"], "URL contains credentials"),
    (["--prometheus", "http://127.0.0.1:9/api/v1", "--query", "up"], "ends in /api/v1"),
    (["--prometheus", "http://127.0.0.1:9", "--standard", "nope"], "choose one of request_rate"),
]


@pytest.mark.parametrize("argv,expected", OPTION_ERRORS, ids=[case[1] for case in OPTION_ERRORS])
def test_collect_option_error(tmp_path: Path, capsys, argv: list[str], expected: str) -> None:
    db = tmp_path / "s.duckdb"
    assert main(["collect", "--name", "n", "--db", str(db), *argv]) == 2
    assert expected in capsys.readouterr().err
    assert not db.exists()


def test_collect_list_standard_json(capsys) -> None:
    assert main(["collect", "--list-standard", "--json", "--selector", 'job="api"']) == 0
    rows = json.loads(capsys.readouterr().out)["standard_queries"]
    queries = {row["name"]: row["query"] for row in rows}
    assert queries["request_rate"] == 'sum(rate(http_requests_total{job="api"}[300s]))'
    assert queries["instance_count"] == 'sum(up{job="api"})'
