"""The Scenarios page: growth, launches, events, SLO, headroom, redundancy and price; the plan follows every change.

The plan is recomputed on each rerun from cached inputs (forecast points,
steps, capacity fit). A slider move therefore costs one overlay, one plan and
two charts, which ``bench/app_redraw.py`` measures. Scenarios are saved by name in
the store's ``plan_scenarios`` table, which is this app's only write.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from capplan.app_pages.chart_display import show_chart
from capplan.app_pages.charts import demand_chart
from capplan.app_pages.charts_capacity import scenario_instances_chart
from capplan.app_pages.commands import FORECAST_COMMAND, PLAN_COMMAND, PROBE_COMMAND, capplan_command
from capplan.app_pages.context import AppContext
from capplan.app_pages.data import load_demand, load_steps
from capplan.app_pages.extra_reads import load_capacity_fit, load_plan_scenarios
from capplan.app_pages.formatting import MISSING_TEXT, format_money, format_percent, format_rps, format_time, is_missing
from capplan.app_pages.scenario_model import PlanInputs, PlanSettings, ScenarioPlan, compute_scenario_plan
from capplan.errors import CapplanError, ConfigError
from capplan.store import Store
from capplan.store.readonly_query import CONNECTION_GUARD
from capplan.store.scenarios import save_plan_scenario
from forecasting.scenarios import Scenario

__all__ = ["render_scenarios_page", "overlays_from_rows", "settings_from_state", "comparison_table"]

logger = logging.getLogger(__name__)

CURRENT_NAME = "current settings"
BASELINE_NAME = "stored plan"
KIND_STEP = "launch (lasting)"
KIND_EVENT = "event (temporary)"
OVERLAY_COLUMNS = ["kind", "start", "end", "change_pct"]
MILESTONES = (3, 6, 9, 12)
HISTORY_SHOWN_DAYS = 365

GROWTH_KEY = "scenario_growth_pct"
SLO_KEY = "scenario_slo_ms"
HEADROOM_KEY = "scenario_headroom_pct"
REDUNDANCY_KEY = "scenario_redundancy"
PRICE_KEY = "scenario_price"
INSTANCES_KEY = "scenario_instances"
ROWS_KEY = "scenario_overlay_rows"
EDITOR_KEY = "scenario_overlay_editor"
LOAD_KEY = "scenario_load"
NAME_KEY = "scenario_name"
SAVED_KEY = "scenario_just_saved"
COMPARE_KEY = "scenario_compare"
BASELINE_KEY = "scenario_baseline"
GROWTH_RANGE_PCT = (-50.0, 200.0)
_ROW_DTYPES = {"kind": "object", "start": "datetime64[us]", "end": "datetime64[us]", "change_pct": "float64"}


def render_scenarios_page(context: AppContext) -> None:
    """Show the what-if controls, the plan they give, saving, and a side-by-side comparison."""
    inputs, defaults = _plan_inputs(context)
    if inputs is None or defaults is None:
        return
    _initialise_state(defaults)

    controls, results = st.columns([1, 2], gap="large")
    with controls:
        _render_load_picker(context)
        settings = _render_controls(inputs)
    try:
        current = compute_scenario_plan(inputs, settings)
        baseline = _baseline_plan(context, inputs, defaults)
    except ConfigError as exc:
        results.error(str(exc))
        return
    with results:
        _render_result(current, baseline, inputs)
    with controls:
        _render_save(context, settings)
    _render_comparison(context, inputs, current, baseline)


def _baseline_plan(context: AppContext, inputs: PlanInputs, defaults: PlanSettings) -> ScenarioPlan:
    """Return the stored plan's settings replanned, computed once per store version and session."""
    key = (context.version, defaults.to_json())
    cached = st.session_state.get(BASELINE_KEY)
    if cached is not None and cached[0] == key:
        return cached[1]  # type: ignore[no-any-return]
    baseline = compute_scenario_plan(inputs, defaults)
    st.session_state[BASELINE_KEY] = (key, baseline)
    return baseline


