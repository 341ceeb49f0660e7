"""The Streamlit app, driven by streamlit.testing against real DuckDB files.

Each test fills its own store in tmp_path through the capplan.store write
functions, points CAPPLAN_DB at it and runs capplan/streamlit_app.py.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from capplan.app_pages.charts import demand_chart, latency_chart
from capplan.app_pages.data import daily_peaks, label_step_status
from capplan.store import Store
from capplan.store.forecasts import insert_forecast
from capplan.store.plans import insert_plan
from capplan.store.runs import add_step, create_run, finish_run
from capplan.store.series import write_samples

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_FILE = REPO_ROOT / "capplan" / "streamlit_app.py"
APP_TIMEOUT_S = 60

RUN_STARTED_AT = datetime(2026, 1, 5, 10, 0)
SLO_P95_MS = 500.0
OFFERED_RPS = [50.0, 100.0, 150.0, 200.0, 250.0, 300.0]
P95_MS = [38.0, 42.0, 55.0, 80.0, 160.0, 940.0]
BREAKING_POINT_RPS = 300.0
SAFE_RPS = 240.0
RECOMMENDED_RPS = 180.0

HISTORY_START = datetime(2025, 11, 6)
HISTORY_DAYS = 60
SERIES_NAME = "checkout_rps"

RUNWAY = date(2026, 4, 15)
PLAN_INSTANCES = [3, 3, 4, 4, 5, 5]
CURRENT_INSTANCES = 3


def add_step_run(store: Store, saturated_step: int | None = None) -> int:
    """Write a finished six-step run whose last step breaks the 500 ms p95 SLO."""
    run_id = create_run(
        store,
        kind="step",
        target_url="http://127.0.0.1:8080/checkout",
        started_at=RUN_STARTED_AT,
        slo_p95_ms=SLO_P95_MS,
        max_error_rate=0.01,
        config={"start_rps": 50, "step_rps": 50, "max_rps": 300, "step_duration_s": 30},
    )
    for index, (offered, p95) in enumerate(zip(OFFERED_RPS, P95_MS, strict=True)):
        broken = p95 > SLO_P95_MS
        achieved = offered * (0.87 if broken else 0.999)
        requests = int(offered * 30)
        errors = int(requests * (0.02 if broken else 0.0005))
        add_step(
            store,
            run_id,
            {
                "step_index": index,
                "started_at": RUN_STARTED_AT + timedelta(seconds=30 * index),
                "duration_s": 30.0,
                "offered_rps": offered,
                "achieved_rps": achieved,
                "requests": requests,
                "ok_requests": requests - errors,
                "errors": errors,
                "dropped": 0,
                "error_rate": errors / requests,
                "errors_by_kind": {"http_503": errors} if errors else {},
                "mean_ms": p95 * 0.45,
                "p50_ms": p95 * 0.4,
                "p90_ms": p95 * 0.85,
                "p95_ms": p95,
                "p99_ms": p95 * 1.6,
                "max_ms": p95 * 3.0,
                "service_p95_ms": p95 * 0.95,
                "send_lag_p99_ms": 40.0 if index == saturated_step else 0.8,
                "generator_cpu": 0.97 if index == saturated_step else 0.2 + 0.05 * index,
                "generator_saturated": index == saturated_step,
                "passed": not broken,
                "fail_reason": f"p95 {p95:.0f} ms > SLO {SLO_P95_MS:.0f} ms" if broken else None,
                "latency_hdr": None,
            },
        )
    finish_run(
        store,
        run_id,
        status="finished",
        finished_at=RUN_STARTED_AT + timedelta(seconds=30 * len(OFFERED_RPS)),
        stop_reason="slo_broken",
        breaking_point_rps=BREAKING_POINT_RPS,
        safe_rps=SAFE_RPS,
        recommended_rps=RECOMMENDED_RPS,
    )
    return run_id


def add_history_and_forecast(store: Store) -> int:
    """Write 60 days of hourly demand with a daily cycle and a 6-month forecast of daily peaks."""
    timestamps = pd.date_range(HISTORY_START, periods=HISTORY_DAYS * 24, freq="h")
    hours = np.arange(len(timestamps))
    values = 120.0 + 0.05 * hours + 60.0 * np.sin(2 * np.pi * (hours % 24) / 24)
    write_samples(store, SERIES_NAME, pd.DataFrame({"ts": timestamps, "value": values}), source="csv", unit="rps")

    history_end = timestamps[-1].to_pydatetime()
    days = pd.date_range(history_end.date() + timedelta(days=1), periods=182, freq="D")
    yhat = 260.0 + 0.4 * np.arange(len(days))
    spread = 15.0 + 0.2 * np.arange(len(days))
    points = pd.DataFrame({"ts": days, "yhat": yhat, "lower": yhat - spread, "upper": yhat + spread})
    return insert_forecast(
        store,
        series_name=SERIES_NAME,
        created_at=datetime(2026, 1, 6, 8, 0),
        model="ets",
        resolution="daily_peak",
        level=0.8,
        history_start=HISTORY_START,
        history_end=history_end,
        points=points,
        params={"seasonal_periods": 7},
    )


def add_plan(store: Store, run_id: int, forecast_id: int, runway_date: date | None = RUNWAY) -> int:
    months = pd.DataFrame(
        {
            "month": [date(2026, month, 1) for month in range(2, 8)],
            "months_ahead": list(range(1, 7)),
            "demand_rps": [290.0, 320.0, 540.0, 600.0, 760.0, 820.0],
            "demand_yhat_rps": [270.0, 300.0, 500.0, 560.0, 700.0, 760.0],
            "instances": PLAN_INSTANCES,
            "utilisation": [0.6, 0.67, 0.75, 0.83, 0.79, 0.85],
        }
    )
    return insert_plan(
        store,
        created_at=datetime(2026, 1, 6, 9, 0),
        run_id=run_id,
        forecast_id=forecast_id,
        series_name=SERIES_NAME,
        safe_rps_per_instance=SAFE_RPS,
        redundancy=1,
        current_instances=CURRENT_INSTANCES,
        demand_quantile=0.9,
        runway_date=runway_date,
        policy={"safe_fraction": 0.8, "redundancy": 1},
        months=months,
    )


@pytest.fixture
def filled_store(tmp_path: Path) -> Path:
    store = Store(tmp_path / "capplan.duckdb")
    run_id = add_step_run(store, saturated_step=None)
    forecast_id = add_history_and_forecast(store)
    add_plan(store, run_id, forecast_id)
    return store.path


def run_app(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CAPPLAN_DB", str(db_path))
    app = AppTest.from_file(str(APP_FILE), default_timeout=APP_TIMEOUT_S)
    app.run()
    return app


def metric_value(app: AppTest, label: str) -> str:
    values = [metric.value for metric in app.metric if metric.label == label]
    assert values, f"no metric {label!r}; metrics: {[metric.label for metric in app.metric]}"
    return values[0]


def code_text(app: AppTest) -> str:
    return "\n".join(block.value for block in app.code)


def all_text(app: AppTest) -> str:
    parts = [element.value for element in (*app.markdown, *app.caption, *app.info, *app.warning, *app.error)]
    return "\n".join(str(part) for part in parts)


def steps_table(app: AppTest) -> pd.DataFrame:
    tables = [table.value for table in app.dataframe if "offered_rps" in table.value.columns]
    assert len(tables) == 1
    return tables[0]


def chart_texts(app: AppTest) -> list[str]:
    """Return each chart's Vega-Lite spec followed by the text cells of its datasets."""
    texts = []
    for element in app.get("vega_lite_chart"):
        parts = [element.proto.spec]
        for dataset in element.proto.datasets:
            frame = pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()
            parts += [cell for column in frame for cell in frame[column] if isinstance(cell, str)]
        texts.append("\n".join(parts))
    return texts


