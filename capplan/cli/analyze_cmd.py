"""``capplan analyze``: check a live service against thresholds, from its Prometheus metrics.

Each analysis measures one window (default the last 5 minutes), compares
latency, errors, throughput, CPU and memory with their thresholds, stores
the result in ``analyses`` and ``analysis_bottlenecks`` and prints it.
``--watch 60s`` repeats it ``--count`` times.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.units import parse_duration_s, parse_fraction, parse_latency_ms

__all__ = ["register", "run_analyze"]

logger = logging.getLogger(__name__)

DEFAULT_WATCH_COUNT = 60
MAX_WATCH_COUNT = 10_000
MIN_WATCH_INTERVAL_S = 1.0

_STATUS_STYLE = {"ok": "green", "warning": "yellow", "critical": "bold red", "no_data": "dim"}
_LABELS = {
    "throughput_rps": "throughput",
    "error_rate": "error rate",
    "p95_ms": "p95 latency",
    "p99_ms": "p99 latency",
    "mean_ms": "mean latency",
    "cpu_cores": "CPU in use (all instances)",
    "cpu_utilisation": "CPU (busiest instance)",
    "memory_bytes": "memory (largest instance)",
    "memory_utilisation": "memory of limit (largest instance)",
    "instances": "instances up",
}


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from loadprobe.prometheus.options import add_connection_options, add_metric_name_options

    parser = subparsers.add_parser(
        "analyze",
        parents=[common],
        help="find a live service's bottlenecks from its Prometheus metrics",
        description=(
            "Measure p95, p99 and mean latency, throughput, error rate, CPU and memory over a window, "
            "compare each with its threshold, and report every breach as a bottleneck with its severity "
            "and a recommendation. Every analysis is stored in the analyses table."
        ),
    )
    parser.add_argument("--prometheus", metavar="URL", required=True, help="base URL of the Prometheus HTTP API, such as http://127.0.0.1:9090")
    parser.add_argument("--window", default="5m", metavar="DURATION", help="length of the analysed window, whole seconds (default 5m)")
    parser.add_argument("--at", metavar="TIME", help="end of the window: an ISO 8601 timestamp or a duration before now (default now)")
    parser.add_argument("--watch", metavar="DURATION", help="repeat the analysis every DURATION, such as 60s, for --count times")
    parser.add_argument(
        "--count", type=int, default=DEFAULT_WATCH_COUNT, metavar="N",
        help=f"number of analyses with --watch (default {DEFAULT_WATCH_COUNT}, at most {MAX_WATCH_COUNT})",
    )
    limits = parser.add_argument_group("thresholds")
    limits.add_argument("--p95", default="500ms", metavar="LATENCY", help="p95 latency threshold (default 500ms)")
    limits.add_argument("--p99", default="1000ms", metavar="LATENCY", help="p99 latency threshold (default 1000ms)")
    limits.add_argument("--max-error-rate", default="1%", metavar="FRACTION", help="error-rate threshold, such as 1%% or 0.01 (default 1%%)")
    limits.add_argument("--max-cpu", default="80%", metavar="FRACTION", help="CPU utilisation threshold of the busiest instance (default 80%%)")
    limits.add_argument("--max-memory", default="85%", metavar="FRACTION", help="memory utilisation threshold of the largest instance (default 85%%)")
    limits.add_argument("--min-throughput", type=float, metavar="RPS", help="lowest acceptable throughput in requests/s (default: no minimum)")
    capacity = parser.add_argument_group("utilisation (give one of each pair to measure CPU and memory utilisation)")
    capacity.add_argument("--cpu-cores", type=float, metavar="N", help="CPU cores available to one instance")
    capacity.add_argument(
        "--cpu-query", metavar="PROMQL",
        help="PromQL returning CPU utilisation as a fraction (the largest value is used); $window is replaced by the window",
    )
    capacity.add_argument("--memory-limit", metavar="SIZE", help="memory available to one instance, such as 2GiB")
    capacity.add_argument(
        "--memory-query", metavar="PROMQL",
        help="PromQL returning memory utilisation as a fraction (the largest value is used); $window is replaced by the window",
    )
    add_connection_options(parser)
    add_metric_name_options(parser)
    parser.set_defaults(handler=run_analyze)


def _config_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    from loadprobe.analyzer.config import AnalyzerConfig, Thresholds, parse_bytes
    from loadprobe.prometheus.options import metric_names_from_args
    from loadprobe.prometheus.timegrid import parse_step_s

    thresholds = Thresholds(
        p95_ms=parse_latency_ms(args.p95, "--p95"),
        p99_ms=parse_latency_ms(args.p99, "--p99"),
        max_error_rate=parse_fraction(args.max_error_rate, "--max-error-rate"),
        max_cpu_utilisation=parse_fraction(args.max_cpu, "--max-cpu"),
        max_memory_utilisation=parse_fraction(args.max_memory, "--max-memory"),
        min_throughput_rps=args.min_throughput,
    )
    config = AnalyzerConfig(
        names=metric_names_from_args(args),
        window_s=parse_step_s(args.window, "--window"),
        cpu_cores=args.cpu_cores,
        memory_limit_bytes=parse_bytes(args.memory_limit) if args.memory_limit else None,
        cpu_query=args.cpu_query,
        memory_query=args.memory_query,
    )
    return config, thresholds


def run_analyze(args: argparse.Namespace) -> int:
    """Run one analysis, or ``--count`` of them with ``--watch``, store and print them."""
    from loadprobe.analyzer.analysis import analyze, store_analysis
    from loadprobe.prometheus.client import PrometheusQueryError
    from loadprobe.prometheus.options import client_from_args
    from loadprobe.prometheus.timegrid import parse_time_bound

    config, thresholds = _config_from_args(args)
    interval_s = None
    if args.watch:
        if args.at:
            raise ConfigError("--watch analyses the latest window each time, so it cannot be combined with --at")
        interval_s = parse_duration_s(args.watch, "--watch")
        if interval_s < MIN_WATCH_INTERVAL_S:
            raise ConfigError(f"--watch {args.watch}: repeat at most once per second; give for example 60s")
        if not 1 <= args.count <= MAX_WATCH_COUNT:
            raise ConfigError(f"--count {args.count} is outside 1..{MAX_WATCH_COUNT}")
    window_end = parse_time_bound(args.at, "--at") if args.at else None
    count = args.count if interval_s is not None else 1

    store = Store(args.db)
    payloads: list[dict[str, Any]] = []
    failures = 0
    interrupted = False
    with client_from_args(args) as client:
        started = time.monotonic()
        try:
            for index in range(count):
                try:
                    analysis = analyze(client, config, thresholds, window_end)
                except PrometheusQueryError as exc:
                    # A watch outlasts a Prometheus outage: log it and try the next window.
                    if interval_s is None or (index + 1 == count and not payloads):
                        raise
                    failures += 1
                    logger.error("analysis %d of %d failed and was skipped: %s", index + 1, count, exc)
                else:
                    store_analysis(store, analysis)
                    payloads.append(analysis.payload())
                    if not args.json:
                        _print_analysis(analysis.payload(), index, count)
                if interval_s is not None and index + 1 < count:
                    # Scheduled from the start, so a slow query does not shift later windows.
                    time.sleep(max(0.0, started + (index + 1) * interval_s - time.monotonic()))
        except KeyboardInterrupt:
            if not payloads:
                raise
            interrupted = True
            logger.warning("watch interrupted after %d of %d analyses; all of them are stored", len(payloads), count)

    if args.json:
        if interval_s is None:
            print_json(payloads[0])
        else:
            print_json({"analyses": payloads, "count": len(payloads), "failed": failures})
    return 130 if interrupted else 0


def _format(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric in ("error_rate", "cpu_utilisation", "memory_utilisation"):
        return f"{value * 100:.2f} %"
    if metric.endswith("_ms"):
        return f"{value:,.1f} ms"
    if metric == "memory_bytes":
        return f"{value / 2**30:,.2f} GiB"
    if metric == "cpu_cores":
        return f"{value:,.2f} cores"
    if metric == "throughput_rps":
        return f"{value:,.2f} rps"
    return f"{value:,.0f}"


_THRESHOLD_KEYS = {
    "p95_ms": "p95_ms",
    "p99_ms": "p99_ms",
    "error_rate": "max_error_rate",
    "cpu_utilisation": "max_cpu_utilisation",
    "memory_utilisation": "max_memory_utilisation",
    "throughput_rps": "min_throughput_rps",
}


def _print_analysis(payload: dict[str, Any], index: int, count: int) -> None:
    status = payload["status"]
    heading = f"analysis {payload['analysis_id']}"
    if count > 1:
        heading += f" ({index + 1} of {count})"
    window = f"{payload['window_start'].isoformat()} .. {payload['window_end'].isoformat()} UTC"

    table = Table(title=f"{heading}: {window}: [{_STATUS_STYLE[status]}]{status}[/]")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("verdict")

    breached = {b["metric"]: b["severity"] for b in payload["bottlenecks"]}
    for metric, value in payload["metrics"].items():
        threshold_key = _THRESHOLD_KEYS.get(metric)
        threshold = payload["thresholds"].get(threshold_key) if threshold_key else None
        prefix = "min " if metric == "throughput_rps" else ""
        threshold_text = f"{prefix}{_format(metric, threshold)}" if threshold is not None else ""
        if value is None:
            verdict = "[dim]no data[/]"
        elif metric in breached:
            verdict = f"[{_STATUS_STYLE[breached[metric]]}]{breached[metric]}[/]"
        else:
            verdict = "[green]ok[/]" if threshold is not None else ""
        table.add_row(_LABELS[metric], _format(metric, value), threshold_text, verdict)
    console.print(table)

    for bottleneck in payload["bottlenecks"]:
        style = _STATUS_STYLE[bottleneck["severity"]]
        console.print(f"[{style}]{bottleneck['severity']}[/] {_LABELS[bottleneck['metric']]}: {bottleneck['recommendation']}")
    unmeasured = [f"{_LABELS[m]}: {reason}" for m, reason in payload["missing"].items() if m in _THRESHOLD_KEYS]
    for line in unmeasured:
        console.print(f"[dim]not measured: {line}[/]")
