"""Fleet forecasts on a real Dask cluster: a scheduler and two workers started on 127.0.0.1.

Dask is installed by the test extra, so a failed import fails these tests
instead of skipping them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client

import forecasting.fleet_cluster as fleet_cluster
from capplan.cli import main
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.store.series import write_samples
from forecasting.fleet import CHUNK_PER_WORKER, forecast_fleet, select_series
from forecasting.forecast import ForecastOptions
from loadprobe.target_process import free_port

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# With 2 worker threads a chunk has 16 series, so 41 series make two full chunks and a partial one.
# The third chunk matters when the workers are killed: it is submitted only after the first chunk
# comes back, so it always meets a cluster without workers.
GOOD_SERIES = 40
BAD_SERIES = "svc_short"  # sorts after the svc_NNN names, so it lands in the last chunk
HORIZON = pd.DateOffset(days=14)
FAST = ForecastOptions(candidates=("seasonal_naive", "ets_damped"), folds=2)
FAST_CLI = ["--horizon", "14d", "--resolution", "daily_peak", "--models", "seasonal_naive,ets_damped", "--folds", "2"]
POINT_COLUMNS = "ts, yhat, lower, upper, lower_80, upper_80, lower_95, upper_95"


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


@contextmanager
def running_dask(root: Path, workers: int = 2) -> Iterator[DaskCluster]:
    """Run ``dask scheduler`` and ``workers`` single-thread ``dask worker`` processes on 127.0.0.1.

    Workers run without a nanny, so killing a worker process removes it from
    the cluster instead of having it restarted. Every HTTP endpoint binds to
    127.0.0.1 on a port the system picks.
    """
    root.mkdir(parents=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        log = (root / "scheduler.log").open("wb")
        logs.append(log)
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--dashboard-address", "127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        processes.append(scheduler)
        started = []
        for index in range(workers):
            log = (root / f"worker{index}.log").open("wb")
            logs.append(log)
            worker = subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--no-nanny", "--dashboard-address", "127.0.0.1:0", "--local-directory", str(root / f"worker{index}"),
                 "--name", f"worker{index}"],
                stdout=log, stderr=subprocess.STDOUT,
            )
            processes.append(worker)
            started.append(worker)
        _wait_for_workers(address, workers, processes, root)
        yield DaskCluster(address, scheduler, started)
    finally:
        # Workers first, while the scheduler still runs: stopped together, a worker outlived a 10 s wait.
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def _wait_for_workers(address: str, workers: int, processes: list[subprocess.Popen[bytes]], root: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        exited = [process.args for process in processes if process.poll() is not None]
        if exited:
            pytest.fail(f"a Dask process exited during start-up: {exited[0]}; logs in {root}")
        try:
            with Client(address, timeout=5, set_as_default=False) as client:
                if workers > 0:
                    client.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
                return
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                pytest.fail(f"the Dask cluster at {address} did not get {workers} workers within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A scheduler and two workers shared by the tests that leave them running."""
    with running_dask(tmp_path_factory.mktemp("dask") / "cluster") as cluster:
        yield cluster


def _hourly(days: int, seed: int) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=24 * days, freq="h")
    hours = np.arange(len(ts))
    rng = np.random.default_rng(seed)
    values = rng.uniform(50, 500) * (1 + 0.2 * np.sin(2 * np.pi * hours / 24)) + rng.normal(0, 2, len(ts))
    return pd.DataFrame({"ts": ts, "value": values})


def _fleet_store(path: Path) -> Store:
    store = Store(path)
    for index in range(GOOD_SERIES):
        write_samples(store, f"svc_{index:03d}", _hourly(30, index), source="csv")
    write_samples(store, BAD_SERIES, _hourly(2, 99), source="csv")  # too short for a daily-peak forecast
    return store


def _points(store: Store, forecast_id: int) -> list[tuple[object, ...]]:
    with store.read() as con:
        return con.execute(
            f"SELECT {POINT_COLUMNS} FROM forecast_points WHERE forecast_id = ? ORDER BY ts", [forecast_id]
        ).fetchall()


def _forecast_ids(payload: dict[str, object]) -> dict[str, int]:
    return {row["series"]: row["forecast_id"] for row in payload["forecasts"]}  # type: ignore[index, union-attr]