def _plan_inputs(context: AppContext) -> tuple[PlanInputs | None, PlanSettings | None]:
    """Read the newest plan's forecast and run, and return them with the plan's settings; None without them."""
    overview = context.overview
    plan = overview.plan
    if plan is None:
        st.info(
            "What-if plans start from a stored plan, which names the forecast and the load-test run to vary. "
            "Make one first:"
        )
        commands = (PROBE_COMMAND, FORECAST_COMMAND, PLAN_COMMAND)
        st.code("\n".join(capplan_command(command, context.db_path) for command in commands), language="bash")
        return None, None

    run_id = int(plan["run_id"])
    demand = load_demand(context.db, context.version, str(plan["series_name"]), int(plan["forecast_id"]))
    steps = load_steps(context.db, context.version, run_id)
    if demand.points is None or demand.forecast is None or demand.points.empty or steps.empty:
        st.warning(
            f"Plan {int(plan['plan_id'])} refers to forecast {int(plan['forecast_id'])} and run {run_id}, but one of "
            "them has no points or steps in the store. Make a new plan with:"
        )
        st.code(capplan_command(PLAN_COMMAND, context.db_path), language="bash")
        return None, None

    runs = overview.runs
    run = runs[runs["run_id"] == run_id].iloc[0]
    fit = load_capacity_fit(context.db, context.version, run_id)
    slo = None if is_missing(run["slo_p95_ms"]) else float(run["slo_p95_ms"])
    inputs = PlanInputs(
        points=demand.points,
        level=float(demand.forecast["level"]),
        history_end=pd.Timestamp(demand.forecast["history_end"]),
        steps=steps,
        run_slo_p95_ms=slo,
        run_max_error_rate=None if is_missing(run["max_error_rate"]) else float(run["max_error_rate"]),
        run_safe_rps=float(plan["safe_rps_per_instance"]),
        latency_model=getattr(fit.report, "latency", None),
        history=demand.history,
    )

    price = plan.get("price_per_instance_hour")
    defaults = PlanSettings(
        slo_p95_ms=slo,
        price_per_instance_hour=0.0 if is_missing(price) else float(price),
        redundancy=int(plan["redundancy"]),
        current_instances=int(plan["current_instances"]),
    )
    st.caption(
        f"Varies plan {int(plan['plan_id'])}: forecast {int(plan['forecast_id'])} of `{plan['series_name']}` "
        f"and the steps of load-test run {run_id}. Overlays multiply the forecast and its interval."
    )
    return inputs, defaults


def _initialise_state(defaults: PlanSettings) -> None:
    state = st.session_state
    state.setdefault(GROWTH_KEY, 0.0)
    state.setdefault(SLO_KEY, float(defaults.slo_p95_ms or 500.0))
    state.setdefault(HEADROOM_KEY, 0)
    state.setdefault(REDUNDANCY_KEY, defaults.redundancy)
    state.setdefault(PRICE_KEY, defaults.price_per_instance_hour)
    state.setdefault(INSTANCES_KEY, defaults.current_instances)
    if ROWS_KEY not in state:
        state[ROWS_KEY] = pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in _ROW_DTYPES.items()})


def _render_load_picker(context: AppContext) -> None:
    if "plan_scenarios" not in context.overview.tables:
        return
    saved = load_plan_scenarios(context.db, context.version)
    if saved.empty:
        return
    names = list(saved["name"])

    def load_selected() -> None:
        name = st.session_state.get(LOAD_KEY)
        if not name:
            return
        try:
            settings = PlanSettings.from_json(str(saved.loc[saved["name"] == name, "settings"].iloc[0]))
        except ConfigError as exc:
            st.warning(f"Scenario `{name}` cannot be loaded: {exc}")
            return
        apply_settings_to_state(settings)
        st.session_state[NAME_KEY] = name

    st.selectbox("Start from a saved scenario", [None, *names], key=LOAD_KEY, on_change=load_selected,
                 format_func=lambda value: "—" if value is None else value)


