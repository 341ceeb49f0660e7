"""``capplan collect``: load a metric history into the store as a named series.

Samples are keyed by series and timestamp, so collecting the same history
again replaces the stored samples instead of adding rows. The source is read
and validated completely before the store is opened for writing.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import pandas as pd
from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.store.series import read_samples, write_samples

__all__ = ["register", "run_collect", "series_summary"]

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "collect",
        parents=[common],
        help="load a demand history into the store as a named series",
        description=(
            "Load a demand history into the store as a named series. Samples at timestamps already "
            "stored under the name are replaced, so running the same command twice adds no rows."
        ),
    )
    source = parser.add_argument_group("source (give one)")
    source.add_argument(
        "--csv",
        metavar="FILE",
        help=(
            "CSV file with a header, a timestamp column (ISO 8601; UTC unless the text has an offset) "
            "and a numeric value column; an empty value is a missing sample"
        ),
    )
    parser.add_argument("--name", metavar="NAME", help="series name to store the samples under")
    parser.add_argument(
        "--unit",
        metavar="UNIT",
        help="unit of the values, such as rps (default: keep the unit already stored for the series)",
    )
    parser.set_defaults(handler=run_collect)


def run_collect(args: argparse.Namespace) -> int:
    """Load the samples of the given source, store them and print a summary of the series."""
    name = (args.name or "").strip()
    if not name:
        raise ConfigError("collect needs a series name; give --name NAME, such as --name web_rps")
    samples, source = _load_samples(args)

    store = Store(args.db)
    written = write_samples(store, name, samples, source=source, unit=args.unit)
    logger.info("stored %d samples of series %r in %s", written, name, store.path)

    summary = series_summary(store, name)
    summary["samples_written"] = written
    if args.json:
        print_json(
            {
                "series": name,
                "samples_written": written,
                "samples_total": summary["samples_total"],
                "min_value": summary["min_value"],
                "max_value": summary["max_value"],
                "first_ts": summary["first_ts"],
                "last_ts": summary["last_ts"],
            }
        )
    else:
        _print_summary(name, summary)
    return 0


def _load_samples(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    """Read the samples of the source named on the command line and return them with the source kind."""
    if args.csv:
        from loadprobe.csv_history import read_history_csv

        return read_history_csv(args.csv), "csv"
    raise ConfigError("collect needs a source of samples; give --csv FILE")


def series_summary(store: Store, name: str) -> dict[str, Any]:
    """Return the sample count, value range (NaN skipped) and time span of a stored series."""
    samples = read_samples(store, name)
    return {
        "samples_total": len(samples),
        "min_value": float(samples["value"].min()) if samples["value"].notna().any() else None,
        "max_value": float(samples["value"].max()) if samples["value"].notna().any() else None,
        "first_ts": samples["ts"].min() if len(samples) else None,
        "last_ts": samples["ts"].max() if len(samples) else None,
    }


def _print_summary(name: str, summary: dict[str, Any]) -> None:
    table = Table(title=f"series {name}", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_row("samples written", str(summary["samples_written"]))
    table.add_row("samples stored", str(summary["samples_total"]))
    for label, key in (("minimum value", "min_value"), ("maximum value", "max_value")):
        value = summary[key]
        table.add_row(label, "-" if value is None else f"{value:,.3f}")
    for label, key in (("first timestamp (UTC)", "first_ts"), ("last timestamp (UTC)", "last_ts")):
        value = summary[key]
        table.add_row(label, "-" if value is None else pd.Timestamp(value).isoformat())
    console.print(table)
