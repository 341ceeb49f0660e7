"""Importing k6 results: --out json (both layouts, gzip), --out csv and the two summary formats.

Every fixture is written by the test itself, in the layout k6 documents for
each output, with known values to check against.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from capplan.cli import main
from capplan.errors import InputDataError
from capplan.store import Store
from capplan.store import runs as run_store
from loadprobe.importers import ImportOptions, import_file, read_file

T0 = datetime(2026, 11, 30, 10, 0, 0, tzinfo=timezone(timedelta(hours=2)))
URL = "http://127.0.0.1:8080/"


def k6_point(metric: str, time: datetime, value: float, tags: dict | None, *, old_layout: bool) -> str:
    data = {"time": time.isoformat(timespec="microseconds"), "value": value, "tags": tags}
    if old_layout:
        record = {"type": "Point", "data": data, "metric": metric}
    else:
        record = {"metric": metric, "type": "Point", "data": data}
    return json.dumps(record, separators=(",", ":"))


def k6_metric(metric: str, kind: str, *, old_layout: bool) -> str:
    if old_layout:
        data = {"type": kind, "contains": "default", "tainted": None, "thresholds": [], "submetrics": None,
                "sub": {"name": "", "parent": "", "suffix": "", "tags": None}}
        return json.dumps({"type": "Metric", "data": data, "metric": metric}, separators=(",", ":"))
    data = {"name": metric, "type": kind, "contains": "default", "thresholds": [], "submetrics": None}
    return json.dumps({"metric": metric, "type": "Metric", "data": data}, separators=(",", ":"))


def k6_stepped_lines(
    steps: list[tuple[int, int, float, float]], *, old_layout: bool, expected_tag: bool = True, dropped_per_s: int = 0
) -> list[str]:
    """Return k6 JSON lines for 30-second steps of (vus, requests/s, latency ms, failed fraction).

    Requests end evenly spread over each second; every n-th request of a
    step with a failed fraction gets status 503.
    """
    lines = [k6_metric(name, kind, old_layout=old_layout) for name, kind in
             (("vus", "gauge"), ("http_req_duration", "trend"), ("http_reqs", "counter"), ("iterations", "counter"))]
    for index, (vus, rate, latency_ms, failed) in enumerate(steps):
        every = round(1 / failed) if failed else 0
        for second in range(30):
            at = T0 + timedelta(seconds=index * 30 + second)
            lines.append(k6_point("vus", at, vus, None, old_layout=old_layout))
            if dropped_per_s:
                lines.append(k6_point("dropped_iterations", at, dropped_per_s, {"scenario": "default"}, old_layout=old_layout))
            for number in range(rate):
                end = at + timedelta(seconds=(number + 0.5) / rate)
                status = "503" if every and number % every == 0 else "200"
                tags = {"method": "GET", "name": URL, "status": status, "url": URL, "scenario": "default"}
                if expected_tag:
                    tags["expected_response"] = "true" if status == "200" else "false"
                lines.append(k6_point("http_req_duration", end, latency_ms, tags, old_layout=old_layout))
                lines.append(k6_point("http_reqs", end, 1, tags, old_layout=old_layout))
                lines.append(k6_point("iterations", end, 1, {"scenario": "default"}, old_layout=old_layout))
    return lines


STEPS = [(10, 50, 20.0, 0.0), (20, 100, 40.0, 0.0), (40, 200, 300.0, 0.1)]


def write_lines(path: Path, lines: list[str], *, gz: bool = False) -> Path:
    text = "\n".join(lines) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def run_cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.parametrize("old_layout", [True, False], ids=["old-layout", "new-layout"])
def test_k6_json_steps_from_vus(tmp_path, old_layout):
    path = write_lines(tmp_path / "k6.json", k6_stepped_lines(STEPS, old_layout=old_layout))
    result = read_file(str(path), ImportOptions())

    (run,) = result.runs
    assert result.format == "k6-json"
    assert run.info.tool == "k6"
    assert run.info.workload_model == "closed"
    assert run.requests == 30 * (50 + 100 + 200)
    assert run.errors == 30 * 20
    assert [step["users"] for step in run.steps] == [10, 20, 40]
    for step, (vus, rate, latency_ms, failed) in zip(run.steps, STEPS):
        assert step["offered_rps"] == pytest.approx(rate, rel=0.03)
        assert step["p95_ms"] == pytest.approx(latency_ms, rel=0.002)
        assert step["error_rate"] == pytest.approx(failed, abs=0.01)
        assert step["ramp"] is False


def test_k6_json_errors_by_kind(tmp_path):
    path = write_lines(tmp_path / "k6.json", k6_stepped_lines(STEPS, old_layout=False))
    run = read_file(str(path), ImportOptions()).runs[0]

    assert run.steps[0]["errors_by_kind"] == {}
    assert sum(step["errors_by_kind"].get("http_5xx", 0) for step in run.steps) == 600
    # Requests go to the step in which they started: a few 300 ms requests that
    # ended in the third step started in the second.
    assert set(run.steps[2]["errors_by_kind"]) == {"http_5xx"}


def test_k6_json_without_expected_response_tag(tmp_path):
    # k6 before 0.31 has no expected_response tag: a 503 still counts as failed.
    path = write_lines(tmp_path / "k6.json", k6_stepped_lines(STEPS, old_layout=True, expected_tag=False))
    run = read_file(str(path), ImportOptions()).runs[0]

    assert run.errors == 30 * 20


def test_k6_json_gzip_same_as_plain(tmp_path):
    lines = k6_stepped_lines(STEPS[:1], old_layout=False)
    plain = read_file(str(write_lines(tmp_path / "plain.json", lines)), ImportOptions()).runs[0]
    packed = read_file(str(write_lines(tmp_path / "packed.gz", lines, gz=True)), ImportOptions()).runs[0]

    assert packed.requests == plain.requests
    assert packed.steps[0]["p95_ms"] == plain.steps[0]["p95_ms"]


def test_k6_json_offset_stored_as_utc(tmp_path, store):
    path = write_lines(tmp_path / "k6.json", k6_stepped_lines(STEPS[:1], old_layout=False))
    result = import_file(store, str(path), ImportOptions())

    run = run_store.get_run(store, result.runs[0].run_id)
    steps = run_store.get_steps(store, result.runs[0].run_id)
    # 10:00 at +02:00 is 08:00 UTC; the first request started 20 ms before its end at 10:00:00.01.
    assert run["started_at"].to_pydatetime() == pytest.approx(datetime(2026, 11, 30, 8, 0, 0), abs=timedelta(seconds=1))
    assert steps["started_at"][0].to_pydatetime() == run["started_at"].to_pydatetime()
    assert run["utc_offset_min"] == 120
    assert run["kind"] == "imported"
    assert run["tool"] == "k6"
    assert run["source_format"] == "k6-json"


def test_k6_json_malformed_lines_counted(tmp_path, caplog):
    lines = k6_stepped_lines(STEPS[:1], old_layout=False)
    lines.insert(100, '{"metric":"http_req_duration","type":"Point","data":{"time":"not a time","value":1,"tags":{}}}')
    lines.insert(200, "garbage that is not json")
    lines.append('{"metric":"http_reqs","type":"Point","data":{"time":"2026-11-30T10:0')
    path = write_lines(tmp_path / "k6.json", lines)
    result = read_file(str(path), ImportOptions())

    assert result.malformed_lines == 3
    assert result.runs[0].requests == 30 * 50
    assert "line 101" in caplog.text
    assert "line 201" in caplog.text
    assert f"line {len(lines)}" in caplog.text


def test_k6_json_dropped_iterations_open_model(tmp_path):
    lines = k6_stepped_lines([(50, 100, 20.0, 0.0), (50, 200, 20.0, 0.0)], old_layout=False, dropped_per_s=10)
    run = read_file(str(write_lines(tmp_path / "k6.json", lines)), ImportOptions()).runs[0]

    assert run.info.workload_model == "open"
    assert len(run.steps) == 2
    first, second = run.steps
    assert first["dropped"] == pytest.approx(300, abs=10)
    assert first["offered_rps"] == pytest.approx(110, rel=0.03)
    assert first["achieved_rps"] == pytest.approx(100, rel=0.03)
    assert second["offered_rps"] == pytest.approx(210, rel=0.03)


def test_k6_json_slo_sets_safe_load(tmp_path, store):
    path = write_lines(tmp_path / "k6.json", k6_stepped_lines(STEPS, old_layout=False))
    result = import_file(store, str(path), ImportOptions(slo_p95_ms=200.0, max_error_rate=0.01))

    run = run_store.get_run(store, result.runs[0].run_id)
    steps = run_store.get_steps(store, result.runs[0].run_id)
    assert list(steps["passed"]) == [True, True, False]
    assert "p95" in steps["fail_reason"][2]
    assert run["breaking_point_rps"] == pytest.approx(200, rel=0.03)
    assert run["safe_rps"] == pytest.approx(0.8 * run["breaking_point_rps"])
    assert run["recommended_rps"] == pytest.approx(0.6 * run["breaking_point_rps"])


def test_k6_json_without_slo_no_verdict(tmp_path, store):
    path = write_lines(tmp_path / "k6.json", k6_stepped_lines(STEPS, old_layout=False))
    result = import_file(store, str(path), ImportOptions())

    run = run_store.get_run(store, result.runs[0].run_id)
    steps = run_store.get_steps(store, result.runs[0].run_id)
    assert all(steps["passed"])
    assert steps["fail_reason"].isna().all()
    assert steps["send_lag_p99_ms"].isna().all()
    assert steps["generator_cpu"].isna().all()
    assert not steps["generator_saturated"].any()
    assert pd.isna(run["safe_rps"])
    assert pd.isna(run["breaking_point_rps"])


def test_import_cli_json_payload(tmp_path, capsys):
    path = write_lines(tmp_path / "k6.json", k6_stepped_lines(STEPS, old_layout=False))
    payload = run_cli_json(capsys, ["import", str(path), "--json", "--db", str(tmp_path / "c.duckdb"), "--slo-p95", "200ms"])

    (run,) = payload["runs"]
    assert set(run) >= {"run_id", "tool", "requests", "errors", "steps"}
    assert run["tool"] == "k6"
    assert run["requests"] == 10500
    assert run["errors"] == 600
    assert len(run["steps"]) == 3
    assert run["steps"][2]["passed"] is False
    assert run["safe_rps"] == pytest.approx(160, rel=0.03)


def k6_csv_rows(header: list[str], time_text) -> list[str]:
    """Return CSV lines for one 30-second step at 50 requests/s, 20 ms each, every tenth a 500."""
    rows = [",".join(header)]
    for second in range(30):
        at = T0 + timedelta(seconds=second)
        values = {"metric_name": "vus", "timestamp": time_text(at), "metric_value": "10.000000"}
        rows.append(",".join(values.get(column, "") for column in header))
        for number in range(50):
            end = at + timedelta(seconds=(number + 0.5) / 50)
            status = "500" if number % 10 == 0 else "200"
            for metric, value in (("http_reqs", "1.000000"), ("http_req_duration", "20.000000")):
                values = {
                    "metric_name": metric, "timestamp": time_text(end), "metric_value": value, "method": "GET",
                    "name": URL, "proto": "HTTP/1.1", "scenario": "default", "status": status, "url": URL,
                    "expected_response": "true" if status == "200" else "false", "error_code": "1500" if status == "500" else "",
                }
                rows.append(",".join(values.get(column, "") for column in header))
    return rows


OLD_CSV_HEADER = ["metric_name", "timestamp", "metric_value", "check", "error", "error_code", "group", "method", "name",
                  "proto", "scenario", "status", "subproto", "tls_version", "url", "extra_tags"]
NEW_CSV_HEADER = ["metric_name", "timestamp", "metric_value", "check", "error", "error_code", "expected_response", "group",
                  "method", "name", "proto", "scenario", "service", "status", "subproto", "tls_version", "url",
                  "extra_tags", "metadata"]
TIME_FORMATS = {
    "unix": lambda at: str(int(at.timestamp())),
    "unix_milli": lambda at: str(int(round(at.timestamp() * 1000))),
    "unix_nano": lambda at: str(int(round(at.timestamp() * 1e6)) * 1000),
    "rfc3339": lambda at: at.isoformat(timespec="microseconds"),
}


@pytest.mark.parametrize("header", [OLD_CSV_HEADER, NEW_CSV_HEADER], ids=["old-header", "new-header"])
@pytest.mark.parametrize("time_format", list(TIME_FORMATS))
def test_k6_csv_headers_and_time_formats(tmp_path, header, time_format):
    path = tmp_path / "k6.csv"
    path.write_text("\n".join(k6_csv_rows(header, TIME_FORMATS[time_format])) + "\n")
    result = read_file(str(path), ImportOptions())

    (run,) = result.runs
    assert result.format == "k6-csv"
    assert run.requests == 1500
    assert run.errors == 150
    assert run.steps[0]["users"] == 10
    assert run.steps[0]["p50_ms"] == pytest.approx(20.0, rel=0.002)
    assert run.steps[0]["errors_by_kind"] == {"http_5xx": 150}
    assert run.info.utc_offset_min == (120 if time_format == "rfc3339" else None)
    # Whole-second timestamps blur the step's edges by up to a second.
    assert run.steps[0]["offered_rps"] == pytest.approx(50, rel=0.05)


LEGACY_SUMMARY = {
    "root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e", "groups": {}, "checks": {}},
    "metrics": {
        "http_req_duration": {"avg": 31.5, "min": 10.1, "med": 25.0, "max": 410.0, "p(90)": 60.0, "p(95)": 95.5,
                              "thresholds": {"p(95)<500": False, "p(95)<50": True}},
        "http_reqs": {"count": 6000, "rate": 100.0},
        "http_req_failed": {"passes": 120, "fails": 5880, "value": 0.02, "thresholds": {"rate<0.01": True}},
        "vus": {"value": 5, "min": 1, "max": 25},
        "vus_max": {"value": 25, "min": 25, "max": 25},
        "iterations": {"count": 6000, "rate": 100.0},
    },
}
HANDLE_SUMMARY = {
    "root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e", "groups": [], "checks": []},
    "options": {"summaryTrendStats": ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"], "summaryTimeUnit": "", "noColor": False},
    "state": {"isStdOutTTY": False, "isStdErrTTY": False, "testRunDurationMs": 60000.0},
    "metrics": {
        "http_req_duration": {"type": "trend", "contains": "time",
                              "values": {"avg": 31.5, "min": 10.1, "med": 25.0, "max": 410.0, "p(90)": 60.0,
                                         "p(95)": 95.5, "p(99)": 250.0},
                              "thresholds": {"p(95)<500": {"ok": True}, "p(95)<50": {"ok": False}}},
        "http_reqs": {"type": "counter", "contains": "default", "values": {"count": 6000, "rate": 100.0}},
        "http_req_failed": {"type": "rate", "contains": "default", "values": {"rate": 0.02, "passes": 120, "fails": 5880}},
        "dropped_iterations": {"type": "counter", "contains": "default", "values": {"count": 600, "rate": 10.0}},
        "iterations": {"type": "counter", "contains": "default", "values": {"count": 6000, "rate": 100.0}},
        "vus_max": {"type": "gauge", "contains": "default", "values": {"value": 30, "min": 30, "max": 30}},
    },
}


def test_k6_summary_export_legacy_semantics(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(LEGACY_SUMMARY, indent=2))
    run = read_file(str(path), ImportOptions(started_at=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc))).runs[0]

    (step,) = run.steps
    assert run.info.source_format == "k6-summary-export"
    assert step["requests"] == 6000
    # passes of http_req_failed count the failed requests.
    assert step["errors"] == 120
    assert step["duration_s"] == pytest.approx(60.0)
    assert step["p95_ms"] == 95.5
    assert step["p99_ms"] is None
    assert step["users"] == 25
    assert step["started_at"] == datetime(2026, 12, 1, 9, 0)
    thresholds = {entry["threshold"]: entry["ok"] for entry in run.info.config["k6_thresholds"]}
    # In --summary-export a threshold value of true means the threshold failed.
    assert thresholds == {"p(95)<500": True, "p(95)<50": False, "rate<0.01": False}


def test_k6_handle_summary(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(HANDLE_SUMMARY))
    run = read_file(str(path), ImportOptions()).runs[0]

    (step,) = run.steps
    assert run.info.source_format == "k6-handle-summary"
    assert run.info.workload_model == "open"
    assert step["errors"] == 120
    assert step["p99_ms"] == 250.0
    assert step["dropped"] == 600
    assert step["offered_rps"] == pytest.approx(110.0)
    assert step["achieved_rps"] == pytest.approx(98.0)
    thresholds = {entry["threshold"]: entry["ok"] for entry in run.info.config["k6_thresholds"]}
    assert thresholds == {"p(95)<500": True, "p(95)<50": False}
    assert any("modification time" in note for note in run.info.notes)


def test_not_a_result_file_rejected(tmp_path):
    db = tmp_path / "never.duckdb"
    path = tmp_path / "notes.json"
    path.write_text('{"hello": "world"}\n')
    with pytest.raises(InputDataError) as excinfo:
        import_file(Store(db), str(path), ImportOptions())

    assert "not a load-test result file" in str(excinfo.value)
    assert not db.exists()


def test_k6_json_truncated_gzip_keeps_data(tmp_path, caplog):
    packed = gzip.compress(("\n".join(k6_stepped_lines(STEPS[:1], old_layout=False)) + "\n").encode())
    path = tmp_path / "killed.json.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    result = read_file(str(path), ImportOptions())

    assert 0 < result.runs[0].requests < 1500
    assert "ends early" in caplog.text