def apply_settings_to_state(settings: PlanSettings) -> None:
    """Put saved settings into the controls' session state, so the next run shows them."""
    state = st.session_state
    low, high = GROWTH_RANGE_PCT
    state[GROWTH_KEY] = min(max(settings.growth_per_year * 100.0, low), high)
    if settings.slo_p95_ms is not None:
        state[SLO_KEY] = float(settings.slo_p95_ms)
    state[HEADROOM_KEY] = int(round(settings.headroom * 100))
    state[REDUNDANCY_KEY] = settings.redundancy
    state[PRICE_KEY] = settings.price_per_instance_hour
    state[INSTANCES_KEY] = settings.current_instances
    rows = []
    for overlay in settings.overlays:
        rows.append(
            {
                "kind": KIND_EVENT if overlay.kind == "event" else KIND_STEP,
                "start": overlay.start,
                "end": overlay.end,
                "change_pct": (overlay.factor - 1.0) * 100.0,
            }
        )
    state[ROWS_KEY] = pd.DataFrame(rows, columns=OVERLAY_COLUMNS).astype(_ROW_DTYPES)
    state.pop(EDITOR_KEY, None)


def _render_controls(inputs: PlanInputs) -> PlanSettings:
    st.slider("Extra growth (% per year)", *GROWTH_RANGE_PCT, step=5.0, key=GROWTH_KEY,
              help="Compound growth on top of the forecast's own trend, from the first forecast day.")
    measured = inputs.steps["p95_ms"].dropna()
    top = max(float(measured.max()) * 1.5 if not measured.empty else 1000.0, float(st.session_state[SLO_KEY]))
    st.slider("SLO p95 latency (ms)", 1.0, float(round(top)), step=1.0, key=SLO_KEY,
              help="The safe load per instance is recomputed from the run's steps under this SLO.")
    st.slider("Headroom (% of the safe load kept unused)", 0, 50, step=5, key=HEADROOM_KEY)
    redundancy_column, instances_column = st.columns(2)
    redundancy_column.number_input("Redundancy (spare instances)", 0, 10, step=1, key=REDUNDANCY_KEY)
    instances_column.number_input("Instances today", 1, 100_000, step=1, key=INSTANCES_KEY)
    st.number_input("Price per instance-hour", 0.0, 1e6, step=0.01, format="%.4f", key=PRICE_KEY,
                    help="In your currency. A month costs instances × forecast hours × this price.")
    st.markdown("**Launches and events**")
    rows = st.data_editor(
        st.session_state[ROWS_KEY],
        key=EDITOR_KEY,
        num_rows="dynamic",
        hide_index=True,
        column_config={
            "kind": st.column_config.SelectboxColumn("Kind", options=[KIND_STEP, KIND_EVENT], required=True, default=KIND_STEP),
            "start": st.column_config.DateColumn("Start (UTC day)", required=True),
            "end": st.column_config.DateColumn("End (events, exclusive)"),
            "change_pct": st.column_config.NumberColumn("Change (%)", default=20.0, help="+30 adds 30 % demand; 200 triples it."),
        },
    )
    overlays, problems = overlays_from_rows(rows)
    for problem in problems:
        st.warning(problem)
    return settings_from_state(st.session_state, overlays)


