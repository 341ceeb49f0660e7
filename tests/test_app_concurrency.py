"""The app while another process writes the same DuckDB file.

DuckDB lets one process write a file and refuses a read-only open while the
writer holds it. These tests start a real writer process that uses capplan's
store functions and run the app (through streamlit.testing) at the same time:
no lock error may reach the page, and the new data appears once the writer
is done.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_app import (
    RUNWAY,
    SERIES_NAME,
    add_history_and_forecast,
    add_plan,
    add_step_run,
    metric_value,
    run_app,
)

from capplan.store import Store
from capplan.store.series import list_series

WRITER_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 30.0

# Writes one new sample per transaction and keeps each transaction, and so the
# file lock, open for HOLD_S, like a slow collection. Bounded by WRITES.
WRITER = textwrap.dedent(
    """
    import sys, time
    import pandas as pd
    from capplan.store import Store

    path, writes, hold_s, first_hour = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    store = Store(path)
    start = pd.Timestamp("2030-01-01") + pd.Timedelta(hours=first_hour)
    for index in range(writes):
        with store.write() as con:
            con.execute("INSERT INTO samples VALUES (?, ?, ?)", ["{series}", start + pd.Timedelta(hours=index), 999.0])
            print("locked", index, flush=True)
            time.sleep(hold_s)
    print("done", flush=True)
    """
).replace("{series}", SERIES_NAME)


@pytest.fixture
def planned_store(tmp_path: Path) -> Path:
    store = Store(tmp_path / "capplan.duckdb")
    run_id = add_step_run(store)
    add_plan(store, run_id, add_history_and_forecast(store))
    return store.path


def start_writer(path: Path, writes: int, hold_s: float, first_hour: int = 0) -> subprocess.Popen[str]:
    """Start the writer; its samples are at 2030-01-01 plus ``first_hour`` hours and on."""
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(writes), str(hold_s), str(first_hour)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], prefix: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(prefix):
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"writer printed no {prefix!r} line: {process.stderr.read() if process.stderr else ''}")


def stop_writer(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=WRITER_TIMEOUT_S)


def lock_messages(app: object) -> list[str]:
    elements = [*app.error, *app.exception]  # type: ignore[attr-defined]
    return [str(element.value) for element in elements if "lock" in str(element.value).lower()]


def test_app_reruns_during_writes(planned_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(planned_store, monkeypatch, "demand")
    writer = start_writer(planned_store, writes=12, hold_s=0.4)
    try:
        wait_for_line(writer, "locked")
        for page in ("demand", "overview", "load-tests", "plan", "scenarios", "sql", "demand", "overview"):
            app.radio(key="page").set_value(page).run()
            assert not app.exception, page
            assert lock_messages(app) == [], page
        assert writer.wait(timeout=WRITER_TIMEOUT_S) == 0
    finally:
        stop_writer(writer)

    app.radio(key="page").set_value("demand").run()

    assert not app.exception
    assert metric_value(app, "Latest daily peak (rps)") == "999.0"


def test_app_long_write_serves_last_data(planned_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(planned_store, monkeypatch, "overview")
    assert metric_value(app, "Runway (UTC date)") == RUNWAY.isoformat()
    # The first writer commits, so the store's version changes and the app must read again.
    # The second keeps the lock twice as long as the reader retries.
    writer = start_writer(planned_store, writes=2, hold_s=0.0)
    assert writer.wait(timeout=WRITER_TIMEOUT_S) == 0
    writer = start_writer(planned_store, writes=1, hold_s=4.0, first_hour=2)
    try:
        wait_for_line(writer, "locked")
        app.run()

        assert not app.exception
        assert lock_messages(app) == []
        assert any("writing to the store right now" in info.value for info in app.info)
        assert metric_value(app, "Runway (UTC date)") == RUNWAY.isoformat()
        assert writer.wait(timeout=WRITER_TIMEOUT_S) == 0
    finally:
        stop_writer(writer)

    app.run()

    assert not any("writing to the store right now" in info.value for info in app.info)
    assert int(list_series(Store(planned_store))["samples"].iloc[0]) > 0
