"""Capacity reports and ``capplan capacity`` on stored steps, measurement tables and real servers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from capplan.cli import main
from capplan.store import Store
from capplan.store.runs import add_step, create_run, finish_run
from forecasting.capacity import CapacityPolicy, run_report, usable_levels

from test_scalability import SDM91_PUBLISHED, SDM91_THROUGHPUT, SDM91_USERS

START = datetime(2026, 11, 2, 9, 0)


def md1_step(index: int, rate_rps: float, capacity_rps: float = 200.0, **overrides: Any) -> dict[str, Any]:
    """A step of an M/D/1 queue with 1 ms of network: mean latency from Pollaczek-Khinchine."""
    service_ms = 1000.0 / capacity_rps
    rho = rate_rps / capacity_rps
    mean_ms = 1.0 + service_ms + service_ms * rho / (2 * (1 - rho))
    row = {
        "step_index": index,
        "started_at": START + timedelta(seconds=10 * index),
        "duration_s": 10.0,
        "offered_rps": rate_rps,
        "achieved_rps": rate_rps,
        "requests": int(rate_rps * 10),
        "ok_requests": int(rate_rps * 10),
        "errors": 0,
        "dropped": 0,
        "error_rate": 0.0,
        "mean_ms": mean_ms,
        "p50_ms": mean_ms * 0.9,
        "p90_ms": mean_ms * 1.5,
        "p95_ms": mean_ms * 1.8,
        "p99_ms": mean_ms * 2.5,
        "generator_saturated": False,
        "passed": True,
    }
    row.update(overrides)
    return row


def store_run(store: Store, steps: list[dict[str, Any]], slo_p95_ms: float = 500.0) -> int:
    run_id = create_run(
        store, kind="step", target_url="http://127.0.0.1:9/", started_at=START,
        slo_p95_ms=slo_p95_ms, max_error_rate=0.01, config={},
    )
    for step in steps:
        add_step(store, run_id, step)
    failed = [step["offered_rps"] for step in steps if not step["passed"] and not step["generator_saturated"]]
    breaking = failed[0] if failed else None
    finish_run(
        store, run_id, status="finished", finished_at=START + timedelta(minutes=5), stop_reason="test",
        breaking_point_rps=breaking, safe_rps=None if breaking is None else 0.8 * breaking,
        recommended_rps=None if breaking is None else 0.6 * breaking,
    )
    return run_id


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.count("\n") == 1
    return json.loads(captured.out)


def test_capacity_md1_steps_predict_peak(store: Store) -> None:
    run_id = store_run(store, [md1_step(i, rate) for i, rate in enumerate(range(20, 140, 20))])
    report = run_report(store, run_id)
    assert report.peak_source == "latency_model"
    assert report.peak_rps == pytest.approx(200.0, rel=0.01)
    assert report.breaking_point_rps is None
    assert report.safe_rps == pytest.approx(0.8 * report.peak_rps)
    assert report.safe_basis == "predicted peak (latency_model)"


def test_capacity_saturated_steps_excluded(store: Store) -> None:
    steps = [md1_step(i, rate) for i, rate in enumerate(range(20, 140, 20))]
    # A saturated generator reports its own lag as latency: 80 ms at 60 rps would wreck the fit.
    steps.append(md1_step(6, 150.0, mean_ms=80.0, generator_saturated=True, passed=False))
    run_id = store_run(store, steps)
    report = run_report(store, run_id)
    assert [item["step_index"] for item in report.excluded] == [6]
    assert "generator saturated" in report.excluded[0]["reason"]
    assert report.peak_rps == pytest.approx(200.0, rel=0.01)
    assert report.breaking_point_rps is None


def test_capacity_fewer_levels_fall_back(store: Store) -> None:
    steps = [md1_step(i, rate) for i, rate in enumerate((50, 100, 150))]
    steps.append(md1_step(3, 200.0 * 0.99, achieved_rps=150.0, passed=False, p95_ms=900.0))
    run_id = store_run(store, steps)
    report = run_report(store, run_id)
    assert report.usl is None
    assert report.latency is None
    assert any("only 4 usable level(s)" in note for note in report.notes)
    assert report.breaking_point_rps == pytest.approx(198.0)
    assert report.safe_rps == pytest.approx(0.8 * 198.0)
    assert report.safe_basis == "measured breaking point"


def test_capacity_upto_filters_steps(store: Store) -> None:
    run_id = store_run(store, [md1_step(i, rate) for i, rate in enumerate(range(20, 200, 20))])
    report = run_report(store, run_id, upto_rps=120.0)
    assert report.levels == 6
    assert {item["offered_rps"] for item in report.excluded} == {140.0, 160.0, 180.0}
    assert report.latency is not None
    assert report.latency.max_rate_rps == 120.0


def test_capacity_slo_policy_meets_slo(store: Store) -> None:
    run_id = store_run(store, [md1_step(i, rate) for i, rate in enumerate(range(20, 140, 20))], slo_p95_ms=40.0)
    report = run_report(store, run_id, CapacityPolicy(basis="slo", safe_fraction=0.8))
    assert report.safe_basis == "predicted p95 meets the SLO"
    assert report.latency is not None
    slo_rate = report.safe_rps / 0.8
    assert report.latency.predict_ms("p95", slo_rate) == pytest.approx(40.0, rel=1e-6)


def test_capacity_cli_json_keys(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = store_run(store, [md1_step(i, rate) for i, rate in enumerate(range(20, 140, 20))])
    payload = run_json(capsys, ["capacity", str(run_id), "--upto", "100", "--json", "--db", str(store.path)])
    assert set(payload) >= {
        "peak_rps", "peak_concurrency", "knee_rps", "breaking_point_rps", "safe_rps",
        "sigma", "kappa", "lambda", "intervals",
    }
    assert payload["upto_rps"] == 100.0
    assert payload["levels"] == 5 or payload["breaking_point_rps"] is None


def test_capacity_cli_measurements_sdm91(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "sdm91.csv"
    table.write_text("users,throughput\n" + "".join(f"{n},{x}\n" for n, x in zip(SDM91_USERS, SDM91_THROUGHPUT)))
    payload = run_json(capsys, ["capacity", "--measurements", str(table), "--json", "--db", str(tmp_path / "none.duckdb")])
    for name, published in SDM91_PUBLISHED.items():
        assert payload[name] == pytest.approx(published, rel=0.01), name
    assert payload["peak_source"] == "usl"
    assert payload["peak_concurrency"] == pytest.approx(96.5, rel=0.01)
    assert payload["breaking_point_rps"] is None
    assert payload["safe_rps"] == pytest.approx(0.8 * payload["peak_rps"])
    assert not (tmp_path / "none.duckdb").exists()


def test_capacity_cli_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "bad.csv"
    table.write_text("users,throughput\n1,10\n2,x\n")
    assert main(["capacity", "--measurements", str(table)]) == 2
    assert main(["capacity", "--measurements", str(tmp_path / "missing.csv")]) == 2
    assert main(["capacity", "1", "--upto", "-5", "--db", str(tmp_path / "s.duckdb")]) == 2
    assert main(["capacity", "compare", "1", "--db", str(tmp_path / "s.duckdb")]) == 2
    err = capsys.readouterr().err
    assert "line 3: achieved_rps 'x' is not a number above 0" in err
    assert "missing.csv not found" in err
    assert "--upto: '-5' is not a rate above 0" in err
    assert "compare needs two run ids" in err


def test_capacity_predicts_at_rate(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = store_run(store, [md1_step(i, rate) for i, rate in enumerate(range(20, 140, 20))])
    payload = run_json(capsys, ["capacity", str(run_id), "--at", "180", "--json", "--db", str(store.path)])
    expected = 1.0 + 5.0 + 5.0 * 0.9 / 0.2
    assert payload["predicted_at"]["mean_ms"] == pytest.approx(expected, rel=0.02)
    assert any("beyond the knee" in note for note in payload["notes"])


def linear_prediction(rates: np.ndarray, latency: np.ndarray, rate: float) -> float:
    slope, intercept = np.polyfit(rates, latency, 1)
    return float(slope * rate + intercept)


def test_kept_up_compares_with_drawn_arrivals() -> None:
    """A Poisson step that drew 131 arrivals in 10 s at a nominal 15 rps kept up when it served them all."""
    import pandas as pd

    steps = pd.DataFrame({
        "step_index": [0, 1],
        "offered_rps": [15.0, 15.0],
        "achieved_rps": [13.1, 10.0],
        "requests": [131, 131],
        "dropped": [0, 0],
        "duration_s": [10.0, 10.0],
        "mean_ms": [13.0, 40.0],
        "error_rate": [0.0, 0.0],
        "passed": [True, False],
    })

    levels, _ = usable_levels(steps)

    assert levels["drawn_rps"].tolist() == [13.1, 13.1]
    assert levels["kept_up"].tolist() == [True, False]
