"""The ``capplan`` command line.

Each command group lives in its own module with a ``register(subparsers,
common)`` function that adds its parser and sets ``handler`` to a function
taking the parsed arguments and returning an exit code.

Errors from the CapplanError family print as one line on stderr with exit
code 2. Logging goes to stderr, so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from capplan import __version__
from capplan.errors import CapplanError

__all__ = ["main", "build_parser"]

logger = logging.getLogger("capplan")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        metavar="PATH",
        help="DuckDB store file (default: $CAPPLAN_DB, else data/capplan.duckdb)",
    )
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of tables")
    common.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    common.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    return common


def build_parser() -> argparse.ArgumentParser:
    from capplan.cli import (
        analyze_cmd,
        app_cmd,
        capacity_cmd,
        collect_cmd,
        demo_cmd,
        export_cmd,
        forecast_cmd,
        import_cmd,
        plan_cmd,
        probe_cmd,
        report_cmd,
        sql_cmd,
        target_cmd,
    )

    parser = argparse.ArgumentParser(
        prog="capplan",
        description="Capacity planning from load tests and demand forecasts.",
    )
    parser.add_argument("--version", action="version", version=f"capplan {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    common = _common_options()
    for module in (demo_cmd, probe_cmd, import_cmd, collect_cmd, analyze_cmd, forecast_cmd, capacity_cmd, plan_cmd, app_cmd, sql_cmd, report_cmd, target_cmd, export_cmd):
        module.register(subparsers, common)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.WARNING
    if getattr(args, "verbose", False):
        level = logging.DEBUG
    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False, markup=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    for noisy in ("cmdstanpy", "prophet", "asyncio", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        return int(args.handler(args) or 0)
    except CapplanError as exc:
        print(f"capplan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("capplan: interrupted", file=sys.stderr)
        return 130
