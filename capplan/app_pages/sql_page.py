"""The SQL page: a read-only query box over the store, with the schema beside it.

Queries run through :func:`capplan.store.readonly_query.run_query`, the same
guard as ``capplan sql``: one reading statement, a read-only connection with
external access off, a row limit and a time limit.
"""

from __future__ import annotations

import streamlit as st

from capplan.app_pages.context import AppContext
from capplan.app_pages.extra_reads import load_schema
from capplan.errors import CapplanError
from capplan.store.readonly_query import (
    ALLOWED_STATEMENTS_TEXT,
    DEFAULT_ROW_LIMIT,
    DEFAULT_TIMEOUT_S,
    QueryError,
    QueryResult,
    ReadOnlyStore,
    run_query,
)

__all__ = ["render_sql_page", "EXAMPLE_QUERIES"]

QUERY_KEY = "sql_query"
OUTCOME_KEY = "sql_outcome"
EXAMPLE_QUERIES = {
    "Runs and their limits": "SELECT run_id, kind, started_at, status, breaking_point_rps, safe_rps\nFROM runs\nORDER BY run_id DESC",
    "Latest plan, month by month": "SELECT * FROM plan_months\nWHERE plan_id = (SELECT max(plan_id) FROM plans)\nORDER BY month",
    "Daily peaks of each series": "SELECT series_name, CAST(ts AS DATE) AS day, max(value) AS peak\nFROM samples\nGROUP BY ALL\nORDER BY series_name, day DESC",
    "Columns of a table": "DESCRIBE steps",
}


def render_sql_page(context: AppContext) -> None:
    """Show the query box and its result beside the store's tables and columns."""
    st.caption(
        f"Read-only: {ALLOWED_STATEMENTS_TEXT}. File access, ATTACH and writes are rejected. At most "
        f"{DEFAULT_ROW_LIMIT:,} rows are shown and a query is stopped after {DEFAULT_TIMEOUT_S:g} s. TIMESTAMP "
        "values are UTC, as stored."
    )
    query_column, schema_column = st.columns([3, 1], gap="large")
    with schema_column:
        _render_schema(context)
    with query_column:
        _render_query_box(context)


def _render_query_box(context: AppContext) -> None:
    st.session_state.setdefault(QUERY_KEY, next(iter(EXAMPLE_QUERIES.values())))

    def use_example() -> None:
        chosen = st.session_state.get("sql_example")
        if chosen:
            st.session_state[QUERY_KEY] = EXAMPLE_QUERIES[chosen]

    st.selectbox("Examples", [None, *EXAMPLE_QUERIES], key="sql_example", on_change=use_example,
                 format_func=lambda value: "—" if value is None else value)
    query = st.text_area("Query", key=QUERY_KEY, height=160)
    if st.button("Run query", type="primary", icon=":material/play_arrow:"):
        # The outcome is kept in the session, so other widgets' reruns do not run the query again.
        try:
            st.session_state[OUTCOME_KEY] = run_query(ReadOnlyStore(context.db_path), query)
        except QueryError as exc:
            st.session_state[OUTCOME_KEY] = exc
        except CapplanError as exc:
            st.session_state[OUTCOME_KEY] = CapplanError(f"The store could not be queried: {exc}")
    outcome = st.session_state.get(OUTCOME_KEY)
    if outcome is None:
        return
    if isinstance(outcome, CapplanError):
        st.error(str(outcome), icon=":material/block:")
        return
    result: QueryResult = outcome
    more = f"; more rows were left out at the limit of {result.row_limit:,}" if result.truncated else ""
    st.caption(f"{len(result.frame):,} rows in {result.elapsed_s * 1000:.0f} ms{more}.")
    st.dataframe(result.frame, hide_index=True, width="stretch")
    st.download_button(
        "Download CSV",
        data=result.frame.to_csv(index=False).encode(),
        file_name="capplan-query.csv",
        mime="text/csv",
        icon=":material/download:",
    )


def _render_schema(context: AppContext) -> None:
    st.markdown("**Schema**")
    schema = load_schema(context.db, context.version)
    if schema.empty:
        st.caption("The store has no tables yet.")
        return
    for (table_name, table_type), columns in schema.groupby(["table_name", "table_type"], sort=False):
        kind = "view" if table_type == "VIEW" else "table"
        with st.expander(f"{table_name} ({kind})"):
            st.markdown("\n".join(f"- `{row.column_name}` {row.data_type}" for row in columns.itertuples()))
