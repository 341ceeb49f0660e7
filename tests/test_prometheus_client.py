"""The Prometheus query client: retries, errors, credentials, time grid and result parsing.

Faults come from FaultProxy, a real HTTP server in front of the real
Prometheus that responds with scripted 5xx errors, slow responses and dropped
connections, because a healthy Prometheus cannot produce them on demand.
"""

from __future__ import annotations

import base64
import gc
import json
import logging
import math
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from capplan.cli import main
from capplan.errors import ConfigError, InputDataError
from capplan.store import Store
from loadprobe.prometheus.auth import PrometheusAuth, auth_from_environment, normalise_prometheus_url
from loadprobe.prometheus.catalogue import MetricNames, read_counter_through_rate, standard_query
from loadprobe.prometheus.client import PrometheusClient, PrometheusQueryError
from loadprobe.prometheus.collector import cyclic_gc_paused
from loadprobe.prometheus.matrix import matrix_to_chunk, series_key
from loadprobe.prometheus.sample_store import write_chunk
from loadprobe.prometheus.timegrid import align_window, parse_time_bound, plan_chunks
from prometheus_server import HISTORY_START, FaultProxy, PrometheusServer, shop_prometheus

__all__ = ["shop_prometheus"]  # the fixture, imported so pytest finds it here

REAL_RESULTS = Path("/work/shared/data/real/prometheus-api-client")
WINDOW = (HISTORY_START, HISTORY_START + timedelta(hours=1))


@pytest.fixture
def proxy(shop_prometheus: PrometheusServer):
    server = FaultProxy(shop_prometheus.url).start()
    try:
        yield server
    finally:
        server.stop()


def client_for(url: str, **options) -> PrometheusClient:
    options.setdefault("backoff_s", 0.01)
    return PrometheusClient(url, **options)


def test_client_retries_5xx_then_succeeds(proxy: FaultProxy, caplog: pytest.LogCaptureFixture) -> None:
    proxy.script[:] = [503, 502]
    caplog.set_level(logging.WARNING, logger="loadprobe.prometheus.client")
    with client_for(proxy.url, retries=3) as client:
        result = client.query_range("shop_queue_length", *WINDOW, 300)
    assert len(result) == 1
    assert len(result[0]["values"]) == 13
    assert len(proxy.api_requests()) == 3
    assert "(HTTP 503); retry 1 of 3" in caplog.text
    assert "(HTTP 502); retry 2 of 3" in caplog.text


def test_client_gives_up_after_retries(proxy: FaultProxy) -> None:
    proxy.script[:] = [500, 500, 500]
    with client_for(proxy.url, retries=2) as client:
        with pytest.raises(PrometheusQueryError) as raised:
            client.query_range("shop_queue_length", *WINDOW, 300)
    message = str(raised.value)
    assert "answered HTTP 500 to the query 'shop_queue_length' for 2026-10-05T00:00:00Z..2026-10-05T01:00:00Z" in message
    assert "gave up after 3 attempts" in message
    assert raised.value.status == 500
    assert len(proxy.api_requests()) == 3


def test_client_backoff_doubles(proxy: FaultProxy) -> None:
    proxy.script[:] = [503, 503, 503]
    waits: list[float] = []
    with PrometheusClient(proxy.url, retries=3, backoff_s=0.5, sleep=waits.append) as client:
        client.query_range("shop_queue_length", *WINDOW, 300)
    assert waits == [0.5, 1.0, 2.0]


def test_client_timeout_retried(proxy: FaultProxy) -> None:
    proxy.script[:] = ["slow"]
    proxy.slow_s = 1.5
    with client_for(proxy.url, timeout_s=0.3, retries=1) as client:
        result = client.query_range("shop_queue_length", *WINDOW, 300)
    assert len(result[0]["values"]) == 13


