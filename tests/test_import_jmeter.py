"""Importing JMeter JTL files, CSV and XML, with the quirks real files have.

The files are written by the tests in the layout JMeter's SaveService uses:
a header naming the columns, epoch-millisecond or formatted timestamps,
quoted fields, redirect sub-samples and runs appended to one file.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from capplan.errors import InputDataError
from capplan.store import runs as run_store
from loadprobe.importers import ImportOptions, import_file, read_file

DEFAULT_COLUMNS = [
    "timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName", "dataType", "success",
    "failureMessage", "bytes", "sentBytes", "grpThreads", "allThreads", "URL", "Latency", "IdleTime", "Connect",
]
T0_MS = int(datetime(2026, 11, 30, 8, 0, 0, tzinfo=timezone.utc).timestamp() * 1000)


def sample(ts_ms: int, elapsed: int, label: str, threads: int, *, code: str = "200", message: str = "OK",
           success: bool = True, failure: str = "") -> dict[str, str]:
    return {
        "timeStamp": str(ts_ms), "elapsed": str(elapsed), "label": label, "responseCode": code,
        "responseMessage": message, "threadName": "Thread Group 1-1", "dataType": "text",
        "success": "true" if success else "false", "failureMessage": failure, "bytes": "512", "sentBytes": "120",
        "grpThreads": str(threads), "allThreads": str(threads), "URL": "http://127.0.0.1:8080/" + label,
        "Latency": str(elapsed // 2), "IdleTime": "0", "Connect": "1",
    }


def staircase(start_ms: int, plan: list[tuple[int, int]], seconds: int = 30) -> list[dict[str, str]]:
    """Return samples for steps of (threads, elapsed ms): each thread sends one request a second."""
    samples = []
    for index, (threads, elapsed) in enumerate(plan):
        for second in range(seconds):
            for thread in range(threads):
                ts = start_ms + (index * seconds + second) * 1000 + thread * (1000 // threads)
                samples.append(sample(ts, elapsed, "Home", threads))
    return samples


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] = DEFAULT_COLUMNS, delimiter: str = ",",
              header: bool = True) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([row[column] for column in columns])
    with path.open("a") as handle:
        handle.write(buffer.getvalue())
    return path


def test_jmeter_csv_steps_from_threads(tmp_path):
    path = write_csv(tmp_path / "results.jtl", staircase(T0_MS, [(5, 20), (10, 50)]))
    result = read_file(str(path), ImportOptions())

    (run,) = result.runs
    assert result.format == "jmeter-csv"
    assert run.info.tool == "jmeter"
    assert run.info.workload_model == "closed"
    assert run.requests == 30 * 5 + 30 * 10
    assert [step["users"] for step in run.steps] == [5, 10]
    assert run.steps[0]["p95_ms"] == pytest.approx(20, rel=0.002)
    assert run.steps[1]["p95_ms"] == pytest.approx(50, rel=0.002)
    assert run.steps[1]["offered_rps"] == pytest.approx(10, rel=0.05)
    assert run.info.target_url == "http://127.0.0.1:8080/"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"], ids=["semicolon", "tab", "bar"])
def test_jmeter_csv_custom_delimiter(tmp_path, delimiter):
    path = write_csv(tmp_path / "results.jtl", staircase(T0_MS, [(5, 20)]), delimiter=delimiter)
    run = read_file(str(path), ImportOptions()).runs[0]

    assert run.requests == 150
    assert run.steps[0]["p50_ms"] == pytest.approx(20, rel=0.002)


def test_jmeter_csv_quoted_fields_with_line_breaks(tmp_path, caplog):
    rows = staircase(T0_MS, [(5, 20)])
    rows[10] = sample(int(rows[10]["timeStamp"]), 20, 'Search, "quoted"', 5, code="200", message="OK",
                      success=False, failure='Assertion failed:\nexpected "a, b"\nbut got "c"')
    path = write_csv(tmp_path / "results.jtl", rows)
    result = read_file(str(path), ImportOptions())

    assert result.malformed_lines == 0
    run = result.runs[0]
    assert run.requests == 150
    assert run.errors == 1
    assert run.steps[0]["errors_by_kind"] == {"assertion": 1}


def test_jmeter_csv_malformed_row_line_number(tmp_path, caplog):
    path = write_csv(tmp_path / "results.jtl", staircase(T0_MS, [(5, 20)]))
    lines = path.read_text().splitlines()
    lines.insert(5, "1764489600000,20,Home,200")  # a row cut short
    path.write_text("\n".join(lines) + "\n")
    result = read_file(str(path), ImportOptions())

    assert result.malformed_lines == 1
    assert result.runs[0].requests == 150
    assert "line 6" in caplog.text


def test_jmeter_csv_formatted_timestamps_with_offset(tmp_path, store):
    rows = staircase(T0_MS, [(5, 20)])
    local = timezone(timedelta(hours=2))
    for row in rows:
        at = datetime.fromtimestamp(int(row["timeStamp"]) / 1000, tz=local)
        row["timeStamp"] = at.strftime("%Y/%m/%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"
    path = write_csv(tmp_path / "results.jtl", rows)
    result = import_file(store, str(path), ImportOptions(utc_offset_min=120))

    run = run_store.get_run(store, result.runs[0].run_id)
    assert run["started_at"].to_pydatetime() == datetime(2026, 11, 30, 8, 0, 0)
    assert run["utc_offset_min"] == 120


def test_jmeter_csv_redirect_subsamples_not_counted(tmp_path):
    rows = []
    for second in range(20):
        ts = T0_MS + second * 1000
        rows.append(sample(ts, 5, "Login-0", 1, code="302", message="Found"))
        rows.append(sample(ts + 5, 10, "Login-1", 1))
        rows.append(sample(ts, 15, "Login", 1))
        # A label that merely ends in a number, with no parent label: a request.
        rows.append(sample(ts + 500, 8, "Step-2", 1))
    path = write_csv(tmp_path / "results.jtl", rows)
    run = read_file(str(path), ImportOptions()).runs[0]

    assert run.requests == 40
    assert run.steps[0]["max_ms"] == 15
    assert any("sub-samples" in note for note in run.info.notes)


def test_jmeter_csv_transaction_rows_skipped(tmp_path):
    rows = staircase(T0_MS, [(2, 20)], seconds=10)
    rows.append(sample(T0_MS + 5000, 40, "Checkout", 2, message="Number of samples in transaction : 2, number of failing samples : 0"))
    run = read_file(str(write_csv(tmp_path / "results.jtl", rows)), ImportOptions()).runs[0]

    assert run.requests == 20


def test_jmeter_csv_appended_runs_split(tmp_path):
    path = tmp_path / "results.jtl"
    write_csv(path, staircase(T0_MS, [(5, 20)]))
    # JMeter appends a second test to the same file with its own header...
    write_csv(path, staircase(T0_MS + 3_600_000, [(8, 30)]))
    # ...or without one when the file already had a header.
    write_csv(path, staircase(T0_MS + 7_200_000, [(3, 40)]), header=False)
    result = read_file(str(path), ImportOptions())

    assert [run.requests for run in result.runs] == [150, 240, 90]
    assert [run.steps[0]["users"] for run in result.runs] == [5, 8, 3]


def test_jmeter_csv_non_http_error_kinds(tmp_path):
    rows = staircase(T0_MS, [(4, 20)], seconds=10)
    failures = [
        ("Non HTTP response code: java.net.SocketTimeoutException", "Non HTTP response message: Read timed out", "timeout"),
        ("Non HTTP response code: org.apache.http.conn.HttpHostConnectException",
         "Non HTTP response message: Connect to 127.0.0.1:8080 failed: Connection refused", "refused"),
        ("Non HTTP response code: java.net.SocketException", "Non HTTP response message: Connection reset", "reset"),
        ("503", "Service Unavailable", "http_5xx"),
        ("404", "Not Found", "http_4xx"),
    ]
    for index, (code, message, _) in enumerate(failures):
        rows[index * 4] = sample(int(rows[index * 4]["timeStamp"]), 20, "Home", 4, code=code, message=message, success=False)
    run = read_file(str(write_csv(tmp_path / "results.jtl", rows)), ImportOptions()).runs[0]

    expected = {kind: 1 for _, _, kind in failures}
    assert run.steps[0]["errors_by_kind"] == expected
    assert run.errors == 5


def xml_sample(ts_ms: int, elapsed: int, label: str, threads: int, *, code: str = "200", success: bool = True,
               children: str = "") -> str:
    attributes = (f't="{elapsed}" it="0" lt="{elapsed // 2}" ct="1" ts="{ts_ms}" s="{str(success).lower()}" '
                  f'lb="{label}" rc="{code}" rm="OK" tn="Thread Group 1-1" dt="text" by="512" sby="120" '
                  f'ng="{threads}" na="{threads}"')
    if not children:
        return f"<httpSample {attributes}/>\n"
    return f"<httpSample {attributes}>\n{children}</httpSample>\n"


def xml_document(samples: list[str]) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>\n<testResults version="1.2">\n' + "".join(samples) + "</testResults>\n"


def xml_staircase(start_ms: int, plan: list[tuple[int, int]], seconds: int = 30) -> list[str]:
    samples = []
    for index, (threads, elapsed) in enumerate(plan):
        for second in range(seconds):
            for thread in range(threads):
                ts = start_ms + (index * seconds + second) * 1000 + thread * (1000 // threads)
                redirect = (f'  <httpSample t="5" ts="{ts}" s="true" lb="Home-0" rc="302" na="{threads}"/>\n'
                            f'  <httpSample t="{elapsed - 5}" ts="{ts + 5}" s="true" lb="Home-1" rc="200" na="{threads}"/>\n'
                            "  <java.net.URL>http://127.0.0.1:8080/</java.net.URL>\n")
                samples.append(xml_sample(ts, elapsed, "Home", threads, children=redirect if thread == 0 else ""))
    return samples


def test_jmeter_xml_nested_subsamples(tmp_path):
    path = tmp_path / "results.xml"
    path.write_text(xml_document(xml_staircase(T0_MS, [(4, 20), (8, 60)])))
    result = read_file(str(path), ImportOptions())

    (run,) = result.runs
    assert result.format == "jmeter-xml"
    assert run.requests == 30 * 4 + 30 * 8
    assert [step["users"] for step in run.steps] == [4, 8]
    assert run.steps[1]["p95_ms"] == pytest.approx(60, rel=0.002)


def test_jmeter_xml_in_csv_named_file(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(xml_document(xml_staircase(T0_MS, [(4, 20)])))
    result = read_file(str(path), ImportOptions())

    assert result.format == "jmeter-xml"
    assert result.runs[0].requests == 120


def test_jmeter_xml_appended_documents_split(tmp_path):
    path = tmp_path / "results.jtl"
    path.write_text(xml_document(xml_staircase(T0_MS, [(4, 20)])) + xml_document(xml_staircase(T0_MS + 600_000, [(2, 30)])))
    result = read_file(str(path), ImportOptions())

    assert [run.requests for run in result.runs] == [120, 60]


def test_jmeter_xml_truncated_and_malformed(tmp_path, caplog):
    samples = xml_staircase(T0_MS, [(4, 20)])
    samples[50] = '<httpSample t="20" ts="oops" lb="Home" <<broken\n'
    text = xml_document(samples)
    text = text[: text.rindex("<httpSample") + 40]  # JMeter killed mid-write
    path = tmp_path / "results.jtl"
    path.write_text(text)
    broken_line = next(number for number, line in enumerate(text.splitlines(), 1) if "<<broken" in line)
    result = read_file(str(path), ImportOptions())

    assert result.malformed_lines == 2
    assert result.runs[0].requests == 120 - 2
    assert f"line {broken_line}:" in caplog.text


def test_jmeter_csv_without_header_rejected(tmp_path):
    path = write_csv(tmp_path / "results.jtl", staircase(T0_MS, [(2, 20)], seconds=5), header=False)
    with pytest.raises(InputDataError, match="without a header line"):
        read_file(str(path), ImportOptions())


def test_jmeter_csv_minimal_reordered_columns(tmp_path):
    columns = ["label", "success", "elapsed", "timeStamp"]
    rows = staircase(T0_MS, [(3, 25)], seconds=10)
    run = read_file(str(write_csv(tmp_path / "results.jtl", rows, columns=columns)), ImportOptions()).runs[0]

    assert run.requests == 30
    assert run.steps[0]["p50_ms"] == pytest.approx(25, rel=0.002)
    # Without thread counts the run is cut into fixed windows and users are unknown.
    assert run.steps[0]["users"] is None
    assert any("allThreads" in note for note in run.info.notes)
