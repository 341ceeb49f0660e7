"""The capplan Streamlit app: the newest capacity plan, demand and load-test results.

It reads the store named by ``CAPPLAN_DB`` (which ``capplan app`` sets), else
the default path, and opens it read-only through ``capplan.store``, so it can
run while other capplan commands write. Serve it with ``capplan app``, or with
``streamlit run capplan/streamlit_app.py`` or ``streamlit run app.py`` from the
repository root. Run as a script, the file calls :func:`main`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from capplan.app_pages import render_demand_tab, render_load_tests_tab, render_plan_tab
from capplan.app_pages.commands import (
    COLLECT_COMMAND,
    DEMO_COMMAND,
    FORECAST_COMMAND,
    PLAN_COMMAND,
    PROBE_COMMAND,
    capplan_command,
)
from capplan.app_pages.data import StoreOverview, StoreVersion, load_overview, store_version
from capplan.errors import CapplanError
from capplan.store import resolve_db_path

__all__ = ["main", "APP_TITLE"]

# Streamlit runs this file as __main__, so the logger is named explicitly.
logger = logging.getLogger("capplan.streamlit_app")

APP_TITLE = "capplan: capacity plan"


def main() -> None:
    """Lay out the page: title, store path, then the Plan, Demand and Load tests tabs."""
    st.set_page_config(page_title="capplan", layout="wide")
    st.title(APP_TITLE)
    db_path = resolve_db_path().absolute()
    st.caption(f"Store `{db_path}`, opened read-only. All times are UTC.")

    if not db_path.is_file():
        render_empty_store(db_path, f"No store exists at `{db_path}` yet.")
        return
    version = store_version(db_path)
    try:
        overview = load_overview(str(db_path), version)
    except CapplanError as exc:
        logger.warning("cannot read store %s: %s", db_path, exc)
        st.error(f"The store could not be read: {exc}")
        render_fill_commands(db_path)
        return
    if overview.is_empty:
        render_empty_store(db_path, f"The store `{db_path}` contains no runs, series or plans yet.")
        return
    render_tabs(overview, db_path, version)


def render_tabs(overview: StoreOverview, db_path: Path, version: StoreVersion) -> None:
    """Render each tab. A store error is shown inside the tab that hit it, and the other tabs still render."""
    sections: list[tuple[str, Callable[[], None]]] = [
        ("Plan", lambda: render_plan_tab(overview, db_path)),
        ("Demand", lambda: render_demand_tab(overview, db_path, version)),
        ("Load tests", lambda: render_load_tests_tab(overview, db_path, version)),
    ]
    tabs = st.tabs([label for label, _ in sections])
    for tab, (label, render) in zip(tabs, sections, strict=True):
        with tab:
            try:
                render()
            except CapplanError as exc:
                logger.warning("%s tab: cannot read store %s: %s", label, db_path, exc)
                st.error(str(exc))


def render_empty_store(db_path: Path, reason: str) -> None:
    st.info(f"{reason} Fill it with one of the command sequences below, then reload this page.")
    render_fill_commands(db_path)


def render_fill_commands(db_path: Path) -> None:
    """Show the commands that fill a store: the bundled demo, or the user's own service and metrics."""
    st.markdown("**Try it with the bundled demo target** (load test, demand history, forecast and plan):")
    st.code(capplan_command(DEMO_COMMAND, db_path), language="bash")
    st.markdown(
        "**Or measure your own service and demand**: a stepped load test, a metric history from a CSV "
        "file, a forecast, then the plan. RUN is the run id that `capplan probe` prints and NAME is the "
        "series name you choose."
    )
    commands = (PROBE_COMMAND, COLLECT_COMMAND, FORECAST_COMMAND, PLAN_COMMAND)
    st.code("\n".join(capplan_command(command, db_path) for command in commands), language="bash")


if __name__ == "__main__":
    main()