def test_client_timeout_reported(proxy: FaultProxy) -> None:
    proxy.script[:] = ["slow", "slow"]
    proxy.slow_s = 1.5
    with client_for(proxy.url, timeout_s=0.3, retries=1) as client:
        with pytest.raises(PrometheusQueryError) as raised:
            client.query("shop_queue_length", HISTORY_START)
    assert "timed out on the query 'shop_queue_length' at 2026-10-05T00:00:00Z after 0.3 s" in str(raised.value)
    assert raised.value.retryable


def test_client_dropped_connection_retried(proxy: FaultProxy) -> None:
    proxy.script[:] = ["drop"]
    with client_for(proxy.url, retries=1) as client:
        result = client.query("shop_queue_length", HISTORY_START + timedelta(minutes=5))
    assert result[0]["value"][1] == "1"
    assert len(proxy.api_requests("/api/v1/query")) == 2


def test_client_bad_query_not_retried(proxy: FaultProxy) -> None:
    with client_for(proxy.url, retries=3) as client:
        with pytest.raises(PrometheusQueryError) as raised:
            client.query_range("sum(", *WINDOW, 300)
    assert "rejected the query 'sum(' for" in str(raised.value)
    assert "parse error" in str(raised.value)
    assert raised.value.status == 400
    assert len(proxy.api_requests()) == 1


def test_client_too_many_points_rejected(shop_prometheus: PrometheusServer) -> None:
    with client_for(shop_prometheus.url) as client:
        with pytest.raises(PrometheusQueryError) as raised:
            client.query_range("up", HISTORY_START, HISTORY_START + timedelta(seconds=11_001), 1)
    assert "exceeded maximum resolution of 11,000 points per timeseries" in str(raised.value)


def test_client_wrong_path_explains_base_url(shop_prometheus: PrometheusServer) -> None:
    with client_for(shop_prometheus.url + "/prefix") as client:
        with pytest.raises(PrometheusQueryError) as raised:
            client.query("up", HISTORY_START)
    assert "answered HTTP 404" in str(raised.value)
    assert "give the base URL that serves /api/v1" in str(raised.value)


def test_client_unauthorised_names_environment(proxy: FaultProxy) -> None:
    proxy.expected_authorization = "Bearer right-token"
    with client_for(proxy.url) as client:
        with pytest.raises(PrometheusQueryError) as raised:
            client.query("up", HISTORY_START)
    assert "answered HTTP 401" in str(raised.value)
    assert "CAPPLAN_PROM_TOKEN" in str(raised.value)


def test_client_sends_bearer_token(proxy: FaultProxy) -> None:
    proxy.expected_authorization = "Bearer s3cret-token"
    auth = auth_from_environment({"CAPPLAN_PROM_TOKEN": "s3cret-token"})
    with client_for(proxy.url, auth=auth) as client:
        client.query("shop_queue_length", HISTORY_START + timedelta(minutes=5))
    assert proxy.api_requests("/api/v1/query")[0].headers["authorization"] == "Bearer s3cret-token"


def test_client_sends_basic_auth(proxy: FaultProxy) -> None:
    proxy.expected_authorization = "Basic " + base64.b64encode(b"planner:pa55word").decode()
    auth = auth_from_environment({"CAPPLAN_PROM_USER": "planner", "CAPPLAN_PROM_PASSWORD": "pa55word"})
    with client_for(proxy.url, auth=auth) as client:
        result = client.query("shop_queue_length", HISTORY_START + timedelta(minutes=5))
    assert result


def test_client_sends_extra_header(proxy: FaultProxy) -> None:
    auth = auth_from_environment({}, extra_headers={"X-Scope-OrgID": "team-a"})
    with client_for(proxy.url, auth=auth) as client:
        client.query("up", HISTORY_START)
    assert proxy.api_requests("/api/v1/query")[0].headers["x-scope-orgid"] == "team-a"


