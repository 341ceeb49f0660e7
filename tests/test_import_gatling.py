"""Importing Gatling simulation.log files: the text layouts of 2.x and 3.x, and the binary one rejected.

The logs are written by the tests in the tab-separated record layouts each
Gatling version uses (RUN, USER, REQUEST, GROUP, ASSERTION).
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from pathlib import Path

import pytest

from capplan.errors import InputDataError
from capplan.store import Store
from loadprobe.importers import ImportOptions, import_file, read_file

T0_MS = int(datetime(2026, 11, 30, 8, 0, 0, tzinfo=timezone.utc).timestamp() * 1000)
# (users started per second, response time ms) for two 30-second steps of an open injection profile.
STEPS = [(20, 15), (50, 90)]


def gatling_log(version: str, *, start_ms: int = T0_MS, steps=STEPS, failed_every: int = 0,
                message: str = "status.find.in(200,201,202,203,204,205,206,207,208,209,304), but actually found 503") -> str:
    new_layout = version >= "3.4"
    lines = ["ASSERTION\tAAECAAMBAAAAAAAAAAAA"] if version.startswith("3") else []
    lines.append(f"RUN\tcomputerdatabase.BasicSimulation\tbasicsimulation\t{start_ms}\t \t{version}")
    events: list[tuple[int, int, str]] = []  # (time, order within a user, record); Gatling writes in time order
    user = 0
    count = 0
    for index, (rate, latency_ms) in enumerate(steps):
        for second in range(30):
            for number in range(rate):
                user += 1
                count += 1
                begin = start_ms + (index * 30 + second) * 1000 + number * 1000 // rate
                end = begin + latency_ms
                status = "KO" if failed_every and count % failed_every == 0 else "OK"
                text = message if status == "KO" else " "
                if new_layout:
                    events.append((begin, 0, f"USER\tScenario\tSTART\t{begin}"))
                    events.append((end, 1, f"REQUEST\t\thome\t{begin}\t{end}\t{status}\t{text}"))
                    events.append((end + 1, 2, f"USER\tScenario\tEND\t{end + 1}"))
                else:
                    events.append((begin, 0, f"USER\tScenario\t{user}\tSTART\t{begin}\t{begin}"))
                    events.append((end, 1, f"REQUEST\t{user}\t\thome\t{begin}\t{end}\t{status}\t{text}"))
                    events.append((end + 1, 2, f"USER\tScenario\t{user}\tEND\t{begin}\t{end + 1}"))
    lines.extend(record for _, _, record in sorted(events, key=lambda event: (event[0], event[1])))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("version", ["3.9.5", "3.2.1"], ids=["3.4-and-later", "3.0-to-3.3"])
def test_gatling_log_open_steps(tmp_path, version):
    path = tmp_path / "simulation.log"
    path.write_text(gatling_log(version))
    result = read_file(str(path), ImportOptions())

    (run,) = result.runs
    assert result.format == "gatling-log"
    assert run.info.tool == "gatling"
    assert run.info.tool_version == version
    assert run.info.workload_model == "open"
    assert run.requests == 30 * 20 + 30 * 50
    assert len(run.steps) == 2
    assert run.steps[0]["offered_rps"] == pytest.approx(20, rel=0.05)
    assert run.steps[1]["offered_rps"] == pytest.approx(50, rel=0.05)
    assert run.steps[1]["p95_ms"] == pytest.approx(90, rel=0.002)
    assert run.info.config["gatling_simulation"] == "computerdatabase.BasicSimulation"


def test_gatling_log_ko_kinds(tmp_path):
    path = tmp_path / "simulation.log"
    path.write_text(gatling_log("3.9.5", failed_every=10))
    run = read_file(str(path), ImportOptions()).runs[0]

    assert run.errors == 210
    assert set().union(*(step["errors_by_kind"] for step in run.steps)) == {"http_5xx"}


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("i.g.h.c.i.RequestTimeoutException: Request timeout to localhost/127.0.0.1:8080 after 60000 ms", "timeout"),
        ("j.n.ConnectException: Connection refused: localhost/127.0.0.1:8080", "refused"),
        ("jsonPath($.id).find.exists, found nothing", "assertion"),
    ],
)
def test_gatling_log_message_kinds(tmp_path, message, kind):
    path = tmp_path / "simulation.log"
    path.write_text(gatling_log("3.9.5", failed_every=100, message=message))
    run = read_file(str(path), ImportOptions()).runs[0]

    assert set().union(*(step["errors_by_kind"] for step in run.steps)) == {kind}


def test_gatling_log_closed_uses_active_users(tmp_path):
    path = tmp_path / "simulation.log"
    path.write_text(gatling_log("3.9.5"))
    run = read_file(str(path), ImportOptions(workload_model="closed")).runs[0]

    assert run.info.workload_model == "closed"
    # 20 users/s staying 16 ms each and 50 users/s staying 91 ms: about 0.3 and 4.6 active at once.
    assert run.steps[0]["users"] < run.steps[-1]["users"]


def test_gatling_concatenated_logs_split(tmp_path):
    path = tmp_path / "simulation.log"
    path.write_text(gatling_log("3.9.5") + gatling_log("3.10.3", start_ms=T0_MS + 3_600_000, steps=[(10, 20)]))
    result = read_file(str(path), ImportOptions())

    assert [run.info.tool_version for run in result.runs] == ["3.9.5", "3.10.3"]
    assert [run.requests for run in result.runs] == [2100, 300]


def test_gatling_malformed_record_counted(tmp_path, caplog):
    text = gatling_log("3.9.5").splitlines()
    text.insert(10, "REQUEST\t\thome\tnot-a-time\t\tOK")
    path = tmp_path / "simulation.log"
    path.write_text("\n".join(text) + "\n")
    result = read_file(str(path), ImportOptions())

    assert result.malformed_lines == 1
    assert "line 11" in caplog.text


def binary_log(version: str) -> bytes:
    encoded = version.encode()
    header = b"\x00" + struct.pack(">i", len(encoded)) + encoded
    simulation = b"computerdatabase.BasicSimulation"
    return header + struct.pack(">i", len(simulation)) + simulation + struct.pack(">q", T0_MS) + b"\x00" * 32


def test_gatling_binary_log_rejected(tmp_path):
    db = tmp_path / "store.duckdb"
    path = tmp_path / "simulation.log"
    path.write_bytes(binary_log("3.13.1"))
    with pytest.raises(InputDataError) as excinfo:
        import_file(Store(db), str(path), ImportOptions())

    assert "binary simulation.log" in str(excinfo.value)
    assert "3.13.1" in str(excinfo.value)
    assert not db.exists()


def test_gatling_binary_detected_by_content(tmp_path):
    path = Path(tmp_path / "results.txt")
    path.write_bytes(binary_log("3.12.1"))
    with pytest.raises(InputDataError, match="Gatling 3.12.1"):
        read_file(str(path), ImportOptions())