def test_app_filled_store_no_exception(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch)

    assert not app.exception
    assert [tab.label for tab in app.tabs] == ["Plan", "Demand", "Load tests"]
    assert str(filled_store) in all_text(app)


def test_root_entry_renders_same_app(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPPLAN_DB", str(filled_store))
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=APP_TIMEOUT_S)
    app.run()

    assert not app.exception
    assert [tab.label for tab in app.tabs] == ["Plan", "Demand", "Load tests"]
    assert metric_value(app, "Runway (UTC date)") == RUNWAY.isoformat()


def test_app_plan_tab_metrics(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch)

    assert metric_value(app, "Runway (UTC date)") == RUNWAY.isoformat()
    assert metric_value(app, "Current instances") == str(CURRENT_INSTANCES)
    assert metric_value(app, "Safe load per instance") == "240 rps"
    assert metric_value(app, "Instances needed in 3 months") == str(PLAN_INSTANCES[2])
    assert metric_value(app, "Instances needed in 6 months") == str(PLAN_INSTANCES[5])
    assert metric_value(app, "Instances needed in 9 months") == "—"
    assert metric_value(app, "Instances needed in 12 months") == "—"


def test_app_runway_beyond_horizon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "long-runway.duckdb")
    run_id = add_step_run(store)
    add_plan(store, run_id, add_history_and_forecast(store), runway_date=None)

    app = run_app(store.path, monkeypatch)

    assert not app.exception
    assert metric_value(app, "Runway (UTC date)") == "beyond 2026-07"
    assert not any("runway date has passed" in error.value for error in app.error)