def all_text_in_store(db: Path) -> str:
    """Return every text and JSON value of every table, joined."""
    parts = []
    with duckdb.connect(str(db), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON') AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE')"
        ).fetchall()
        for table, column in columns:
            parts += [str(row[0]) for row in con.execute(f'SELECT "{column}" FROM "{table}"').fetchall()]
    return "\n".join(parts)


def test_collect_credentials_never_logged_or_stored(
    tmp_path: Path, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, capsys, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok-7f3a9c-never-store-me"
    monkeypatch.setenv("CAPPLAN_PROM_TOKEN", token)
    proxy.expected_authorization = f"Bearer {token}"
    proxy.script[:] = ["pass", 503]
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "s.duckdb"
    argv = ["collect", "--prometheus", proxy.url, "--query", "shop_queue_length", "--name", "queue", "--db", str(db),
            "--since", "2026-10-05T00:00:00Z", "--until", "2026-10-10T00:00:00Z", "--step", "60s", "--json", "-v"]
    assert main(argv) == 0
    assert main(argv) == 0  # resumed; its first request gets a 503 response and is retried
    captured = capsys.readouterr()
    # The CLI sends its log to stderr, so the log lines are in captured.err.
    assert "collecting queue from" in captured.err
    assert "retry 1 of 3" in " ".join(captured.err.split())
    assert token not in caplog.text
    assert token not in captured.out + captured.err
    assert token not in all_text_in_store(db)
    assert token.encode() not in db.read_bytes()
    assert all(r.headers["authorization"] == f"Bearer {token}" for r in proxy.api_requests())


def test_auth_both_kinds_rejected() -> None:
    with pytest.raises(ConfigError, match="unset one of them"):
        auth_from_environment({"CAPPLAN_PROM_TOKEN": "t", "CAPPLAN_PROM_USER": "u", "CAPPLAN_PROM_PASSWORD": "p"})


def test_auth_user_without_password_rejected() -> None:
    with pytest.raises(ConfigError, match="CAPPLAN_PROM_PASSWORD is not set"):
        auth_from_environment({"CAPPLAN_PROM_USER": "u"})


def test_auth_header_with_credentials_rejected() -> None:
    with pytest.raises(ConfigError, match="must not be given on the command line"):
        auth_from_environment({}, extra_headers={"Authorization": "Bearer x"})


def test_auth_repr_hides_secrets() -> None:
    auth = PrometheusAuth(bearer_token="abc123secret", basic=None)
    assert "abc123secret" not in repr(auth)
    assert auth.redact("token abc123secret here") == "token *** here"


def test_url_trailing_slash_removed() -> None:
    assert normalise_prometheus_url("http://127.0.0.1:9090/") == "http://127.0.0.1:9090"
    assert normalise_prometheus_url("http://mimir:8080/prometheus/") == "http://mimir:8080/prometheus"


def test_grid_chunks_cover_window_once() -> None:
    first, last = align_window(datetime(2026, 1, 1, 0, 0, 7), datetime(2026, 1, 2, 0, 0, 0), 60)
    chunks = plan_chunks(first, last, 60, points_per_chunk=500)
    assert first == datetime(2026, 1, 1, 0, 1)
    assert last == datetime(2026, 1, 2)
    assert sum(chunk.points for chunk in chunks) == 1440
    assert all(chunk.points <= 500 for chunk in chunks)
    assert all(b.start - a.end == timedelta(seconds=60) for a, b in zip(chunks, chunks[1:]))


def test_grid_rejects_chunks_over_limit() -> None:
    with pytest.raises(ConfigError, match="outside 1..11001"):
        plan_chunks(datetime(2026, 1, 1), datetime(2026, 1, 2), 60, points_per_chunk=11_002)


def test_time_bound_offset_converted_to_utc() -> None:
    assert parse_time_bound("2026-10-05T02:00:00+02:00", "--since") == datetime(2026, 10, 5)
    assert parse_time_bound("90d", "--since", now=datetime(2026, 12, 4)) == datetime(2026, 9, 5)


def test_series_key_sorts_and_escapes() -> None:
    labels = {"__name__": "x", "path": 'a"b\\c', "code": "200"}
    assert series_key("api", labels) == 'api{code="200",path="a\\"b\\\\c"}'
    assert series_key("api", {"__name__": "x"}) == "api"


def test_matrix_names_differing_only_by_metric_rejected() -> None:
    result = [
        {"metric": {"__name__": "a_total", "job": "x"}, "values": [[1.0, "1"]]},
        {"metric": {"__name__": "b_total", "job": "x"}, "values": [[1.0, "2"]]},
    ]
    with pytest.raises(InputDataError, match="differ only in their metric name"):
        matrix_to_chunk(result, "n")


def test_matrix_parses_special_values() -> None:
    chunk = matrix_to_chunk([{"metric": {}, "values": [[1.5, "NaN"], [2.5, "+Inf"], [3.5, "-Inf"], [4.5, "1e-3"]]}], "n")
    values = chunk.table.column("value").to_pylist()
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf, 0.001]
    assert chunk.table.column("ts").to_pylist()[0] == datetime(1970, 1, 1, 0, 0, 1, 500_000)


