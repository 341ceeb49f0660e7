"""Command-line options shared by ``capplan collect --prometheus`` and ``capplan analyze``."""

from __future__ import annotations

import argparse

from capplan.units import parse_duration_s
from loadprobe.prometheus.auth import PASSWORD_ENV, TOKEN_ENV, USER_ENV, auth_from_environment, parse_header
from loadprobe.prometheus.catalogue import MetricNames
from loadprobe.prometheus.client import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, PrometheusClient

__all__ = ["add_connection_options", "add_metric_name_options", "client_from_args", "metric_names_from_args"]

_DEFAULTS = MetricNames()


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Add --timeout, --retries and --header."""
    group = parser.add_argument_group(
        "Prometheus connection",
        f"credentials come from the environment only: {TOKEN_ENV} (bearer token), or {USER_ENV} and "
        f"{PASSWORD_ENV} (basic auth)",
    )
    group.add_argument(
        "--timeout", default=f"{DEFAULT_TIMEOUT_S:g}s", metavar="DURATION",
        help=f"time allowed for one request, such as 30s (default {DEFAULT_TIMEOUT_S:g}s)",
    )
    group.add_argument(
        "--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
        help=(
            f"extra attempts after a timeout, connection error, 408, 429 or 5xx response, with backoff doubling "
            f"from 1 s (default {DEFAULT_RETRIES})"
        ),
    )
    group.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="extra HTTP header for every request, such as 'X-Scope-OrgID: team-a' for Mimir; repeatable",
    )


def add_metric_name_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that name a service's metrics and labels."""
    group = parser.add_argument_group("metric names (every service names its metrics differently)")
    group.add_argument(
        "--selector", default=_DEFAULTS.selector, metavar="MATCHERS",
        help="label matchers added to every metric, without braces, such as 'job=\"api\",env=\"prod\"'",
    )
    group.add_argument(
        "--requests-metric", default=_DEFAULTS.requests_total, metavar="NAME",
        help=f"counter of completed requests (default {_DEFAULTS.requests_total})",
    )
    group.add_argument(
        "--status-label", default=_DEFAULTS.status_label, metavar="LABEL",
        help=f"label of the requests counter that contains the HTTP status (default {_DEFAULTS.status_label})",
    )
    group.add_argument(
        "--error-status", default=_DEFAULTS.error_status, metavar="REGEX",
        help=f"regular expression of failed statuses (default {_DEFAULTS.error_status})",
    )
    group.add_argument(
        "--duration-metric", default=_DEFAULTS.duration_histogram, metavar="NAME",
        help=f"latency histogram in seconds, without _bucket (default {_DEFAULTS.duration_histogram})",
    )
    group.add_argument(
        "--cpu-metric", default=_DEFAULTS.cpu_seconds_total, metavar="NAME",
        help=f"counter of CPU seconds used (default {_DEFAULTS.cpu_seconds_total})",
    )
    group.add_argument(
        "--memory-metric", default=_DEFAULTS.memory_bytes, metavar="NAME",
        help=f"gauge of memory in use, in bytes (default {_DEFAULTS.memory_bytes})",
    )
    group.add_argument(
        "--up-metric", default=_DEFAULTS.up, metavar="NAME",
        help=f"gauge that is 1 for each healthy instance (default {_DEFAULTS.up})",
    )


def metric_names_from_args(args: argparse.Namespace) -> MetricNames:
    return MetricNames(
        requests_total=args.requests_metric,
        duration_histogram=args.duration_metric,
        status_label=args.status_label,
        error_status=args.error_status,
        cpu_seconds_total=args.cpu_metric,
        memory_bytes=args.memory_metric,
        up=args.up_metric,
        selector=args.selector or "",
    )


def client_from_args(args: argparse.Namespace) -> PrometheusClient:
    """Build the client from --prometheus, the connection options and the environment's credentials."""
    headers = dict(parse_header(text) for text in args.header)
    auth = auth_from_environment(extra_headers=headers)
    return PrometheusClient(
        args.prometheus,
        auth=auth,
        timeout_s=parse_duration_s(args.timeout, "--timeout"),
        retries=args.retries,
    )