def test_app_plan_month_table(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch)

    tables = [table.value for table in app.dataframe if "months_ahead" in table.value.columns]
    assert len(tables) == 1
    assert list(tables[0]["instances"]) == PLAN_INSTANCES
    assert list(tables[0]["month"])[:2] == ["2026-02", "2026-03"]


def test_app_load_tests_tab(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch)

    table = steps_table(app)
    assert len(table) == len(OFFERED_RPS)
    assert list(table["status"]) == ["passed"] * 5 + ["failed"]
    assert metric_value(app, "SLO p95") == "500 ms"
    assert metric_value(app, "Breaking point") == "300 rps"
    assert metric_value(app, "Safe load") == "240 rps"
    assert "latency_hdr" not in table.columns


def test_app_latency_chart_has_slo_rule(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch)

    specs = chart_texts(app)
    assert any("SLO p95 500 ms" in spec for spec in specs)
    assert any("breaking point 300 rps" in spec for spec in specs)
    assert any("safe load 240 rps" in spec for spec in specs)


def test_app_demand_tab_interval(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch)

    assert "80 % interval" in all_text(app)
    assert any("80 % interval" in spec for spec in chart_texts(app))
    assert metric_value(app, "Latest daily peak (rps)") != ""


def test_app_missing_store_shows_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(tmp_path / "absent.duckdb", monkeypatch)

    assert not app.exception
    assert "capplan demo --no-serve" in code_text(app)
    assert "capplan plan --run RUN --demand NAME" in code_text(app)
    assert not (tmp_path / "absent.duckdb").exists()


def test_app_empty_store_shows_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "empty.duckdb")
    with store.write():
        pass

    app = run_app(store.path, monkeypatch)

    assert not app.exception
    assert "capplan demo --no-serve" in code_text(app)
    assert "contains no runs, series or plans" in all_text(app)


def test_app_unreadable_store_shows_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "not-duckdb.duckdb"
    path.write_text("this is not a DuckDB file\n")

    app = run_app(path, monkeypatch)

    assert not app.exception
    assert len(app.error) == 1
    assert "could not be read" in app.error[0].value
    assert "capplan demo --no-serve" in code_text(app)


def test_app_run_without_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "runs-only.duckdb")
    add_step_run(store, saturated_step=4)

    app = run_app(store.path, monkeypatch)

    assert not app.exception
    assert "capplan plan --run RUN --demand NAME" in code_text(app)
    assert "capplan collect --csv FILE --name NAME" in code_text(app)
    table = steps_table(app)
    assert len(table) == len(OFFERED_RPS)
    assert table["status"].iloc[4] == "generator saturated"
    assert any("step(s) 4" in warning.value for warning in app.warning)
    assert metric_value(app, "SLO p95") == "500 ms"