def overlays_from_rows(rows: pd.DataFrame) -> tuple[tuple[Scenario, ...], list[str]]:
    """Turn the editor's rows into step and event scenarios; return them and a message per invalid row."""
    overlays: list[Scenario] = []
    problems: list[str] = []
    for number, row in enumerate(rows.to_dict("records"), start=1):
        if is_missing(row.get("start")) or is_missing(row.get("change_pct")):
            continue  # a row still being typed
        change = float(row["change_pct"]) / 100.0
        try:
            if row.get("kind") == KIND_EVENT:
                if is_missing(row.get("end")):
                    problems.append(f"Row {number}: an event needs an end day.")
                    continue
                overlays.append(Scenario.event(pd.Timestamp(row["start"]), pd.Timestamp(row["end"]), 1.0 + change, label=f"event {number}"))
            else:
                overlays.append(Scenario.step(pd.Timestamp(row["start"]), change, label=f"launch {number}"))
        except ConfigError as exc:
            problems.append(f"Row {number}: {exc}")
    return tuple(overlays), problems


def settings_from_state(state: Any, overlays: tuple[Scenario, ...]) -> PlanSettings:
    """Build the settings from the controls' session-state values."""
    return PlanSettings(
        growth_per_year=float(state[GROWTH_KEY]) / 100.0,
        overlays=overlays,
        slo_p95_ms=float(state[SLO_KEY]),
        headroom=float(state[HEADROOM_KEY]) / 100.0,
        redundancy=int(state[REDUNDANCY_KEY]),
        price_per_instance_hour=float(state[PRICE_KEY]),
        current_instances=int(state[INSTANCES_KEY]),
    )


def _render_result(current: ScenarioPlan, baseline: ScenarioPlan, inputs: PlanInputs) -> None:
    if current.runway_date is not None:
        runway = current.runway_date.isoformat()
    else:
        runway = f"beyond {pd.Timestamp(current.months['month'].max()).strftime('%Y-%m')}"
    first_row = st.columns(2)
    first_row[0].metric("Runway (UTC date)", runway, delta=_runway_delta(baseline.runway_date, current.runway_date),
                        help="First day whose forecast upper bound exceeds what today's instances carry.")
    first_row[1].metric("Shortfall chance that day",
                        MISSING_TEXT if current.runway_probability is None else format_percent(current.runway_probability))
    second_row = st.columns(2)
    second_row[0].metric("Planned load per instance", format_rps(current.planned_rps_per_instance),
                         help=f"Safe load {format_rps(current.safe_rps_per_instance)}: {current.safe_rps_source}; "
                         "minus the headroom.")
    second_row[1].metric("Cost over the plan", format_money(current.total_cost))
    chart = scenario_instances_chart({BASELINE_NAME: baseline.months, CURRENT_NAME: current.months},
                                     current.settings.current_instances)
    show_chart(chart, key="scenario_instances_chart")
    show_chart(
        demand_chart(_recent(inputs.history), inputs.points, inputs.level, "rps", {CURRENT_NAME: current.points}),
        key="scenario_demand_chart",
    )
    st.caption(f"Predicted p95 per month: {current.p95_source}.")


def _recent(history: pd.DataFrame) -> pd.DataFrame:
    """Return the last HISTORY_SHOWN_DAYS of daily peaks: enough context beside the forecast, and half the data to send."""
    if history.empty:
        return history
    start = pd.Timestamp(history["ts"].max()) - pd.Timedelta(days=HISTORY_SHOWN_DAYS)
    return history[history["ts"] > start]


def _runway_delta(before: date | None, after: date | None) -> str | None:
    if before is None or after is None or before == after:
        return None
    return f"{(after - before).days:+d} days vs stored plan"


def _render_save(context: AppContext, settings: PlanSettings) -> None:
    st.markdown("**Save these settings**")
    name = st.text_input("Scenario name", key=NAME_KEY, max_chars=80, placeholder="such as 'spring launch'")
    just_saved = st.session_state.get(SAVED_KEY)
    if just_saved:
        st.success(f"Saved scenario `{just_saved}`; it is compared below.")
    if not st.button("Save scenario", icon=":material/save:"):
        return
    plan = context.overview.plan
    assert plan is not None
    try:
        # Wait until no read connection of this process is open, because DuckDB rejects a
        # read-write connection while the same process has the file open with another configuration.
        with CONNECTION_GUARD.exclusive():
            stored = save_plan_scenario(
                Store(context.db_path),
                name,
                settings.to_json(),
                series_name=str(plan["series_name"]),
                run_id=int(plan["run_id"]),
                saved_at=pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(),
            )
    except CapplanError as exc:
        st.error(f"The scenario was not saved: {exc}")
        return
    logger.info("saved scenario %r to %s", stored, context.db_path)
    # Rerun, so this run's store version (read before the save) does not hide the new row.
    st.session_state[SAVED_KEY] = stored
    st.rerun()


