"""Showing Altair charts in the app without validating their spec again on every rerun.

``st.altair_chart`` validates the whole Vega-Lite spec against its JSON schema
on each call. For the demand fan on two years of daily peaks that costs about
100 ms (measured with altair 6.3 and streamlit 1.67 on the machine named in
docs/benchmarks.md), a third of the Scenarios page's redraw budget. The chart builders are validated by the
tests, which call ``to_dict()`` with validation, so the app sends the
unvalidated spec with its data inline.
"""

from __future__ import annotations

import altair as alt
import streamlit as st

__all__ = ["show_chart"]


def show_chart(chart: alt.TopLevelMixin, key: str | None = None) -> None:
    """Show ``chart`` at the container's width."""
    st.vega_lite_chart(chart.to_dict(validate=False), width="stretch", key=key)
