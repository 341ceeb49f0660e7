"""Pages of the Streamlit app, plus its cached store reads, charts and what-if model.

``capplan/streamlit_app.py`` lays out the sidebar and calls one
``render_*_page`` here. The page modules import Streamlit, so nothing outside
the app should import them. ``scenario_model``, ``intervals`` and the chart
modules contain plain functions, which the benchmark and the tests call directly.
"""

from capplan.app_pages.bottlenecks import render_bottlenecks_page
from capplan.app_pages.demand import render_demand_page
from capplan.app_pages.load_tests import render_load_tests_page
from capplan.app_pages.overview import render_overview_page
from capplan.app_pages.plan import render_plan_page
from capplan.app_pages.scenarios import render_scenarios_page
from capplan.app_pages.sql_page import render_sql_page

__all__ = [
    "render_bottlenecks_page",
    "render_demand_page",
    "render_load_tests_page",
    "render_overview_page",
    "render_plan_page",
    "render_scenarios_page",
    "render_sql_page",
]
