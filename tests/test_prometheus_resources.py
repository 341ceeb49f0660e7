"""target_resources: the target's CPU and memory during a load-test step, from Prometheus.

The target here is Prometheus itself, which scrapes its own process metrics
every second, so the test can compare the result with /proc/PID/status of
the same process.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from capplan.errors import ConfigError
from capplan.store import Store
from loadprobe.prometheus.resources import selector_text, target_resources
from loadprobe.prometheus.timegrid import utc_now
from loadprobe.target_process import free_port
from prometheus_server import PrometheusServer, shop_prometheus, wait_for_series

__all__ = ["shop_prometheus"]  # the fixture, imported so pytest finds it here


def resident_bytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_resources_of_scraped_process(shop_prometheus: PrometheusServer) -> None:
    wait_for_series(shop_prometheus.url, 'process_cpu_seconds_total{job="prometheus"}')
    time.sleep(3.0)  # at least three scrapes inside the step
    end = utc_now()
    values = target_resources(shop_prometheus.url, end - timedelta(seconds=4), end, {"job": "prometheus"})
    rss = resident_bytes(shop_prometheus.process.pid)
    assert set(values) == {"target_cpu_cores", "target_memory_bytes"}
    assert values["target_cpu_cores"] is not None
    assert 0.0 <= values["target_cpu_cores"] <= os.cpu_count()
    assert values["target_memory_bytes"] == pytest.approx(rss, rel=0.5)


def test_resources_without_matching_target_none(shop_prometheus: PrometheusServer) -> None:
    end = utc_now()
    values = target_resources(shop_prometheus.url, end - timedelta(seconds=10), end, 'job="no-such-job"')
    assert values == {"target_cpu_cores": None, "target_memory_bytes": None}


def test_resources_unreachable_warns_and_returns_none(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="loadprobe.prometheus.resources")
    end = utc_now()
    values = target_resources(f"http://127.0.0.1:{free_port()}", end - timedelta(seconds=10), end, None)
    assert values == {"target_cpu_cores": None, "target_memory_bytes": None}
    assert "target target_cpu_cores for the step ending" in caplog.text
    assert "cannot connect" in caplog.text


def test_resources_empty_step_rejected() -> None:
    end = utc_now()
    with pytest.raises(ConfigError, match="is not after its start"):
        target_resources("http://127.0.0.1:9", end, end, None)


def test_selector_from_mapping_escaped() -> None:
    assert selector_text({"job": "api", "pod": 'a"b'}) == 'job="api",pod="a\\"b"'
    assert selector_text('job=~"api|web"') == 'job=~"api|web"'
    with pytest.raises(ConfigError, match="without braces"):
        selector_text('{job="api"}')


def test_steps_have_target_columns(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    with store.write():
        pass
    with duckdb.connect(str(store.path), read_only=True) as con:
        columns = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'steps'").fetchall())
    assert columns["target_cpu_cores"] == "DOUBLE"
    assert columns["target_memory_bytes"] == "DOUBLE"
