"""The capplan Streamlit app: plan, demand, load tests, what-if scenarios, bottlenecks and SQL.

It reads the store named by ``CAPPLAN_DB`` (which ``capplan app`` sets), else
the default path. Every read uses a read-only connection with external access
off (``capplan.store.readonly_query``); the one write is the Scenarios page's
Save button, which stores a named scenario. Serve it with ``capplan app``, or
with ``streamlit run app.py`` from the repository root.

This module only defines :func:`main`. The file that streamlit runs is
``capplan/app_entry/capplan_app.py``, alone in its folder, because streamlit
puts the folder of the file it runs first on ``sys.path``. Running a file
inside ``capplan/`` would make ``cli``, ``store`` and ``errors`` importable as
top-level modules, which would shadow any installed package of the same name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from capplan.app_pages import (
    render_bottlenecks_page,
    render_demand_page,
    render_load_tests_page,
    render_overview_page,
    render_plan_page,
    render_scenarios_page,
    render_sql_page,
)
from capplan.app_pages.commands import (
    COLLECT_COMMAND,
    DEMO_COMMAND,
    FORECAST_COMMAND,
    PLAN_COMMAND,
    PROBE_COMMAND,
    capplan_command,
)
from capplan.app_pages.context import AppContext
from capplan.app_pages.data import load_overview, store_version
from capplan.app_pages.formatting import DEFAULT_TIMEZONE, timezone_names, valid_timezone
from capplan.errors import CapplanError
from capplan.store import resolve_db_path
from capplan.store.readonly_query import StoreBusyError

__all__ = ["main", "APP_TITLE", "PAGES", "AppPage"]

logger = logging.getLogger(__name__)

APP_TITLE = "capplan"


@dataclass(frozen=True)
class AppPage:
    """One page: its ``?page=`` slug, its title and the function that renders it."""

    slug: str
    title: str
    icon: str
    render: Callable[[AppContext], None]


PAGES = (
    AppPage("overview", "Overview", ":material/dashboard:", render_overview_page),
    AppPage("demand", "Demand", ":material/trending_up:", render_demand_page),
    AppPage("load-tests", "Load tests", ":material/speed:", render_load_tests_page),
    AppPage("plan", "Capacity plan", ":material/dns:", render_plan_page),
    AppPage("scenarios", "Scenarios", ":material/tune:", render_scenarios_page),
    AppPage("bottlenecks", "Bottlenecks", ":material/troubleshoot:", render_bottlenecks_page),
    AppPage("sql", "SQL", ":material/database:", render_sql_page),
)
_PAGES_BY_SLUG = {page.slug: page for page in PAGES}
SQL_SLUG = "sql"


def main() -> None:
    """Lay out the sidebar (page, time zone, store) and render the chosen page."""
    st.set_page_config(page_title=APP_TITLE, page_icon=":material/insights:", layout="wide")
    st.session_state["busy_notice_shown"] = False
    page = _pick_page()
    timezone = _pick_timezone()
    db_path = resolve_db_path().absolute()
    with st.sidebar:
        st.caption(f"Store `{db_path}`, opened read-only. Times in {timezone}.")
        if st.button("Reload data", icon=":material/refresh:", help="Read the store again, including changes made just now."):
            st.cache_data.clear()

    st.title(f"{page.title}")
    if not db_path.is_file():
        render_empty_store(db_path, f"No store exists at `{db_path}` yet.")
        return
    version = store_version(db_path)
    try:
        overview = load_overview(str(db_path), version)
    except StoreBusyError as exc:
        logger.info("store busy on first read: %s", exc)
        render_busy(db_path)
        return
    except CapplanError as exc:
        logger.warning("cannot read store %s: %s", db_path, exc)
        st.error(f"The store could not be read: {exc}")
        render_fill_commands(db_path)
        return
    if overview.is_empty and page.slug != SQL_SLUG:
        render_empty_store(db_path, f"The store `{db_path}` contains no runs, series or plans yet.")
        return
    render_page(page, AppContext(db_path=db_path, version=version, timezone=timezone, overview=overview))


def _pick_page() -> AppPage:
    """Show the page menu in the sidebar; the choice follows and sets the ``?page=`` query parameter."""
    slugs = [page.slug for page in PAGES]
    if "page" not in st.session_state:
        requested = st.query_params.get("page")
        st.session_state["page"] = requested if requested in _PAGES_BY_SLUG else slugs[0]
    with st.sidebar:
        st.markdown(f"### {APP_TITLE}")
        slug = st.radio(
            "Page",
            slugs,
            key="page",
            format_func=lambda value: f"{_PAGES_BY_SLUG[value].icon} {_PAGES_BY_SLUG[value].title}",
            label_visibility="collapsed",
        )
    st.query_params["page"] = slug
    return _PAGES_BY_SLUG[slug]


def _pick_timezone() -> str:
    """Show the time-zone picker; the choice follows and sets the ``?tz=`` query parameter."""
    names = timezone_names()
    if "timezone" not in st.session_state:
        st.session_state["timezone"] = valid_timezone(st.query_params.get("tz"))
    with st.sidebar:
        timezone = st.selectbox(
            "Time zone",
            names,
            key="timezone",
            help="Times are stored in UTC and shown in this zone. Daily peaks and plan months stay UTC days.",
        )
    if timezone == DEFAULT_TIMEZONE:
        st.query_params.pop("tz", None)
    else:
        st.query_params["tz"] = timezone
    return str(timezone)


def render_page(page: AppPage, context: AppContext) -> None:
    """Render a page. A store error shows as a message on the page, never as a traceback."""
    try:
        page.render(context)
    except StoreBusyError as exc:
        logger.info("%s page: store busy: %s", page.title, exc)
        render_busy(context.db_path)
    except CapplanError as exc:
        logger.warning("%s page: cannot read store %s: %s", page.title, context.db_path, exc)
        st.error(str(exc))


def render_busy(db_path: Path) -> None:
    st.info(
        f"Another capplan process is writing to `{db_path}` right now and this page has no earlier data "
        "to show. It reads the store again when you press the button or reload the page.",
        icon=":material/hourglass_top:",
    )
    st.button("Try again", icon=":material/refresh:")


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
