"""Importing Locust --csv files: _stats_history.csv, _stats.csv and _failures.csv.

The tests simulate a Locust run with known per-request latencies and write
the three files the way Locust 2.x does. Response times are rounded to two
significant digits above 100 ms and percentiles are taken from the rounded
counts. History rows carry cumulative totals, with N/A before the first
request.
"""

from __future__ import annotations

import csv
import importlib.util
import random
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from capplan.errors import InputDataError
from loadprobe.importers import ImportOptions, read_file
from loadprobe.importers.locust_csv import monotone_percentiles

PERCENTILES = [0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0]
PERCENTILE_NAMES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
HISTORY_COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PERCENTILE_NAMES,
                   "Total Request Count", "Total Failure Count", "Total Median Response Time",
                   "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
                   "Total Average Content Size"]
STATS_COLUMNS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
                 "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
                 *PERCENTILE_NAMES]
T0 = int(datetime(2026, 11, 30, 8, 0, 0, tzinfo=timezone.utc).timestamp())
# (users, requests per second, latency range in ms) for three 30-second steps.
STEPS = [(10, 20, (10.0, 30.0)), (20, 40, (40.0, 80.0)), (40, 60, (200.0, 600.0))]


def rounded(milliseconds: float) -> int:
    """Round a response time to two significant digits above 100 ms, as Locust stores it."""
    if milliseconds < 100:
        return round(milliseconds)
    digits = -2 if milliseconds >= 1000 else -1
    if milliseconds >= 10000:
        digits = -3
    return int(round(milliseconds, digits))


def percentile_of(counts: dict[int, int], total: int, fraction: float) -> int:
    """Return the smallest stored time that at least ``fraction`` of the requests did not exceed."""
    rank = int(total * fraction)
    seen = 0
    for value in sorted(counts, reverse=True):
        seen += counts[value]
        if total - seen <= rank:
            return value
    return 0


class LocustSimulation:
    def __init__(self, steps=STEPS, failed_every: int = 0, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.steps = steps
        self.failed_every = failed_every
        self.latencies: list[list[float]] = []  # per step

    def write(self, folder: Path, *, prefix: str = "run", full_history: bool = False) -> Path:
        counts: dict[int, int] = {}
        total = failures = 0
        total_ms = 0.0
        minimum, maximum = float("inf"), 0.0
        rows = [HISTORY_COLUMNS]
        second_counts: list[dict[int, int]] = []
        for _ in range(2):  # Locust writes rows before the first request: N/A percentiles
            rows.append([str(T0 - 2 + _), "0", "", "Aggregated", "0.000000", "0.000000", *["N/A"] * 11,
                         "0", "0", "0", "0.0", "0", "0", "0.0"])
        for index, (users, rate, (low, high)) in enumerate(self.steps):
            step_latencies = []
            for second in range(30):
                now = T0 + index * 30 + second
                window: dict[int, int] = {}
                for number in range(rate):
                    latency = self.rng.uniform(low, high)
                    step_latencies.append(latency)
                    key = rounded(latency)
                    counts[key] = counts.get(key, 0) + 1
                    window[key] = window.get(key, 0) + 1
                    total += 1
                    total_ms += latency
                    minimum, maximum = min(minimum, latency), max(maximum, latency)
                    if self.failed_every and total % self.failed_every == 0:
                        failures += 1
                second_counts.append(window)
                if full_history:
                    merged: dict[int, int] = {}
                    for recent in second_counts[-10:]:
                        for key, count in recent.items():
                            merged[key] = merged.get(key, 0) + count
                    reported = merged
                    reported_total = sum(merged.values())
                    rows.append([str(now), str(users), "GET", "/", f"{rate:2f}", "0.000000",
                                 *[str(percentile_of(reported, reported_total, p)) for p in PERCENTILES],
                                 str(total), str(failures), str(percentile_of(counts, total, 0.5)),
                                 str(total_ms / total), str(round(minimum)), str(maximum), "2.0"])
                else:
                    reported, reported_total = counts, total
                rows.append([str(now), str(users), "", "Aggregated", f"{rate:2f}", "0.000000",
                             *[str(percentile_of(reported, reported_total, p)) for p in PERCENTILES],
                             str(total), str(failures), str(percentile_of(counts, total, 0.5)),
                             str(total_ms / total), str(round(minimum)), str(maximum), "2.0"])
            self.latencies.append(step_latencies)
        history = folder / f"{prefix}_stats_history.csv"
        self._write(history, rows)
        duration_s = 30 * len(self.steps)
        aggregated = ["", "Aggregated", str(total), str(failures), str(percentile_of(counts, total, 0.5)),
                      str(total_ms / total), str(minimum), str(maximum), "2.0", str(total / duration_s),
                      str(failures / duration_s), *[str(percentile_of(counts, total, p)) for p in PERCENTILES]]
        self._write(folder / f"{prefix}_stats.csv", [STATS_COLUMNS, ["GET", "/", *aggregated[2:]], aggregated])
        failures_rows = [["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"]]
        if failures:
            failures_rows.append(["GET", "/", "HTTPError('503 Server Error: Service Unavailable for url: /')",
                                  str(failures), str(T0), str(T0 + duration_s)])
        self._write(folder / f"{prefix}_failures.csv", failures_rows)
        return history

    @staticmethod
    def _write(path: Path, rows: list[list[str]]) -> None:
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)


