"""Workload models of the probe: closed users, ramps, plans with scenarios, workers."""

from __future__ import annotations

import json

import pytest

from capplan.cli import main
from capplan.store import Store
from capplan.store import runs as run_store
from loadprobe.histogram import LatencyHistogram

MIX_PLAN = """
url = "{url}"
model = "open"
arrivals = "poisson"
thresholds = ["p95<500", "error_rate<1%"]

[[stages]]
duration = "4s"
target = 250

[[scenarios]]
name = "health"
path = "health"
weight = 30
expected_status = 200

[[scenarios]]
name = "search"
path = "search"
weight = 25
expected_body = "search ok"

[[scenarios]]
name = "login"
path = "login"
weight = 20

[[scenarios]]
name = "checkout"
path = "checkout"
weight = 15

[[scenarios]]
name = "profile"
path = "profile"
weight = 10
"""


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_closed_model_follows_littles_law(demo_target, tmp_path, capsys):
    # 4 users, 20 ms service and 30 ms think time: each user cycles every
    # ~50 ms, so the users send ~80 requests/s in total.
    code, payload = run_json(
        capsys,
        ["probe", "baseline", demo_target.url, "--users", "4", "--think-time", "30ms", "--duration", "3s",
         "--json", "--db", str(tmp_path / "s.duckdb")],
    )  # fmt: skip

    assert code == 0
    (step,) = payload["steps"]
    assert step["model"] == "closed"
    assert step["users"] == 4
    assert 55 <= step["achieved_rps"] <= 85
    assert step["p50_ms"] == pytest.approx(20.0, abs=8.0)


def test_closed_model_think_time_range(demo_target, tmp_path, capsys):
    code, payload = run_json(
        capsys,
        ["probe", "baseline", demo_target.url, "--users", "2", "--think-time", "40ms..120ms", "--duration", "3s",
         "--json", "--db", str(tmp_path / "s.duckdb")],
    )  # fmt: skip

    assert code == 0
    # Mean cycle 20 ms service + 80 ms think: 2 users send about 20 requests/s.
    assert 14 <= payload["steps"][0]["achieved_rps"] <= 26


def test_plan_mix_results_per_scenario(nginx_static, tmp_path, capsys):
    plan = tmp_path / "mix.toml"
    plan.write_text(MIX_PLAN.format(url=nginx_static))
    db = tmp_path / "s.duckdb"
    code, payload = run_json(capsys, ["probe", "run", str(plan), "--workers", "1", "--json", "--db", str(db)])

    assert code == 0
    (step,) = payload["steps"]
    # A ramp from 0 to 250 rps over 4 s offers 500 requests on average.
    assert step["offered_rps"] == pytest.approx(125.0)
    shares = {row["scenario"]: row["requests"] for row in step["scenarios"]}
    total = sum(shares.values())
    assert 400 <= total <= 600
    expected = {"health": 0.30, "search": 0.25, "login": 0.20, "checkout": 0.15, "profile": 0.10}
    for name, share in expected.items():
        assert shares[name] / total == pytest.approx(share, abs=0.06), name
    assert all(row["error_rate"] == 0.0 for row in step["scenarios"])

    stored = run_store.get_step_scenarios(Store(db), payload["run_id"])
    assert sorted(stored["scenario"]) == sorted(expected)
    assert int(stored["requests"].sum()) == total


def test_plan_unexpected_body_counted(nginx_static, tmp_path, capsys):
    plan = tmp_path / "body.toml"
    plan.write_text(
        f'url = "{nginx_static}"\nabort_on_fail = false\nstart_target = 20\n[[stages]]\nduration = "1s"\ntarget = 20\n'
        '[[scenarios]]\nname = "search"\npath = "search"\nexpected_body = "no such text"\n'
    )
    code, payload = run_json(capsys, ["probe", "run", str(plan), "--json", "--db", str(tmp_path / "s.duckdb")])

    assert code == 0
    step = payload["steps"][0]
    assert step["errors_by_kind"] == {"unexpected_body": 20}
    assert step["error_rate"] == 1.0