def comparison_table(plans: dict[str, ScenarioPlan]) -> pd.DataFrame:
    """Return one row per scenario with runway, its chance, milestones, utilisation and cost."""
    rows = []
    for name, plan in plans.items():
        months = plan.months
        row: dict[str, Any] = {
            "scenario": name,
            "runway": plan.runway_date.isoformat() if plan.runway_date else "beyond the horizon",
            "shortfall_chance": plan.runway_probability,
            "growth_pct_per_year": plan.settings.growth_per_year * 100.0,
            "slo_p95_ms": plan.settings.slo_p95_ms,
            "planned_rps_per_instance": plan.planned_rps_per_instance,
        }
        for ahead in MILESTONES:
            match = months[months["months_ahead"] == ahead]
            row[f"instances_{ahead}mo"] = int(match["instances"].iloc[0]) if not match.empty else None
        row["max_utilisation"] = float(months["utilisation"].max()) if not months.empty else None
        row["total_cost"] = plan.total_cost
        rows.append(row)
    return pd.DataFrame(rows)


def _render_comparison(context: AppContext, inputs: PlanInputs, current: ScenarioPlan, baseline: ScenarioPlan) -> None:
    st.subheader("Compare scenarios")
    plans: dict[str, ScenarioPlan] = {BASELINE_NAME: baseline, CURRENT_NAME: current}
    if "plan_scenarios" in context.overview.tables:
        saved = load_plan_scenarios(context.db, context.version)
        names = list(saved["name"])
        if COMPARE_KEY not in st.session_state:
            st.session_state[COMPARE_KEY] = names[:3]
        just_saved = st.session_state.pop(SAVED_KEY, None)
        if just_saved in names and just_saved not in st.session_state[COMPARE_KEY]:
            st.session_state[COMPARE_KEY] = [*st.session_state[COMPARE_KEY], just_saved]
        chosen = st.multiselect("Saved scenarios", names, key=COMPARE_KEY)
        for name in chosen:
            text = str(saved.loc[saved["name"] == name, "settings"].iloc[0])
            try:
                plans[name] = compute_scenario_plan(inputs, PlanSettings.from_json(text))
            except ConfigError as exc:
                st.warning(f"Scenario `{name}`: {exc}")
        if not saved.empty:
            saved_times = ", ".join(f"`{row.name}` {format_time(row.updated_at, context.timezone)}" for row in saved.head(5).itertuples())
            st.caption(f"Last saved: {saved_times}.")
    st.dataframe(
        comparison_table(plans),
        hide_index=True,
        column_config={
            "shortfall_chance": st.column_config.NumberColumn("Shortfall chance", format="percent"),
            "growth_pct_per_year": st.column_config.NumberColumn("Extra growth (%/y)", format="%.0f"),
            "slo_p95_ms": st.column_config.NumberColumn("SLO p95 (ms)", format="%.0f"),
            "planned_rps_per_instance": st.column_config.NumberColumn("Planned rps per instance", format="%.1f"),
            "max_utilisation": st.column_config.NumberColumn("Max utilisation", format="percent"),
            "total_cost": st.column_config.NumberColumn("Total cost", format="localized"),
        },
    )
    if len(plans) > 2:
        chart = scenario_instances_chart({name: plan.months for name, plan in plans.items()},
                                         current.settings.current_instances)
        show_chart(chart, key="scenario_compare_chart")
