"""``capplan export --parquet DIR`` and ``capplan import-parquet DIR``: move the store to and from Parquet."""

from __future__ import annotations

import argparse

from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.store import Store
from capplan.store.parquet_io import ParquetSummary, export_parquet, import_parquet

__all__ = ["register", "run_export", "run_import"]


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    export = subparsers.add_parser(
        "export",
        parents=[common],
        help="export samples and results as Parquet partitioned by series and month",
        description=(
            "Write the store's series, samples, runs, steps, forecasts and plans as Parquet files. Samples and "
            "forecast points are Hive partitions by series_name and UTC month, readable by DuckDB, Spark or Trino. "
            "See docs/scale.md."
        ),
    )
    export.add_argument("--parquet", required=True, metavar="DIR", help="new or empty folder to write the files into")
    export.set_defaults(handler=run_export)

    restore = subparsers.add_parser(
        "import-parquet",
        parents=[common],
        help="load a folder written by 'capplan export --parquet' into the store",
        description=(
            "Load an export folder into the store in one transaction. Series and samples are merged by name and "
            "timestamp. Runs, forecasts and plans keep their ids, so an id the store already has stops the import; "
            "use a new store file (--db) for those."
        ),
    )
    restore.add_argument("folder", metavar="DIR", help="folder written by 'capplan export --parquet'")
    restore.set_defaults(handler=run_import)


def run_export(args: argparse.Namespace) -> int:
    """Export the store and print the rows written per table."""
    summary = export_parquet(Store(args.db), args.parquet)
    _print_summary(args, summary, "exported to")
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Import an export folder and print the rows read per table."""
    summary = import_parquet(Store(args.db), args.folder)
    _print_summary(args, summary, "imported from")
    return 0


def _print_summary(args: argparse.Namespace, summary: ParquetSummary, verb: str) -> None:
    if args.json:
        print_json(summary.to_dict())
        return
    table = Table(title=f"rows {verb} {summary.folder}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in summary.rows.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