def test_app_missing_forecast_only_demand_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "dangling-forecast.duckdb")
    run_id = add_step_run(store)
    add_history_and_forecast(store)
    add_plan(store, run_id, forecast_id=999)

    app = run_app(store.path, monkeypatch)

    assert not app.exception
    assert any("forecast 999 not found" in error.value for error in app.error)
    assert metric_value(app, "Instances needed in 3 months") == str(PLAN_INSTANCES[2])
    assert len(steps_table(app)) == len(OFFERED_RPS)


def test_app_run_picker_switches_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "two-runs.duckdb")
    first_run = add_step_run(store)
    second_run = create_run(
        store,
        kind="baseline",
        target_url="http://127.0.0.1:8080/checkout",
        started_at=RUN_STARTED_AT + timedelta(days=1),
        slo_p95_ms=250.0,
        max_error_rate=0.01,
        config={},
    )
    app = run_app(store.path, monkeypatch)
    picker = app.selectbox(key="load_test_run")
    assert picker.value == second_run
    assert metric_value(app, "SLO p95") == "250 ms"
    assert any("no finished steps" in info.value for info in app.info)

    picker.select(first_run).run()

    assert not app.exception
    assert metric_value(app, "SLO p95") == "500 ms"
    assert len(steps_table(app)) == len(OFFERED_RPS)


def test_app_sees_new_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "growing.duckdb")
    run_id = add_step_run(store)
    app = run_app(store.path, monkeypatch)
    assert "capplan plan --run RUN --demand NAME" in code_text(app)

    forecast_id = add_history_and_forecast(store)
    add_plan(store, run_id, forecast_id)
    app.run()

    assert not app.exception
    assert metric_value(app, "Runway (UTC date)") == RUNWAY.isoformat()


def test_daily_peaks_max_per_utc_day() -> None:
    samples = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2026-01-01 00:00", "2026-01-01 23:00", "2026-01-03 05:00"]),
            "value": [5.0, 9.0, 2.0],
        }
    )

    peaks = daily_peaks(samples)

    assert list(peaks["ts"].dt.strftime("%Y-%m-%d")) == ["2026-01-01", "2026-01-03"]
    assert list(peaks["value"]) == [9.0, 2.0]


def test_step_status_saturated_wins() -> None:
    steps = pd.DataFrame({"passed": [True, False, True], "generator_saturated": [False, False, True]})

    assert list(label_step_status(steps)["status"]) == ["passed", "failed", "generator saturated"]


def test_demand_chart_band_is_utc() -> None:
    history = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01", "2026-01-02"]), "value": [10.0, 12.0]})
    points = pd.DataFrame(
        {"ts": pd.to_datetime(["2026-01-03"]), "yhat": [13.0], "lower": [11.0], "upper": [15.0]}
    )

    spec = json.dumps(demand_chart(history, points, 0.95, "rps").to_dict())

    assert "95 % interval" in spec
    assert '"type": "utc"' in spec
    assert "2026-01-03T00:00:00+00:00" in spec


def test_latency_chart_without_slo() -> None:
    steps = label_step_status(
        pd.DataFrame(
            {
                "step_index": [0, 1],
                "offered_rps": [10.0, 20.0],
                "achieved_rps": [10.0, 20.0],
                "p95_ms": [0.0, 12.0],
                "error_rate": [0.0, 0.0],
                "passed": [True, True],
                "generator_saturated": [False, False],
            }
        )
    )

    spec = latency_chart(steps, slo_p95_ms=None, breaking_point_rps=None, safe_rps=None).to_dict()

    assert "SLO" not in json.dumps(spec)
    rows = [row for dataset in spec["datasets"].values() for row in dataset]
    assert [row["p95_ms"] for row in rows] == [12.0]