def test_matrix_values_match_python_float() -> None:
    texts = ["268.72848822480245", "0.1", "-0", "1e-320", "4.9e-324", "1.7976931348623157e+308",
             "100000000000000000000", "123456789.12345679", "-2.5e-07", "NaN", "+Inf", "-Inf"]
    chunk = matrix_to_chunk([{"metric": {}, "values": [[float(i), text] for i, text in enumerate(texts)]}], "n")
    parsed = chunk.table.column("value").to_numpy()
    expected = np.array([float(text) for text in texts])
    assert parsed.tobytes() == expected.tobytes()  # bit for bit, so -0.0 and NaN count too


def test_matrix_accepts_values_sent_as_numbers() -> None:
    chunk = matrix_to_chunk([{"metric": {}, "values": [[1.0, 2.5], [2.0, " 3 "], [3.0, 4]]}], "n")
    assert chunk.table.column("value").to_pylist() == [2.5, 3.0, 4.0]


def test_matrix_rejects_value_not_a_number() -> None:
    with pytest.raises(InputDataError, match="sample value 'ten', which is not a number"):
        matrix_to_chunk([{"metric": {}, "values": [[1.0, "1"], [2.0, "ten"]]}], "n")


def test_matrix_rejects_repeated_timestamp() -> None:
    result = [
        {"metric": {"instance": "a"}, "values": [[10.0, "1"], [20.0, "2"]]},
        {"metric": {"instance": "b"}, "values": [[10.0, "1"], [20.0, "2"], [20.0, "3"]]},
    ]
    with pytest.raises(InputDataError, match=r"series 'n\{instance=\"b\"\}' with timestamp 1970-01-01T00:00:20\.000000 UTC"):
        matrix_to_chunk(result, "n")