@pytest.mark.parametrize("full_history", [False, True], ids=["cumulative", "full-history"])
def test_locust_history_steps_from_users(tmp_path, full_history):
    simulation = LocustSimulation()
    history = simulation.write(tmp_path, full_history=full_history)
    result = read_file(str(history), ImportOptions())

    (run,) = result.runs
    assert run.info.tool == "locust"
    assert run.info.workload_model == "closed"
    assert run.requests == 30 * (20 + 40 + 60)
    assert [step["users"] for step in run.steps] == [10, 20, 40]
    for step, latencies in zip(run.steps, simulation.latencies):
        true_p95 = float(np.percentile(latencies, 95))
        assert step["p95_ms"] == pytest.approx(true_p95, rel=0.15)
        assert step["mean_ms"] == pytest.approx(float(np.mean(latencies)), rel=0.02)
        assert step["p50_ms"] <= step["p90_ms"] <= step["p95_ms"] <= step["p99_ms"] <= step["max_ms"]
    assert run.steps[2]["max_ms"] == pytest.approx(max(simulation.latencies[2]))
    assert run.steps[1]["offered_rps"] == pytest.approx(40, rel=0.05)


def test_locust_history_na_rows_skipped(tmp_path):
    history = LocustSimulation().write(tmp_path)
    result = read_file(str(history), ImportOptions())

    assert result.malformed_lines == 0
    assert result.runs[0].steps[0]["requests"] == 600


def test_locust_failures_give_error_kinds(tmp_path):
    history = LocustSimulation(failed_every=50).write(tmp_path)
    run = read_file(str(history), ImportOptions()).runs[0]

    assert run.errors == 3600 // 50
    assert set().union(*(step["errors_by_kind"] for step in run.steps)) == {"http_5xx"}
    assert run.info.config["locust_failures"] == {"http_5xx": 72}


def test_locust_stats_only_one_step(tmp_path):
    LocustSimulation().write(tmp_path)
    (tmp_path / "run_stats_history.csv").unlink()
    started = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    run = read_file(str(tmp_path / "run_stats.csv"), ImportOptions(started_at=started)).runs[0]

    (step,) = run.steps
    assert step["requests"] == 3600
    assert step["duration_s"] == pytest.approx(90.0)
    assert step["started_at"] == datetime(2026, 11, 30, 8, 0)


def test_locust_rounded_percentiles_monotone(tmp_path):
    # Rounding to two digits can put 99% (1100) above 100% (1000) and above the
    # exact maximum (1049.7 ms): percentiles are kept monotone and capped.
    path = tmp_path / "odd_stats.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(STATS_COLUMNS)
        writer.writerow(["", "Aggregated", "1000", "0", "120", "150.2", "8", "1049.7", "2.0", "10.0", "0.0",
                         "120", "130", "140", "150", "400", "900", "1000", "1100", "1000", "1000", "1000"])
    step = read_file(str(path), ImportOptions(started_at=datetime(2026, 11, 30, tzinfo=timezone.utc))).runs[0].steps[0]

    assert step["max_ms"] == 1049.7
    assert step["p99_ms"] == 1049.7
    assert step["p95_ms"] == 900
    assert step["p50_ms"] <= step["p90_ms"] <= step["p95_ms"] <= step["p99_ms"] <= step["max_ms"]


def test_monotone_percentiles_caps_at_max():
    assert monotone_percentiles({50.0: 10, 90.0: 8, 99.0: 30}, 25.0) == {50.0: 10, 90.0: 10, 99.0: 25.0}


def test_locust_failures_file_finds_siblings(tmp_path):
    LocustSimulation(failed_every=100).write(tmp_path)
    run = read_file(str(tmp_path / "run_failures.csv"), ImportOptions()).runs[0]

    assert len(run.steps) == 3
    assert run.errors == 36


def test_locust_failures_alone_rejected(tmp_path):
    LocustSimulation(failed_every=100).write(tmp_path)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "x_failures.csv").write_text((tmp_path / "run_failures.csv").read_text())
    with pytest.raises(InputDataError) as excinfo:
        read_file(str(alone / "x_failures.csv"), ImportOptions())

    assert "_stats_history.csv" in str(excinfo.value)


LOCUSTFILE = """
from locust import HttpUser, LoadTestShape, constant, task


class Visitor(HttpUser):
    wait_time = constant(0.1)

    @task
    def home(self):
        self.client.get("/")


class TwoSteps(LoadTestShape):
    def tick(self):
        run_time = self.get_run_time()
        if run_time < 8:
            return (2, 10)
        if run_time < 16:
            return (5, 10)
        return None
"""


@pytest.mark.slow
def test_locust_real_run_imported(tmp_path, demo_target):
    # find_spec, not import: importing locust monkey-patches this process with gevent.
    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust is not installed in this environment")
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = tmp_path / "real"
    completed = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", demo_target.url.rstrip("/"),
         "--csv", str(prefix), "--only-summary"],
        capture_output=True, text=True, timeout=90,
    )
    assert (tmp_path / "real_stats_history.csv").exists(), completed.stderr[-2000:]
    with (tmp_path / "real_stats.csv").open(newline="") as handle:
        aggregated = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")

    run = read_file(str(tmp_path / "real_stats_history.csv"), ImportOptions()).runs[0]

    assert run.requests == int(aggregated["Request Count"])
    assert run.errors == int(aggregated["Failure Count"]) == 0
    assert [step["users"] for step in run.steps] == [2, 5]
    # Each user waits 0.1 s after a response of about 20 ms: about 8 requests/s per user.
    assert run.steps[1]["achieved_rps"] > run.steps[0]["achieved_rps"] * 1.8
    assert run.steps[1]["p50_ms"] >= 15.0
