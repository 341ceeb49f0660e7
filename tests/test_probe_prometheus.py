"""The probe stores the target's CPU and memory per step from a real Prometheus."""

from __future__ import annotations

import json

import pytest

from capplan.cli import main
from capplan.store import Store
from capplan.store import runs as run_store
from prometheus_server import start_prometheus, wait_for_series


@pytest.mark.slow
def test_step_stores_target_resources(demo_target, tmp_path, capsys):
    scrape = f"""  - job_name: demo
    scrape_interval: 1s
    static_configs:
      - targets: ['127.0.0.1:{demo_target.port}']
"""
    db = tmp_path / "s.duckdb"
    with start_prometheus(tmp_path / "prometheus", scrape_configs=scrape) as prometheus:
        wait_for_series(prometheus.url, 'process_cpu_seconds_total{job="demo"}')
        code = main(
            ["probe", "step", demo_target.url, "--start", "50", "--step", "50", "--max", "100", "--step-duration", "4s",
             "--prometheus", prometheus.url, "--target-selector", 'job="demo"', "--json", "--db", str(db)]
        )  # fmt: skip
        payload = json.loads(capsys.readouterr().out)

    assert code == 0
    steps = run_store.get_steps(Store(db), payload["run_id"])
    assert len(steps) == 2
    for _, step in steps.iterrows():
        # A Python process serving 50-100 requests/s uses some CPU but far less than a core.
        assert 0.0 < step["target_cpu_cores"] < 1.0
        assert 10e6 < step["target_memory_bytes"] < 2e9