def test_write_chunk_overlap_replaces_values(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    row = {"series_name": "n", "prometheus_url": "http://127.0.0.1:9", "requested_query": "q", "query": "q",
           "step_s": 60, "window_start": datetime(1970, 1, 1), "window_end": datetime(1970, 1, 1)}
    first = matrix_to_chunk([
        {"metric": {"instance": "a"}, "values": [[60.0 * k, "1"] for k in range(10)]},
        {"metric": {"instance": "b"}, "values": [[60.0 * k, "1"] for k in range(10)]},
    ], "n")
    # Overlaps a's last five points, leaves b out and brings a new series c.
    second = matrix_to_chunk([
        {"metric": {"instance": "a"}, "values": [[60.0 * k, "2"] for k in range(5, 15)]},
        {"metric": {"instance": "c"}, "values": [[60.0 * k, "2"] for k in range(5, 15)]},
    ], "n")
    collection_id = write_chunk(store, collection_id=None, collection_row=row, chunk=first,
                                chunk_end=datetime(1970, 1, 1), unit=None, now=datetime(2026, 12, 4))
    write_chunk(store, collection_id=collection_id, collection_row=row, chunk=second,
                chunk_end=datetime(1970, 1, 1), unit=None, now=datetime(2026, 12, 4))

    with duckdb.connect(str(store.path), read_only=True) as con:
        values = dict(con.execute(
            "SELECT series_name, list(value ORDER BY ts) FROM samples GROUP BY series_name"
        ).fetchall())
    assert values['n{instance="a"}'] == [1.0] * 5 + [2.0] * 10
    assert values['n{instance="b"}'] == [1.0] * 10
    assert values['n{instance="c"}'] == [2.0] * 10


def test_gc_pause_restores_previous_state() -> None:
    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()

    with pytest.raises(RuntimeError):
        with cyclic_gc_paused():
            raise RuntimeError("parse failed")
    assert gc.isenabled()

    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()  # switched off by the caller, so it stays off
    finally:
        gc.enable()


def test_counter_selector_wrapped_in_rate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loadprobe.prometheus.catalogue")
    assert read_counter_through_rate('http_requests_total{job="a"}', 300) == 'rate(http_requests_total{job="a"}[300s])'
    assert read_counter_through_rate("sum(rate(x_total[5m]))", 300) == "sum(rate(x_total[5m]))"
    assert read_counter_through_rate("node_memory_bytes", 300) == "node_memory_bytes"
    assert "pass --raw" in caplog.text


def test_standard_query_uses_metric_names() -> None:
    names = MetricNames(requests_total="api_calls_total", status_label="status", error_status="5..|429", selector='env="prod"')
    rendered = standard_query("error_rate").render(names, 120)
    assert rendered == (
        '(sum(rate(api_calls_total{env="prod",status=~"5..|429"}[120s])) or vector(0)) '
        '/ sum(rate(api_calls_total{env="prod"}[120s]))'
    )


def test_metric_names_reject_invalid_name() -> None:
    with pytest.raises(ConfigError, match="--requests-metric 'http-requests' is not a Prometheus metric name"):
        MetricNames(requests_total="http-requests")


@pytest.mark.skipif(not REAL_RESULTS.is_dir(), reason=f"{REAL_RESULTS} is not on this machine")
def test_matrix_reads_real_query_range_results(tmp_path: Path) -> None:
    path = sorted(REAL_RESULTS.glob("up_*.json"))[0]
    result = json.loads(path.read_text())
    chunk = matrix_to_chunk(result, "up")
    store = Store(tmp_path / "s.duckdb")
    row = {"series_name": "up", "prometheus_url": "http://127.0.0.1:9", "requested_query": "up", "query": "up",
           "step_s": 20, "window_start": datetime(2019, 7, 28), "window_end": datetime(2019, 7, 29)}
    write_chunk(store, collection_id=None, collection_row=row, chunk=chunk, chunk_end=datetime(2019, 7, 29),
                unit=None, now=datetime(2026, 12, 4))
    first_series = result[0]
    first_key = series_key("up", first_series["metric"])
    with duckdb.connect(str(store.path), read_only=True) as con:
        stored = con.execute("SELECT count(*), count(DISTINCT series_name) FROM samples").fetchone()
        first_ts, first_value = con.execute(
            "SELECT ts, value FROM samples WHERE series_name = ? ORDER BY ts LIMIT 1", [first_key]
        ).fetchone()
        labels = json.loads(con.execute("SELECT labels FROM series WHERE name = ?", [first_key]).fetchone()[0])
    assert stored == (sum(len(s["values"]) for s in result), len(result))
    # Millisecond jitter in the timestamps survives the conversion.
    assert first_ts == datetime.utcfromtimestamp(first_series["values"][0][0])
    assert first_ts.microsecond == round(first_series["values"][0][0] % 1 * 1e6, -3)
    assert first_value == float(first_series["values"][0][1])
    assert labels == first_series["metric"]
