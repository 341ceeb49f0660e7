"""``capplan app`` and serve_app: a real streamlit server on 127.0.0.1.

Each server test starts streamlit on a free port, waits for its health check,
fetches the page and stops it. Every wait is bounded, and a finally block
kills whatever the test started.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from capplan.cli import main
from capplan.cli.app_cmd import (
    APP_FILE,
    serve_app,
    stop_app,
    streamlit_command,
    wait_until_serving,
    warn_if_exposed,
)
from capplan.errors import CapplanError, ConfigError
from capplan.store import Store
from capplan.store.runs import add_step, create_run, finish_run

CAPPLAN_SCRIPT = Path(sys.executable).parent / "capplan"
STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 20.0
OUTPUT_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_stcore/health", timeout=2.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_port_closed(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_serving(url):
            return True
        time.sleep(0.25)
    return False


@pytest.fixture
def filled_store(tmp_path: Path) -> Path:
    """Write one finished two-step run, enough for the app to render its Load tests tab."""
    store = Store(tmp_path / "capplan.duckdb")
    started_at = datetime(2026, 1, 5, 10, 0)
    run_id = create_run(
        store,
        kind="step",
        target_url="http://127.0.0.1:8080/",
        started_at=started_at,
        slo_p95_ms=500.0,
        max_error_rate=0.01,
        config={},
    )
    for index, (offered, p95) in enumerate([(100.0, 40.0), (200.0, 800.0)]):
        add_step(
            store,
            run_id,
            {
                "step_index": index,
                "started_at": started_at + timedelta(seconds=30 * index),
                "duration_s": 30.0,
                "offered_rps": offered,
                "achieved_rps": offered,
                "requests": int(offered * 30),
                "ok_requests": int(offered * 30),
                "errors": 0,
                "dropped": 0,
                "error_rate": 0.0,
                "p95_ms": p95,
                "generator_saturated": False,
                "passed": p95 <= 500.0,
            },
        )
    finish_run(
        store,
        run_id,
        status="finished",
        finished_at=started_at + timedelta(minutes=1),
        stop_reason="slo_broken",
        breaking_point_rps=200.0,
        safe_rps=160.0,
        recommended_rps=120.0,
    )
    return store.path


def read_json_line(path: Path, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text()
        if text.endswith("\n"):
            return json.loads(text.splitlines()[0])
        time.sleep(0.1)
    raise AssertionError(f"no JSON line in {path} within {timeout_s} s: {path.read_text()!r}")


def kill_if_running(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_app_serves_and_stops(
    filled_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_signal: signal.Signals
) -> None:
    monkeypatch.setenv("CAPPLAN_DB", str(filled_store))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stdout_path = tmp_path / "stdout.json"
    stderr_path = tmp_path / "stderr.log"
    streamlit_pid = None
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [str(CAPPLAN_SCRIPT), "app", "--port", str(port), "--json"],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        wait_until_serving(url, STARTUP_TIMEOUT_S, process=process)
        payload = read_json_line(stdout_path, OUTPUT_TIMEOUT_S)
        streamlit_pid = int(payload["pid"])  # type: ignore[call-overload]
        assert payload["url"] == url
        assert payload["db"] == str(filled_store)

        page = httpx.get(f"{url}/", timeout=10.0, trust_env=False)
        assert page.status_code == 200
        assert "<html" in page.text.lower()

        process.send_signal(stop_signal)
        assert process.wait(timeout=SHUTDOWN_TIMEOUT_S) == 0
        assert wait_for_port_closed(url, SHUTDOWN_TIMEOUT_S)
        log = stderr_path.read_text()
        assert f"serving {url}" in log
        assert "app stopped" in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        kill_if_running(streamlit_pid)


@pytest.mark.slow
def test_serve_app_nonblocking(filled_store: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = serve_app(filled_store, port=port, address="127.0.0.1", block=False)
    try:
        assert process.poll() is None
        assert httpx.get(f"{url}/_stcore/health", timeout=10.0, trust_env=False).text == "ok"
        assert httpx.get(f"{url}/", timeout=10.0, trust_env=False).status_code == 200

        assert stop_app(process) == 0
        assert not is_serving(url)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=SHUTDOWN_TIMEOUT_S)


def test_serve_app_port_in_use(filled_store: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = int(holder.getsockname()[1])

        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is already in use"):
            serve_app(filled_store, port=port, address="127.0.0.1", block=False)


def test_wait_until_serving_times_out() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    with pytest.raises(CapplanError, match="timed out after 1 s"):
        wait_until_serving(url, 1.0)

    assert time.monotonic() - started < 10.0


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_warn_if_exposed_loopback_quiet(address: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert warn_if_exposed(address) is False
    assert caplog.records == []


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.20", "::"])
def test_warn_if_exposed_other_hosts(address: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert warn_if_exposed(address) is True
    assert len(caplog.records) == 1
    assert caplog.records[0].levelno == logging.WARNING
    assert "reachable from other hosts" in caplog.records[0].getMessage()


def test_streamlit_command_options() -> None:
    command = streamlit_command(8600, "127.0.0.1")

    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert command[4] == str(APP_FILE)
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.port"] == "8600"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"


def test_app_file_alone_in_its_folder() -> None:
    siblings = sorted(path.name for path in APP_FILE.parent.iterdir() if path.name != "__pycache__")

    assert APP_FILE.is_file()
    assert APP_FILE.parent.parent.name == "capplan"
    assert siblings == ["__init__.py", APP_FILE.name]


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_cli_app_rejects_invalid_port(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["app", "--port", port])

    assert exit_info.value.code == 2
    assert "invalid port" in capsys.readouterr().err
