"""The Streamlit app, every page driven by streamlit.testing against real DuckDB files.

Each test fills its own store in tmp_path through the capplan.store write
functions, points CAPPLAN_DB at it and runs the script that ``capplan app``
serves, opening a page with the ``?page=`` query parameter. The helpers that
fill a store are imported by the other app test modules too.
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
APP_FILE = REPO_ROOT / "capplan" / "app_entry" / "capplan_app.py"
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


PAGE_TITLES = {
    "overview": "Overview",
    "demand": "Demand",
    "load-tests": "Load tests",
    "plan": "Capacity plan",
    "scenarios": "Scenarios",
    "bottlenecks": "Bottlenecks",
    "sql": "SQL",
}


@pytest.fixture
def filled_store(tmp_path: Path) -> Path:
    store = Store(tmp_path / "capplan.duckdb")
    run_id = add_step_run(store, saturated_step=None)
    forecast_id = add_history_and_forecast(store)
    add_plan(store, run_id, forecast_id)
    return store.path


def run_app(db_path: Path, monkeypatch: pytest.MonkeyPatch, page: str = "overview", timezone: str | None = None) -> AppTest:
    monkeypatch.setenv("CAPPLAN_DB", str(db_path))
    app = AppTest.from_file(str(APP_FILE), default_timeout=APP_TIMEOUT_S)
    app.query_params["page"] = page
    if timezone is not None:
        app.query_params["tz"] = timezone
    app.run()
    return app


def metric_value(app: AppTest, label: str) -> str:
    values = [metric.value for metric in app.metric if metric.label == label]
    assert values, f"no metric {label!r}; metrics: {[metric.label for metric in app.metric]}"
    return values[0]


def code_text(app: AppTest) -> str:
    return "\n".join(block.value for block in app.code)


def all_text(app: AppTest) -> str:
    parts = [element.value for element in (*app.markdown, *app.caption, *app.info, *app.warning, *app.error, *app.success)]
    return "\n".join(str(part) for part in parts)


def table_with(app: AppTest, column: str) -> pd.DataFrame:
    tables = [table.value for table in app.dataframe if column in table.value.columns]
    assert tables, f"no table with column {column!r}"
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


def add_second_plan(store: Store, run_id: int, forecast_id: int) -> int:
    """Write a later plan with one more instance today, a later runway and more instances needed."""
    months = pd.DataFrame(
        {
            "month": [date(2026, month, 1) for month in range(2, 8)],
            "months_ahead": list(range(1, 7)),
            "demand_rps": [300.0, 330.0, 560.0, 640.0, 800.0, 900.0],
            "demand_yhat_rps": [280.0, 310.0, 520.0, 600.0, 740.0, 820.0],
            "instances": [4, 4, 5, 5, 6, 6],
            "utilisation": [0.6, 0.67, 0.75, 0.83, 0.79, 0.85],
        }
    )
    return insert_plan(
        store,
        created_at=datetime(2026, 2, 1, 9, 0),
        run_id=run_id,
        forecast_id=forecast_id,
        series_name=SERIES_NAME,
        safe_rps_per_instance=SAFE_RPS,
        redundancy=1,
        current_instances=CURRENT_INSTANCES + 1,
        demand_quantile=0.9,
        runway_date=date(2026, 5, 20),
        policy={"redundancy": 1},
        months=months,
    )


@pytest.mark.parametrize("page", list(PAGE_TITLES))
def test_app_page_renders_without_exception(page: str, filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, page)

    assert not app.exception
    assert [title.value for title in app.title] == [PAGE_TITLES[page]]
    assert not app.error or page == "overview"  # the fixture's runway date lies in the past
    assert app.radio(key="page").value == page


def test_root_entry_renders_same_app(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPPLAN_DB", str(filled_store))
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=APP_TIMEOUT_S)
    app.run()

    assert not app.exception
    assert [title.value for title in app.title] == ["Overview"]
    assert metric_value(app, "Runway (UTC date)") == RUNWAY.isoformat()


def test_app_entry_folder_holds_only_entry() -> None:
    names = sorted(path.name for path in APP_FILE.parent.iterdir() if path.name != "__pycache__")

    assert names == ["__init__.py", "capplan_app.py"]


def test_overview_runway_and_milestones(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "overview")

    assert metric_value(app, "Runway (UTC date)") == RUNWAY.isoformat()
    assert metric_value(app, "Instances today") == str(CURRENT_INSTANCES)
    assert metric_value(app, "Instances needed in 3 months") == str(PLAN_INSTANCES[2])
    assert metric_value(app, "Instances needed in 6 months") == str(PLAN_INSTANCES[5])
    assert metric_value(app, "Instances needed in 9 months") == "—"
    assert metric_value(app, "Instances needed in 12 months") == "—"
    assert "runway date has passed" in app.error[0].value


def test_overview_policy_in_force(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "overview")

    policy = table_with(app, "setting").set_index("setting")["value"]
    assert policy["SLO p95 latency"] == "500 ms"
    assert policy["Safe load per instance"] == "240 rps"
    assert policy["Redundancy"] == "N+1"
    assert "only plan in the store" in all_text(app)


def test_overview_changes_since_previous_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "two-plans.duckdb")
    run_id = add_step_run(store)
    forecast_id = add_history_and_forecast(store)
    add_plan(store, run_id, forecast_id)
    add_second_plan(store, run_id, forecast_id)

    app = run_app(store.path, monkeypatch, "overview")

    changes = table_with(app, "change").set_index("what")
    assert changes.loc["Runway", "previous"] == RUNWAY.isoformat()
    assert changes.loc["Runway", "latest"] == "2026-05-20"
    assert changes.loc["Runway", "change"] == "+35 days"
    assert changes.loc["Instances today", "change"] == "+1"
    assert changes.loc["Needed in 3 months", "change"] == "+1"


def test_overview_runway_beyond_horizon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "long-runway.duckdb")
    run_id = add_step_run(store)
    add_plan(store, run_id, add_history_and_forecast(store), runway_date=None)

    app = run_app(store.path, monkeypatch, "overview")

    assert not app.exception
    assert metric_value(app, "Runway (UTC date)") == "beyond 2026-07"
    assert metric_value(app, "Shortfall chance that day") == "—"
    assert not app.error


def test_timezone_picker_shows_local_times(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "overview", timezone="Europe/Berlin")

    assert app.selectbox(key="timezone").value == "Europe/Berlin"
    assert "made 2026-01-06 10:00 Europe/Berlin" in all_text(app)

    app.selectbox(key="timezone").set_value("UTC").run()

    assert "made 2026-01-06 09:00 UTC" in all_text(app)
    assert "tz" not in app.query_params


def test_demand_fan_has_80_and_95_bands(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "demand")

    charts = chart_texts(app)
    assert any("80 % interval" in chart and "95 % interval (scaled)" in chart for chart in charts)
    assert metric_value(app, "Latest daily peak (rps)") != ""
    assert "no stored backtest scores" in all_text(app)


def test_demand_shows_saved_scenario_overlay(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from capplan.app_pages.scenario_model import PlanSettings
    from capplan.store.scenarios import save_plan_scenario

    settings = PlanSettings(growth_per_year=0.5, redundancy=1, current_instances=3)
    save_plan_scenario(
        Store(filled_store), "fast growth", settings.to_json(), series_name=SERIES_NAME, run_id=1,
        saved_at=datetime(2026, 1, 7),
    )
    app = run_app(filled_store, monkeypatch, "demand")

    app.multiselect(key="demand_overlays").select("fast growth").run()

    assert not app.exception
    assert any("fast growth" in chart for chart in chart_texts(app))


def test_load_tests_percentiles_with_slo(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "load-tests")

    table = table_with(app, "offered_rps")
    assert len(table) == len(OFFERED_RPS)
    assert list(table["status"]) == ["passed"] * 5 + ["failed"]
    assert metric_value(app, "SLO p95") == "500 ms"
    assert metric_value(app, "Breaking point") == "300 rps"
    charts = chart_texts(app)
    assert any("SLO p95 500 ms" in chart and "p99" in chart for chart in charts)
    assert any("breaking point 300 rps" in chart for chart in charts)


def test_load_tests_flags_saturated_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "runs-only.duckdb")
    add_step_run(store, saturated_step=4)

    app = run_app(store.path, monkeypatch, "load-tests")

    assert not app.exception
    assert table_with(app, "offered_rps")["status"].iloc[4] == "generator saturated"
    assert any("Step(s) 4: the load generator fell behind" in warning.value for warning in app.warning)


def test_load_tests_two_runs_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "two-runs.duckdb")
    add_step_run(store)
    add_step_run(store, saturated_step=2)
    app = run_app(store.path, monkeypatch, "load-tests")

    app.segmented_control(key="load_test_mode").set_value("Two runs side by side").run()

    assert not app.exception
    assert app.selectbox(key="compare_left").value == 1
    assert app.selectbox(key="compare_right").value == 2
    assert [metric.value for metric in app.metric if metric.label == "Breaking point"] == ["300 rps", "300 rps"]
    assert any("Step(s) 2" in warning.value for warning in app.warning)

    app.selectbox(key="compare_left").select(2).run()

    assert not app.exception


def test_plan_page_cost_and_csv(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "plan")

    app.number_input(key="plan_price_per_instance_hour").set_value(0.5).run()

    table = table_with(app, "predicted_p95_ms")
    february_hours = 28 * 24
    assert table["cost"].iloc[0] == pytest.approx(PLAN_INSTANCES[0] * february_hours * 0.5)
    assert list(table["instances"]) == PLAN_INSTANCES
    assert table["predicted_p95_ms"].notna().any()
    assert table["shortfall_probability"].between(0, 1).all()
    assert app.get("download_button")


def test_scenarios_growth_raises_instances(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "scenarios")
    flat = table_with(app, "total_cost").set_index("scenario")
    assert metric_value(app, "Runway (UTC date)").startswith("beyond")

    app.slider(key="scenario_growth_pct").set_value(100.0).run()

    grown = table_with(app, "total_cost").set_index("scenario")
    assert not app.exception
    assert grown.loc["current settings", "instances_6mo"] > flat.loc["current settings", "instances_6mo"]
    assert grown.loc["stored plan", "instances_6mo"] == flat.loc["stored plan", "instances_6mo"]
    assert not metric_value(app, "Runway (UTC date)").startswith("beyond")


def test_scenarios_slo_sets_safe_load(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "scenarios")
    assert metric_value(app, "Planned load per instance") == "240 rps"

    app.slider(key="scenario_slo_ms").set_value(100.0).run()

    # p95 is 160 ms at 250 rps, the first step over 100 ms, and safe load is 80 % of it.
    assert metric_value(app, "Planned load per instance") == "200 rps"

    app.slider(key="scenario_headroom_pct").set_value(25).run()

    assert metric_value(app, "Planned load per instance") == "150 rps"


def test_scenarios_save_and_compare(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from capplan.store.scenarios import list_plan_scenarios

    app = run_app(filled_store, monkeypatch, "scenarios")
    app.slider(key="scenario_growth_pct").set_value(50.0).run()
    app.text_input(key="scenario_name").input("half again").run()

    [save] = [button for button in app.button if button.label == "Save scenario"]
    save.click().run()

    assert not app.exception
    assert any("Saved scenario `half again`" in message.value for message in app.success)
    saved = list_plan_scenarios(Store(filled_store))
    assert list(saved["name"]) == ["half again"]
    assert '"growth_per_year": 0.5' in saved["settings"].iloc[0]
    compared = table_with(app, "total_cost")
    assert "half again" in list(compared["scenario"])


def test_bottlenecks_without_analysis_shows_command(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "bottlenecks")

    assert "capplan analyze --prometheus URL" in code_text(app)


def test_bottlenecks_latest_analysis(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(filled_store)
    with store.write() as con:
        for analysis_id, created in ((1, datetime(2026, 1, 1)), (2, datetime(2026, 1, 8))):
            con.execute(
                """
                INSERT INTO analyses (analysis_id, created_at, prometheus_url, window_start, window_end, status,
                                      throughput_rps, error_rate, p95_ms, cpu_utilisation, thresholds, config)
                VALUES (?, ?, 'http://127.0.0.1:9090', ?, ?, 'critical', 420.0, 0.02, 640.0, 0.93, '{}', '{}')
                """,
                [analysis_id, created, created - timedelta(hours=1), created],
            )
        con.execute(
            """
            INSERT INTO analysis_bottlenecks VALUES
                (1, 'p95_ms', 'warning', 300.0, 250.0, 'ms', 'old finding'),
                (2, 'error_rate', 'warning', 0.02, 0.01, 'fraction', 'look at the 5xx responses'),
                (2, 'cpu_utilisation', 'critical', 0.93, 0.85, 'fraction', 'add instances')
            """
        )

    app = run_app(filled_store, monkeypatch, "bottlenecks")

    findings = table_with(app, "recommendation")
    assert list(findings["metric"]) == ["cpu_utilisation", "error_rate"]
    assert metric_value(app, "Status") == "critical"
    assert metric_value(app, "p95 latency") == "640 ms"


def test_sql_page_runs_select(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "sql")
    app.text_area(key="sql_query").input("SELECT run_id, safe_rps FROM runs").run()

    [run] = [button for button in app.button if button.label == "Run query"]
    run.click().run()

    result = table_with(app, "safe_rps")
    assert list(result["safe_rps"]) == [SAFE_RPS]
    assert any("plan_months" in expander.label for expander in app.expander)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("COPY runs TO '/tmp/capplan-runs.csv'", "COPY statements are rejected"),
        ("ATTACH '/tmp/other.duckdb'", "ATTACH statements are rejected"),
        ("SELECT * FROM read_csv('/etc/passwd')", "reading or writing files is disabled"),
        ("DROP TABLE runs", "DROP statements are rejected"),
    ],
    ids=["copy", "attach", "read_csv", "drop"],
)
def test_sql_page_rejects_statement(query: str, message: str, filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(filled_store, monkeypatch, "sql")
    app.text_area(key="sql_query").input(query).run()

    [run] = [button for button in app.button if button.label == "Run query"]
    run.click().run()

    assert not app.exception
    assert len(app.error) == 1
    assert message in app.error[0].value
    assert Store(filled_store).exists()


def test_app_missing_store_shows_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(tmp_path / "absent.duckdb", monkeypatch)

    assert not app.exception
    assert "capplan demo --no-serve" in code_text(app)
    assert "capplan plan --run RUN --demand NAME" in code_text(app)
    assert not (tmp_path / "absent.duckdb").exists()


@pytest.mark.parametrize("page", ["overview", "scenarios", "bottlenecks", "sql"])
def test_app_empty_store_explains_fill(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "empty.duckdb")
    with store.write():
        pass

    app = run_app(store.path, monkeypatch, page)

    assert not app.exception
    if page == "sql":
        assert any("runs" in expander.label for expander in app.expander)
    else:
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
    add_step_run(store)

    for page in ("overview", "plan", "scenarios"):
        app = run_app(store.path, monkeypatch, page)
        assert not app.exception
        assert "capplan plan --run RUN --demand NAME" in code_text(app)


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
    assert "80 % interval (scaled)" in spec
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


def test_scenarios_load_saved_settings(filled_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from capplan.app_pages.scenario_model import PlanSettings
    from capplan.store.scenarios import save_plan_scenario

    settings = PlanSettings(growth_per_year=0.5, slo_p95_ms=200.0, headroom=0.1, redundancy=2, current_instances=5)
    save_plan_scenario(
        Store(filled_store), "busy year", settings.to_json(), series_name=SERIES_NAME, run_id=1,
        saved_at=datetime(2026, 1, 7),
    )
    app = run_app(filled_store, monkeypatch, "scenarios")

    app.selectbox(key="scenario_load").select("busy year").run()

    assert not app.exception
    assert app.slider(key="scenario_growth_pct").value == 50.0
    assert app.slider(key="scenario_slo_ms").value == 200.0
    assert app.number_input(key="scenario_redundancy").value == 2
    assert app.text_input(key="scenario_name").value == "busy year"
