"""Sections of the Streamlit app, one module per tab, plus its cached store reads and charts.

``capplan/streamlit_app.py`` lays out the page and calls ``render_*`` here. The
modules import Streamlit, so nothing outside the app should import them.
"""

from capplan.app_pages.demand import render_demand_tab
from capplan.app_pages.load_tests import render_load_tests_tab
from capplan.app_pages.plan import render_plan_tab

__all__ = ["render_demand_tab", "render_load_tests_tab", "render_plan_tab"]
