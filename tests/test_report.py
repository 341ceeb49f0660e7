"""``capplan report``: the HTML file written from a store built by the test, and opened in headless Chromium.

The Chromium test saves its screenshot under test-artifacts/ so a person can
look at the rendered report after a CI run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import require_binary
from test_review_store import (
    LAST_DAY,
    QUARTER,
    SERIES,
    ReviewStore,
    build_review_store,
    expected_old_forecast_errors,
    peak_rps,
)

from capplan.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM_TIMEOUT_S = 120
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def review_store(tmp_path_factory: pytest.TempPathFactory) -> ReviewStore:
    return build_review_store(tmp_path_factory.mktemp("review") / "review.duckdb")


def run_report(store: ReviewStore, out: Path, *extra: str) -> int:
    return main(["report", "--db", str(store.store.path), "--quarter", QUARTER, "--out", str(out), *extra])


def test_report_writes_html(tmp_path: Path, review_store: ReviewStore, capsys) -> None:
    out = tmp_path / "report.html"
    assert run_report(review_store, out) == 0
    html = out.read_text(encoding="utf-8")
    printed = capsys.readouterr().out

    assert f"Quarterly capacity review {QUARTER}" in html
    assert f"runs out on {review_store.new_runway.isoformat()}" in html
    assert f"wrote {out}" in printed
    assert review_store.new_runway.isoformat() in printed
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_json_one_object(tmp_path: Path, review_store: ReviewStore, capsys) -> None:
    out = tmp_path / "report.html"
    assert run_report(review_store, out, "--json", "--slo-p95", "110ms", "--scenario", "launch=40%/y") == 0
    payload = json.loads(capsys.readouterr().out)
    service = payload["services"][0]

    assert payload["out"] == str(out)
    assert payload["bytes"] == out.stat().st_size
    assert payload["quarter"] == QUARTER
    assert payload["slo_p95_ms"] == 110.0
    assert service["series"] == SERIES
    assert service["runway_date"] == review_store.new_runway.isoformat()
    assert service["instances_next_quarter"] == 11
    assert service["safe_rps_per_instance"] == 200.0
    assert service["previous_safe_rps_per_instance"] == 240.0
    assert service["previous_forecast_mape_pct"] == pytest.approx(expected_old_forecast_errors()["ape_pct"].mean())
    assert [scenario["name"] for scenario in service["scenarios"]] == ["launch"]
    assert any(risk["title"] == "last quarter's plan short in 2026-11" for risk in payload["risks"])


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--quarter", "2026Q7"], "--quarter: invalid quarter '2026Q7'"),
        (["--scenario", "nonsense"], "--scenario: invalid value 'nonsense'"),
        (["--slo-p95", "fast"], "invalid value 'fast'"),
        (["--services", "nope_rps"], "series 'nope_rps' not found"),
    ],
)
def test_report_bad_input_exit_two(tmp_path: Path, review_store: ReviewStore, capsys, arguments, message) -> None:
    out = tmp_path / "report.html"
    code = main(["report", "--db", str(review_store.store.path), "--out", str(out), *arguments])
    error = capsys.readouterr().err.strip().splitlines()

    assert code == 2
    assert len(error) == 1
    assert message in error[0]
    assert not out.exists()


def test_report_missing_store_exit_two(tmp_path: Path, capsys) -> None:
    code = main(["report", "--db", str(tmp_path / "absent.duckdb"), "--quarter", QUARTER, "--out", str(tmp_path / "r.html")])
    assert code == 2
    assert "no store at" in capsys.readouterr().err


def test_report_missing_folder_exit_two(tmp_path: Path, review_store: ReviewStore, capsys) -> None:
    code = run_report(review_store, tmp_path / "no" / "such" / "report.html")
    assert code == 2
    assert "folder" in capsys.readouterr().err


def chromium(binary: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=True,
    )


def test_report_in_chromium(tmp_path: Path, review_store: ReviewStore) -> None:
    binary = require_binary("chromium", "/usr/bin/chromium")
    out = tmp_path / f"report-{QUARTER}.html"
    assert run_report(review_store, out) == 0

    dom = chromium(binary, tmp_path / "profile-dom", "--dump-dom", out.as_uri()).stdout
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"report-{QUARTER}.png"
    screenshot.unlink(missing_ok=True)
    chromium(binary, tmp_path / "profile-shot", f"--screenshot={screenshot}", "--window-size=1280,2000", out.as_uri())

    errors = expected_old_forecast_errors()
    october = errors[errors["month"] == pd.Timestamp("2026-10-01")]
    assert f"runs out on {review_store.new_runway.isoformat()}" in dom
    assert "The plan needs 11 instances in 2027Q1" in dom
    assert f"{peak_rps(LAST_DAY):,.1f}" in dom
    assert f"{october['ape_pct'].mean():.1f} %" in dom
    assert "-16.7 %" in dom
    assert dom.count("data:image/png;base64,") == 4
    assert screenshot.stat().st_size > 50_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_opens_without_network(tmp_path: Path, review_store: ReviewStore) -> None:
    out = tmp_path / "report.html"
    assert run_report(review_store, out) == 0
    html = out.read_text(encoding="utf-8")
    # Every src points into the file itself, and nothing is fetched by script or style.
    sources = [part.split('"', 1)[0] for part in html.split('src="')[1:]]
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)
    for fetcher in ("<script", "<link", "@import", "url(", "<iframe"):
        assert fetcher not in html
    assert os.path.getsize(out) < 2_000_000