def test_cli_cluster_matches_local(
    dask_cluster: DaskCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _fleet_store(tmp_path / "fleet.duckdb")
    good = [f"svc_{index:03d}" for index in range(GOOD_SERIES)]

    code = main(["forecast", "--all", "--db", str(store.path), "--cluster", dask_cluster.address, "--json", *FAST_CLI])
    on_cluster = json.loads(capsys.readouterr().out)
    local_code = main(["forecast", "--all", "--db", str(store.path), "--workers", "1", "--json", *FAST_CLI])
    local = json.loads(capsys.readouterr().out)

    assert code == 1
    assert local_code == 1
    assert on_cluster["cluster"] == dask_cluster.address
    assert on_cluster["workers"] == 2
    assert on_cluster["succeeded"] == GOOD_SERIES
    assert [row["series"] for row in on_cluster["failed"]] == [BAD_SERIES]
    assert "InputDataError" in on_cluster["failed"][0]["error"]
    cluster_ids = _forecast_ids(on_cluster)
    local_ids = _forecast_ids(local)
    assert sorted(cluster_ids) == good
    assert sorted(local_ids) == good
    for name in good:
        cluster_points = _points(store, cluster_ids[name])
        assert len(cluster_points) == 14
        assert cluster_points == _points(store, local_ids[name]), name


def test_cluster_worker_killed_others_finish(tmp_path: Path) -> None:
    store = _fleet_store(tmp_path / "fleet.duckdb")
    names = select_series(store)
    reference = _fleet_store(tmp_path / "reference.duckdb")
    local = forecast_fleet(reference, names, HORIZON, 0.8, ("daily_peak",), FAST, workers=1)

    with running_dask(tmp_path / "dask") as cluster:
        victim = cluster.workers[0]

        def kill_one_worker(done: int, total: int) -> None:
            if victim.poll() is None:
                victim.kill()  # the first chunk is stored; the second was submitted before that

        report = forecast_fleet(
            store, names, HORIZON, 0.8, ("daily_peak",), FAST, cluster=cluster.address, progress=kill_one_worker,
        )
        victim_code = victim.wait(timeout=STOP_TIMEOUT_S)

    assert victim_code != 0
    assert sorted(report.stored) == sorted(local.stored)
    assert [failure.series_name for failure in report.failures] == [BAD_SERIES]
    for name, rows in report.stored.items():
        ((cluster_id, _, cluster_model),) = rows
        ((local_id, _, local_model),) = local.stored[name]
        assert cluster_model == local_model, name
        assert _points(store, cluster_id) == _points(reference, local_id), name


def test_cluster_all_workers_killed_times_out(tmp_path: Path) -> None:
    store = _fleet_store(tmp_path / "fleet.duckdb")
    names = select_series(store)

    with running_dask(tmp_path / "dask") as cluster:

        # Called once the first chunk is stored, before the third chunk is submitted.
        def kill_all_workers(done: int, total: int) -> None:
            for worker in cluster.workers:
                if worker.poll() is None:
                    worker.kill()

        report = forecast_fleet(
            store, names, HORIZON, 0.8, ("daily_peak",), FAST, cluster=cluster.address, cluster_timeout_s=5.0,
            progress=kill_all_workers,
        )

    errors = {failure.series_name: failure.error for failure in report.failures}
    timed_out = [name for name, error in errors.items() if "TimeoutError" in error]
    assert len(report.stored) + len(report.failures) == len(names)
    assert len(report.stored) >= 2 * CHUNK_PER_WORKER  # the first chunk was stored before the workers died
    assert timed_out
    assert BAD_SERIES in errors
    with store.read() as con:
        (forecasts,) = con.execute("SELECT count(*) FROM forecasts").fetchone()
    assert forecasts == len(report.stored)


def test_cli_cluster_unreachable_fails_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _fleet_store(tmp_path / "fleet.duckdb")
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens here

    started = time.monotonic()
    code = main(["forecast", "--all", "--db", str(store.path), "--cluster", address, *FAST_CLI])
    elapsed_s = time.monotonic() - started

    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot reach the Dask scheduler at {address}" in err
    assert "dask scheduler" in err
    assert "drop --cluster" in err
    assert elapsed_s < fleet_cluster.CONNECT_TIMEOUT_S + 10  # bounded by the connect timeout, not a speed goal
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM forecasts").fetchone() == (0,)


def test_cli_cluster_invalid_address_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _fleet_store(tmp_path / "fleet.duckdb")

    code = main(["forecast", "--all", "--db", str(store.path), "--cluster", "127.0.0.1"])

    err = capsys.readouterr().err
    assert code == 2
    assert "--cluster '127.0.0.1' is invalid" in err
    assert "tcp://127.0.0.1:8786" in err


def test_cli_cluster_with_workers_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _fleet_store(tmp_path / "fleet.duckdb")

    code = main(["forecast", "--all", "--db", str(store.path), "--cluster", "tcp://127.0.0.1:8786", "--workers", "2"])

    assert code == 2
    assert "--workers and --cluster exclude each other" in capsys.readouterr().err


def test_cluster_without_workers_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _fleet_store(tmp_path / "fleet.duckdb")
    monkeypatch.setattr(fleet_cluster, "WORKER_WAIT_S", 2.0)

    with running_dask(tmp_path / "dask", workers=0) as cluster:
        with pytest.raises(ConfigError, match="has no workers after 2 s"):
            forecast_fleet(store, select_series(store), HORIZON, 0.8, ("daily_peak",), FAST, cluster=cluster.address)
