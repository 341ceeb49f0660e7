"""The step splitter, format detection and the store side of ``capplan import``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from capplan.cli import main
from capplan.errors import InputDataError
from capplan.store import Store
from capplan.store import runs as run_store
from loadprobe.importers import ImportOptions, SourceFile, detect_format, import_file
from loadprobe.importers.error_kinds import kind_from_k6, kind_from_text
from loadprobe.importers.step_split import split_steps
from loadprobe.importers.timestamps import parse_rfc3339

SPLIT = {"min_step_s": 5, "ramp_window_s": 10, "fixed_window_s": 30}


def edges(windows) -> list[tuple[float, float, bool]]:
    return [(window.start_s, window.end_s, window.ramp) for window in windows]


def test_split_staircase_users():
    level = np.array([5.0] * 30 + [7.5] + [10.0] * 29 + [20.0] * 30)
    windows = split_steps(level, 1000, kind="users", **SPLIT)

    # The one second of transition (7.5 users) joins the plateau it leads to.
    assert edges(windows) == [(1000, 1030, False), (1030, 1060, False), (1060, 1090, False)]


def test_split_linear_ramp_then_plateau():
    level = np.concatenate([np.arange(1.0, 41.0), np.full(30, 40.0)])
    windows = split_steps(level, 0, kind="users", **SPLIT)

    ramps = [window for window in windows if window.ramp]
    assert len(ramps) == 4
    assert all(9 <= window.end_s - window.start_s <= 11 for window in ramps)
    assert edges(windows)[-1] == (39, 70, False)


def test_split_gaps_filled_forward():
    level = np.full(40, np.nan)
    level[0], level[20] = 10.0, 30.0
    windows = split_steps(level, 0, kind="users", **SPLIT)

    assert edges(windows) == [(0, 20, False), (20, 40, False)]


def test_split_without_level_fixed_windows():
    windows = split_steps(np.full(95, np.nan), 0, kind="users", **SPLIT)

    assert [window.end_s - window.start_s for window in windows] == [32, 31, 32]


def test_split_noisy_arrivals_plateaus():
    rng = np.random.default_rng(3)
    level = np.concatenate([rng.poisson(100, 40), rng.poisson(200, 40), rng.poisson(300, 40)]).astype(float)
    windows = split_steps(level, 0, kind="rate", **SPLIT)

    assert edges(windows) == [(0, 40, False), (40, 80, False), (80, 120, False)]


def test_rfc3339_nanoseconds_and_offset():
    seconds, offset = parse_rfc3339("2017-05-09T14:34:45.625742514+02:00")

    assert seconds == pytest.approx(1494333285.625742514, abs=1e-6)
    assert offset == 120
    assert parse_rfc3339("2017-05-09T12:34:45Z") == (1494333285.0, 0)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("HTTPError('503 Server Error: Service Unavailable for url: /')", "http_5xx"),
        ("ConnectionRefusedError(111, 'Connection refused')", "refused"),
        ("RemoteDisconnected('Remote end closed connection without response')", "reset"),
        ("ReadTimeout(\"HTTPConnectionPool(host='127.0.0.1', port=8080): Read timed out. (read timeout=5)\")", "timeout"),
        ("CatchResponseError('Got wrong response')", "assertion"),
    ],
)
def test_error_text_kinds(text, kind):
    assert kind_from_text(text) == kind


def test_k6_error_codes():
    assert kind_from_k6("0", "1050", "request timeout") == "timeout"
    assert kind_from_k6("0", "1212", "dial: connection refused") == "refused"
    assert kind_from_k6("0", "1220", "read: connection reset by peer") == "reset"
    assert kind_from_k6("503", "1503", "") == "http_5xx"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"metric":"vus","type":"Point","data":{"time":"2026-01-01T00:00:00Z","value":1,"tags":null}}\n', "k6-json"),
        ("metric_name,timestamp,metric_value,check\nvus,1700000000,1,\n", "k6-csv"),
        ('{\n  "metrics": {\n    "http_reqs": {"count": 1, "rate": 1}\n  }\n}\n', "k6-summary"),
        ("timeStamp,elapsed,label,responseCode,success\n1700000000000,5,a,200,true\n", "jmeter-csv"),
        ('<?xml version="1.0"?>\n<testResults version="1.2">\n</testResults>\n', "jmeter-xml"),
        ("Type,Name,Request Count,Failure Count\n", "locust-stats"),
        ("Timestamp,User Count,Type,Name\n", "locust-history"),
        ("Method,Name,Error,Occurrences\n", "locust-failures"),
        ("RUN\tsim\tsim\t1700000000000\t \t3.9.5\n", "gatling-log"),
    ],
)
def test_detect_format_from_content(tmp_path, content, expected):
    path = tmp_path / "result.txt"
    path.write_text(content)

    assert detect_format(SourceFile(path)).format == expected


@pytest.mark.parametrize(
    "content",
    ["", "just some words\nand more\n", "a,b,c\n1,2,3\n", "<html><body>hi</body></html>\n", '{"a": 1}\n'],
    ids=["empty", "text", "other-csv", "html", "other-json"],
)
def test_cli_rejects_non_result_file(tmp_path, capsys, content):
    db = tmp_path / "store.duckdb"
    path = tmp_path / "k6.json"
    path.write_text(content)
    code = main(["import", str(path), "--db", str(db), "--json"])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.count("capplan: error:") == 1
    assert not db.exists()


def k6_line(second: int, latency_ms: float) -> str:
    time = f"2026-11-30T08:00:{second:02d}.500000Z"
    tags = {"status": "200", "expected_response": "true", "url": "http://127.0.0.1:8080/"}
    return json.dumps({"metric": "http_req_duration", "type": "Point", "data": {"time": time, "value": latency_ms, "tags": tags}})


def test_failed_import_leaves_store_unchanged(tmp_path):
    store = Store(tmp_path / "store.duckdb")
    good = tmp_path / "good.json"
    good.write_text("\n".join(k6_line(second, 10.0) for second in range(20)) + "\n")
    import_file(store, str(good), ImportOptions())
    before = len(run_store.list_runs(store))

    bad = tmp_path / "bad.json"
    bad.write_text("not a result\n")
    code = main(["import", str(bad), "--db", str(store.path)])

    assert code == 2
    assert len(run_store.list_runs(store)) == before


def test_cli_rejects_bad_options(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text("\n".join(k6_line(second, 10.0) for second in range(20)) + "\n")
    db = tmp_path / "store.duckdb"

    assert main(["import", str(good), "--db", str(db), "--utc-offset", "+25:00"]) == 2
    assert main(["import", str(good), "--db", str(db), "--max-error-rate", "150%"]) == 2
    assert main(["import", str(good), "--db", str(db), "--started-at", "yesterday"]) == 2
    assert "--utc-offset" in capsys.readouterr().err
    assert not db.exists()


def test_imported_run_feeds_plan_safe_load(tmp_path):
    store = Store(tmp_path / "store.duckdb")
    path = tmp_path / "k6.json"
    path.write_text("\n".join(k6_line(second, 10.0 if second < 30 else 900.0) for second in range(59)) + "\n")
    result = import_file(store, str(path), ImportOptions(slo_p95_ms=500.0, min_step_s=5))

    run = run_store.get_run(store, result.runs[0].run_id)
    assert run["status"] == "finished"
    assert run["kind"] == "imported"
    assert run["breaking_point_rps"] is not None
    assert run["safe_rps"] == pytest.approx(0.8 * run["breaking_point_rps"])


def test_wrong_timestamp_span_rejected(tmp_path):
    lines = [k6_line(second, 10.0) for second in range(10)]
    lines.append(lines[0].replace("2026-11-30", "2099-11-30"))
    path = tmp_path / "k6.json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputDataError, match="wrong timestamps"):
        import_file(Store(tmp_path / "store.duckdb"), str(path), ImportOptions())
