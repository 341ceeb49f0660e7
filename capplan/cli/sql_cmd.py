"""``capplan sql QUERY``: run one read-only query on the store and print the rows.

The query goes through :func:`capplan.store.readonly_query.run_query`, the
same guard as the app's SQL page: a read-only connection with external access
off, a statement allow-list, a row limit and a time limit.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import Any

import pandas as pd
from rich.table import Table

from capplan.cli.output import console, print_json, to_jsonable
from capplan.errors import ConfigError
from capplan.store.readonly_query import (
    ALLOWED_STATEMENTS_TEXT,
    DEFAULT_ROW_LIMIT,
    DEFAULT_TIMEOUT_S,
    QueryResult,
    ReadOnlyStore,
    run_query,
)

__all__ = ["register", "run_sql", "result_payload"]

logger = logging.getLogger(__name__)

NULL_TEXT = "NULL"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "sql",
        parents=[common],
        help="run a read-only SQL query on the store",
        description=(
            "Run one read-only SQL statement on the store and print the rows as a table, as JSON (--json) "
            f"or as CSV (--csv). Allowed statements: {ALLOWED_STATEMENTS_TEXT}. The store is opened "
            "read-only with file access off, so COPY, ATTACH, read_csv() and writes are rejected."
        ),
    )
    parser.add_argument("query", metavar="QUERY", help="the SQL statement, such as \"SELECT * FROM runs\"")
    parser.add_argument("--csv", action="store_true", help="print the rows as CSV with a header line on stdout")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_ROW_LIMIT,
        metavar="ROWS",
        help=f"maximum rows to print; more rows are left out with a warning (default: {DEFAULT_ROW_LIMIT:,})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"interrupt the query after this many seconds (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.set_defaults(handler=run_sql)


def run_sql(args: argparse.Namespace) -> int:
    """Run the query given on the command line and print its rows in the requested format."""
    if args.json and args.csv:
        raise ConfigError("--json and --csv both set; choose one output format")
    result = run_query(ReadOnlyStore(args.db), args.query, row_limit=args.limit, timeout_s=args.timeout)
    if result.truncated:
        logger.warning(
            "the result has more than %d rows; printing the first %d (raise --limit or add LIMIT to the query)",
            result.row_limit, result.row_limit,
        )
    if args.json:
        print_json(result_payload(result))
    elif args.csv:
        result.frame.to_csv(sys.stdout, index=False)
    else:
        print_table(result)
    return 0


def result_payload(result: QueryResult) -> dict[str, Any]:
    """Return the ``--json`` object: columns, rows as lists, row count, truncation and time taken."""
    rows = [[to_jsonable(_cell(value)) for value in row] for row in result.frame.itertuples(index=False, name=None)]
    return {
        "query": result.query,
        "columns": result.columns,
        "types": [str(dtype) for dtype in result.frame.dtypes],
        "rows": rows,
        "row_count": len(rows),
        "truncated": result.truncated,
        "row_limit": result.row_limit,
        "elapsed_ms": round(result.elapsed_s * 1000.0, 3),
    }


def _cell(value: Any) -> Any:
    """Turn pandas' missing values into None, so JSON shows null for SQL NULL."""
    if value is None:
        return None
    if isinstance(value, (list, dict, tuple)):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _text(value: Any) -> str:
    value = _cell(value)
    if value is None:
        return NULL_TEXT
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def print_table(result: QueryResult) -> None:
    """Print the rows as a rich table, with the row count and time below it."""
    table = Table()
    for column in result.columns:
        table.add_column(column)
    for row in result.frame.itertuples(index=False, name=None):
        table.add_row(*(_text(value) for value in row))
    console.print(table)
    more = f", more left out at --limit {result.row_limit}" if result.truncated else ""
    console.print(f"{len(result.frame)} rows{more} ({result.elapsed_s * 1000:.0f} ms)")
