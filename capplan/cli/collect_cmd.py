"""``capplan collect``: load a metric history into the store as a named series.

Two sources: a CSV file (``--csv``) or a query against a Prometheus HTTP API
(``--prometheus URL --query PROMQL`` or ``--standard NAME``). Samples are
keyed by series and timestamp, so collecting the same history again
replaces the stored samples instead of adding rows. A CSV file is read and
validated completely before the store is opened for writing. A Prometheus
collection writes nothing until its first chunk has arrived.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.store.series import read_samples, write_samples

__all__ = ["register", "run_collect", "series_summary"]

logger = logging.getLogger(__name__)

DEFAULT_SINCE = "90d"
DEFAULT_STEP = "5m"
# Shortest rate() window used by default: shorter windows contain too few scrapes
# at common 15 s to 60 s scrape intervals.
MIN_DEFAULT_RATE_WINDOW_S = 300

_PROMETHEUS_ONLY = ("query", "standard", "since", "until", "step", "rate_window", "raw", "no_resume")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from loadprobe.prometheus.options import add_connection_options, add_metric_name_options

    parser = subparsers.add_parser(
        "collect",
        parents=[common],
        help="load a demand history into the store as a named series",
        description=(
            "Load a demand history into the store as a named series, from a CSV file or a Prometheus "
            "query. Samples at timestamps already stored under the name are replaced, so running the "
            "same command twice adds no rows. A Prometheus collection continues from the last stored "
            "sample, and every Prometheus series is stored as NAME{label=\"value\",...}."
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
    source.add_argument(
        "--prometheus",
        metavar="URL",
        help="base URL of a Prometheus HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics), such as http://127.0.0.1:9090",
    )
    parser.add_argument("--name", metavar="NAME", help="series name to store the samples under (default for --standard: its name)")
    parser.add_argument(
        "--unit",
        metavar="UNIT",
        help="unit of the values, such as rps (default: the standard query's unit, else keep the unit already stored)",
    )
    prom = parser.add_argument_group("Prometheus query")
    prom.add_argument("--query", metavar="PROMQL", help="PromQL to collect; a bare counter selector is read through rate()")
    prom.add_argument("--standard", metavar="NAME", help="collect a standard query by name; see --list-standard")
    prom.add_argument("--list-standard", action="store_true", help="print the standard queries with their PromQL and exit")
    prom.add_argument(
        "--since", metavar="TIME",
        help=f"start of the window: a duration before now such as 90d, or an ISO 8601 timestamp (default {DEFAULT_SINCE})",
    )
    prom.add_argument("--until", metavar="TIME", help="end of the window: 'now', a duration before now, or an ISO 8601 timestamp (default now)")
    prom.add_argument("--step", metavar="DURATION", help=f"time between samples, whole seconds such as 60s or 5m (default {DEFAULT_STEP})")
    prom.add_argument(
        "--rate-window", metavar="DURATION",
        help=f"range of rate() in standard queries and wrapped counters (default: the step, at least {MIN_DEFAULT_RATE_WINDOW_S // 60}m)",
    )
    prom.add_argument("--raw", action="store_true", help="store a bare counter's values as they are instead of reading it through rate()")
    prom.add_argument("--no-resume", action="store_true", help="fetch the whole window again instead of continuing from the last stored sample")
    prom.add_argument("--no-progress", action="store_true", help="do not draw the progress bar on stderr")
    add_connection_options(parser)
    add_metric_name_options(parser)
    parser.set_defaults(handler=run_collect)


def run_collect(args: argparse.Namespace) -> int:
    """Load the samples of the given source, store them and print a summary of the series."""
    if getattr(args, "list_standard", False):
        return _list_standard(args)
    if args.csv and args.prometheus:
        raise ConfigError("give either --csv FILE or --prometheus URL, not both")
    if args.prometheus:
        return _collect_prometheus(args)
    for option in _PROMETHEUS_ONLY:
        if getattr(args, option, None):
            raise ConfigError(f"--{option.replace('_', '-')} needs --prometheus URL")

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
    raise ConfigError("collect needs a source of samples; give --csv FILE or --prometheus URL")


def _rate_window_s(args: argparse.Namespace, step_s: int) -> int:
    from loadprobe.prometheus.timegrid import parse_step_s

    if args.rate_window:
        return parse_step_s(args.rate_window, "--rate-window")
    return max(step_s, MIN_DEFAULT_RATE_WINDOW_S)


def _collect_prometheus(args: argparse.Namespace) -> int:
    from loadprobe.prometheus.catalogue import read_counter_through_rate, standard_query
    from loadprobe.prometheus.collector import CollectRequest, collect_prometheus, validate_series_name
    from loadprobe.prometheus.options import client_from_args, metric_names_from_args
    from loadprobe.prometheus.timegrid import parse_step_s, parse_time_bound, utc_now

    if bool(args.query) == bool(args.standard):
        raise ConfigError("--prometheus needs exactly one of --query PROMQL or --standard NAME (see --list-standard)")
    step_s = parse_step_s(args.step or DEFAULT_STEP)
    window_s = _rate_window_s(args, step_s)
    now = utc_now()
    since = parse_time_bound(args.since or DEFAULT_SINCE, "--since", now)
    until = parse_time_bound(args.until or "now", "--until", now)
    unit = args.unit
    if args.standard:
        chosen = standard_query(args.standard)
        query = chosen.render(metric_names_from_args(args), window_s)
        requested = query
        name = validate_series_name(args.name or chosen.name)
        unit = unit or chosen.unit
    else:
        if not args.query.strip():
            raise ConfigError("--query is empty; give a PromQL expression such as 'sum(rate(http_requests_total[5m]))'")
        name = validate_series_name(args.name or "")
        requested = args.query.strip()
        query = read_counter_through_rate(requested, window_s, raw=args.raw)

    store = Store(args.db)
    request = CollectRequest(
        name=name,
        query=query,
        requested_query=requested,
        since=since,
        until=until,
        step_s=step_s,
        unit=unit,
        resume=not args.no_resume,
    )
    progress = None if (args.json or args.no_progress or args.quiet) else _RichCollectProgress(name)
    with client_from_args(args) as client:
        result = collect_prometheus(store, client, request, progress=progress)

    from loadprobe.prometheus.sample_store import family_series, family_stats

    stats = family_stats(store, name)
    payload: dict[str, Any] = {
        "series": name,
        "samples_written": result.samples_written,
        "samples_total": stats.samples_total,
        "min_value": stats.min_value,
        "max_value": stats.max_value,
        "first_ts": stats.first_ts,
        "last_ts": stats.last_ts,
        "source": "prometheus",
        "query": result.query,
        "step_s": result.step_s,
        "window_start": result.window_start,
        "window_end": result.window_end,
        "resumed_from": result.resumed_from,
        "chunks_written": result.chunks_written,
        "collection_id": result.collection_id,
        "series_labels": family_series(store, name),
    }
    if args.json:
        print_json(payload)
    else:
        _print_prometheus_summary(payload)
    return 0


class _RichCollectProgress:
    """One bar over the chunks of a collection, on stderr."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._samples = 0
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task: Any = None

    def started(self, chunks: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(f"collect {self._name}", total=chunks, detail="")

    def chunk_written(self, chunk: Any, samples: int) -> None:
        self._samples += samples
        self._progress.update(self._task, advance=1, detail=f"{self._samples:,} samples, up to {chunk.end.isoformat()} UTC")

    def close(self) -> None:
        self._progress.stop()


def _list_standard(args: argparse.Namespace) -> int:
    from loadprobe.prometheus.catalogue import describe_catalogue
    from loadprobe.prometheus.options import metric_names_from_args
    from loadprobe.prometheus.timegrid import parse_step_s

    step_s = parse_step_s(args.step or DEFAULT_STEP)
    rows = describe_catalogue(metric_names_from_args(args), _rate_window_s(args, step_s))
    if args.json:
        print_json({"standard_queries": rows})
        return 0
    table = Table(title="standard queries")
    table.add_column("name", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    table.add_column("description")
    table.add_column("query", overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["unit"], row["description"], row["query"])
    console.print(table)
    return 0


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


def _format_value(value: Any) -> str:
    return "-" if value is None else f"{value:,.3f}"


def _format_ts(value: Any) -> str:
    return "-" if value is None else pd.Timestamp(value).isoformat()


def _print_summary(name: str, summary: dict[str, Any]) -> None:
    table = Table(title=f"series {name}", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_row("samples written", str(summary["samples_written"]))
    table.add_row("samples stored", str(summary["samples_total"]))
    for label, key in (("minimum value", "min_value"), ("maximum value", "max_value")):
        table.add_row(label, _format_value(summary[key]))
    for label, key in (("first timestamp (UTC)", "first_ts"), ("last timestamp (UTC)", "last_ts")):
        table.add_row(label, _format_ts(summary[key]))
    console.print(table)


def _print_prometheus_summary(payload: dict[str, Any]) -> None:
    table = Table(title=f"series {payload['series']} from Prometheus", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right", overflow="fold")
    table.add_row("query", payload["query"])
    table.add_row("step", f"{payload['step_s']} s")
    table.add_row("window (UTC)", f"{_format_ts(payload['window_start'])} .. {_format_ts(payload['window_end'])}")
    if payload["resumed_from"] is not None:
        table.add_row("continued from (UTC)", _format_ts(payload["resumed_from"]))
    table.add_row("series stored", str(len(payload["series_labels"])))
    table.add_row("samples written", f"{payload['samples_written']:,}")
    table.add_row("samples stored", f"{payload['samples_total']:,}")
    table.add_row("minimum value", _format_value(payload["min_value"]))
    table.add_row("maximum value", _format_value(payload["max_value"]))
    table.add_row("first timestamp (UTC)", _format_ts(payload["first_ts"]))
    table.add_row("last timestamp (UTC)", _format_ts(payload["last_ts"]))
    console.print(table)
    if 1 < len(payload["series_labels"]) <= 20:
        names = Table(title="stored series")
        names.add_column("series")
        for item in payload["series_labels"]:
            names.add_row(item["name"])
        console.print(names)