def test_plan_threshold_aborts_exit_99(nginx_rate_limited, tmp_path, capsys):
    url, limit_rps = nginx_rate_limited
    plan = tmp_path / "abort.toml"
    plan.write_text(
        f'url = "{url}"\nthresholds = ["error_rate<1%"]\ngrace = "2s"\n'
        f'[[stages]]\nduration = "2s"\ntarget = {limit_rps / 2:g}\n'
        f'[[stages]]\nduration = "20s"\ntarget = {limit_rps * 2:g}\n'
        f'[[stages]]\nduration = "2s"\ntarget = 10\n'
    )
    db = tmp_path / "s.duckdb"
    code, payload = run_json(capsys, ["probe", "run", str(plan), "--workers", "1", "--json", "--db", str(db)])

    assert code == 99
    assert payload["exit_reason"] == "threshold"
    assert "error_rate<1%" in payload["stop_reason"]
    assert len(payload["steps"]) == 2
    aborted = payload["steps"][1]
    assert aborted["passed"] is False
    # The live check stops the 20 s stage long before its end.
    assert aborted["achieved_rps"] < limit_rps * 2
    run = run_store.get_run(Store(db), payload["run_id"])
    assert run["exit_reason"] == "threshold"
    assert run["status"] == "finished"
    steps = run_store.get_steps(Store(db), payload["run_id"])
    assert steps["duration_s"].iloc[1] == 20.0
    assert bool(steps["interrupted"].iloc[1]) is True


def test_step_workers_merge_histograms(demo_target, tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    code, payload = run_json(
        capsys,
        ["probe", "baseline", demo_target.url, "--rate", "100", "--duration", "2s", "--workers", "2",
         "--json", "--db", str(db)],
    )  # fmt: skip

    assert code == 0
    (step,) = payload["steps"]
    assert step["achieved_rps"] == pytest.approx(100.0, rel=0.1)
    stored = run_store.get_steps(Store(db), payload["run_id"]).iloc[0]
    assert stored["generator_processes"] == 2
    assert stored["requests"] == 200
    histogram = LatencyHistogram.decode(stored["latency_hdr"])
    assert histogram.count == 200
    assert histogram.percentile_ms(95) == pytest.approx(stored["p95_ms"])


def test_poisson_arrivals_count(demo_target, tmp_path, capsys):
    code, payload = run_json(
        capsys,
        ["probe", "baseline", demo_target.url, "--rate", "100", "--duration", "3s", "--arrivals", "poisson",
         "--json", "--db", str(tmp_path / "s.duckdb")],
    )  # fmt: skip

    assert code == 0
    requests = payload["steps"][0]["scenarios"][0]["requests"]
    # 300 expected; a Poisson count has a standard deviation of about 17.
    assert 240 <= requests <= 360


@pytest.mark.parametrize(
    ("plan_text", "fragment"),
    [
        ('[[stages]]\nduration = "10s"\ntarget = 60000\n', "above the limit of 50000 rps"),
        ('[[stages]]\nduration = "2h"\ntarget = 10\n', "outside 1 s..3600 s"),
        ('model = "closed"\n[[stages]]\nduration = "10s"\ntarget = 30000\n', "30000 users"),
        ('thresholds = ["p95 under 500"]\n[[stages]]\nduration = "10s"\ntarget = 10\n', "'p95 under 500'"),
        ('thresholds = ["pay.p95<500"]\n[[stages]]\nduration = "10s"\ntarget = 10\n', "scenario 'pay'"),
        ('[[stages]]\nduration = "10s"\n', "needs both duration and target"),
        ('colour = "red"\n[[stages]]\nduration = "10s"\ntarget = 10\n', "unknown key(s) colour"),
        ('[[stages]]\nduration = "10s"\ntarget = 10\nramp = "linear"\n', "stage 1: unknown key(s) ramp"),
    ],
)
def test_plan_rejected_before_sending(tmp_path, capsys, plan_text, fragment):
    plan = tmp_path / "bad.toml"
    plan.write_text('url = "http://127.0.0.1:9/"\n' + plan_text)
    db = tmp_path / "untouched.duckdb"
    code = main(["probe", "run", str(plan), "--db", str(db)])
    err = capsys.readouterr().err

    assert code == 2
    assert fragment in err
    assert not db.exists()


def test_plan_missing_file_exit_2(tmp_path, capsys):
    code = main(["probe", "run", str(tmp_path / "absent.toml"), "--db", str(tmp_path / "s.duckdb")])
    assert code == 2
    assert "absent.toml" in capsys.readouterr().err


def test_plan_slo_marks_step_failed(demo_target, tmp_path, capsys):
    plan = tmp_path / "slo.toml"
    plan.write_text(
        f'url = "{demo_target.url}"\nslo_p95 = "5ms"\nstart_target = 20\n'
        '[[stages]]\nduration = "1s"\ntarget = 20\n[[stages]]\nduration = "1s"\ntarget = 20\n'
    )
    code, payload = run_json(capsys, ["probe", "run", str(plan), "--json", "--db", str(tmp_path / "s.duckdb")])

    # The SLO fails steps without aborting: both stages run, and the first
    # failed one is the breaking point.
    assert code == 0
    assert len(payload["steps"]) == 2
    assert all("SLO 5.0 ms" in step["fail_reason"] for step in payload["steps"])
    assert payload["breaking_point_rps"] == 20
