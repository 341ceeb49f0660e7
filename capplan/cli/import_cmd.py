"""``capplan import FILE``: store the results of a k6, JMeter, Locust or Gatling run.

The format is detected from the file's content. Every run found in the file
becomes a run of kind ``imported`` with its steps; nothing is written when
the file cannot be imported.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.policy import SafeLoadPolicy
from capplan.store import Store
from capplan.units import parse_duration_s, parse_fraction, parse_latency_ms

__all__ = ["register", "run_import", "import_payload"]


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "import",
        parents=[common],
        help="store the results of a k6, JMeter, Locust or Gatling test as runs and steps",
        description=(
            "Store the results of a k6 (--out json or csv, summary export, handleSummary JSON), JMeter (JTL CSV "
            "or XML), Locust (--csv files) or Gatling (text simulation.log) test. The format is detected from the "
            "content, and .gz files are read directly. Without --slo-p95 or --max-error-rate the steps get no "
            "verdict and the run no safe load."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="result file to import")
    parser.add_argument("--slo-p95", metavar="LATENCY", help="p95 latency SLO to judge each step by; a bare number is ms")
    parser.add_argument("--max-error-rate", metavar="RATE", help="highest error rate a step may have: 0.01 or 1%%")
    parser.add_argument(
        "--workload-model",
        choices=["open", "closed"],
        help=(
            "how the tool generated load (default: detected; k6 is open when it dropped iterations, "
            "Gatling is open, JMeter and Locust are closed)"
        ),
    )
    parser.add_argument(
        "--utc-offset",
        metavar="OFFSET",
        help="UTC offset of timestamps written without one, such as +02:00 (default: they are UTC)",
    )
    parser.add_argument(
        "--started-at",
        metavar="TIME",
        help="start of the test for files without timestamps (k6 and Locust summaries), ISO 8601; UTC unless it has an offset",
    )
    parser.add_argument(
        "--run-gap", metavar="DURATION", default="60s", help="a pause longer than this in a JMeter file starts a new run (default 60s)"
    )
    parser.add_argument(
        "--min-step", metavar="DURATION", default="5s", help="shortest stretch of constant load that counts as a step (default 5s)"
    )
    parser.add_argument("--ramp-window", metavar="DURATION", default="10s", help="length of the steps a ramp is cut into (default 10s)")
    parser.add_argument(
        "--safe-fraction", metavar="FRACTION", type=float, default=0.8, help="safe load as a fraction of the breaking point (default 0.8)"
    )
    parser.add_argument(
        "--recommended-fraction",
        metavar="FRACTION",
        type=float,
        default=0.6,
        help="recommended load as a fraction of the breaking point (default 0.6)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.set_defaults(handler=run_import)


def _options(args: argparse.Namespace) -> Any:
    from loadprobe.importers import ImportOptions
    from loadprobe.importers.timestamps import parse_offset

    SafeLoadPolicy(args.safe_fraction, args.recommended_fraction)  # validates the fractions before reading anything
    utc_offset_min = None
    if args.utc_offset:
        try:
            utc_offset_min = parse_offset(args.utc_offset)
        except ValueError:
            raise ConfigError(f"--utc-offset: invalid offset {args.utc_offset!r}; give one such as +02:00 or -05:30") from None
    started_at = None
    if args.started_at:
        try:
            started_at = datetime.fromisoformat(args.started_at.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"--started-at: invalid time {args.started_at!r}; give ISO 8601, such as 2026-12-01T10:00:00Z"
            ) from None
        if started_at.tzinfo is None:
            started_at = started_at.replace(tzinfo=timezone.utc)
    return ImportOptions(
        slo_p95_ms=parse_latency_ms(args.slo_p95, "--slo-p95") if args.slo_p95 else None,
        max_error_rate=parse_fraction(args.max_error_rate, "--max-error-rate") if args.max_error_rate else None,
        safe_fraction=args.safe_fraction,
        recommended_fraction=args.recommended_fraction,
        workload_model=args.workload_model,
        utc_offset_min=utc_offset_min,
        started_at=started_at,
        run_gap_s=parse_duration_s(args.run_gap, "--run-gap"),
        min_step_s=parse_duration_s(args.min_step, "--min-step"),
        ramp_window_s=parse_duration_s(args.ramp_window, "--ramp-window"),
    )


def run_import(args: argparse.Namespace) -> int:
    """Import the file named on the command line and print what was stored."""
    from loadprobe.importers import import_file

    options = _options(args)
    result = import_file(Store(args.db), args.file, options, progress=not args.no_progress and not args.json)
    if args.json:
        print_json(import_payload(result))
    else:
        _print_runs(result)
    return 0


_STEP_FIELDS = (
    "step_index",
    "started_at",
    "duration_s",
    "users",
    "offered_rps",
    "achieved_rps",
    "requests",
    "errors",
    "dropped",
    "error_rate",
    "errors_by_kind",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "ramp",
    "passed",
    "fail_reason",
)


def import_payload(result: Any) -> dict[str, Any]:
    """Return the ``--json`` object of an import: the file, its format and each run stored."""
    return {
        "source_file": result.source_file,
        "format": result.format,
        "malformed_lines": result.malformed_lines,
        "runs": [
            {
                "run_id": run.run_id,
                "tool": run.info.tool,
                "tool_version": run.info.tool_version,
                "workload_model": run.info.workload_model,
                "requests": run.requests,
                "errors": run.errors,
                "breaking_point_rps": run.verdict.breaking_point_rps,
                "safe_rps": run.verdict.safe_rps,
                "recommended_rps": run.verdict.recommended_rps,
                "steps": [{field: step.get(field) for field in _STEP_FIELDS} for step in run.steps],
            }
            for run in result.runs
        ],
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _print_runs(result: Any) -> None:
    for run in result.runs:
        version = f" {run.info.tool_version}" if run.info.tool_version else ""
        table = Table(
            title=f"run {run.run_id}: {run.info.tool}{version}, {run.info.workload_model} workload, "
            f"started {run.steps[0]['started_at']:%Y-%m-%d %H:%M:%S} UTC, {run.requests:,} requests, {run.errors:,} errors"
        )
        for column in ("step", "start (UTC)", "s", "users", "offered rps", "achieved rps", "p50 ms", "p95 ms", "p99 ms", "errors", "result"):
            table.add_column(column, justify="right")
        for step in run.steps:
            users = step.get("users")
            verdict = "pass" if step["passed"] else "FAIL"
            table.add_row(
                f"{step['step_index'] + 1}{' ramp' if step.get('ramp') else ''}",
                step["started_at"].strftime("%H:%M:%S"),
                f"{step['duration_s']:.0f}",
                "-" if users is None else f"{users:g}",
                f"{step['offered_rps']:.1f}",
                f"{step['achieved_rps']:.1f}",
                _ms(step["p50_ms"]),
                _ms(step["p95_ms"]),
                _ms(step["p99_ms"]),
                f"{step['error_rate']:.2%}",
                verdict,
            )
        console.print(table)
        breaking = run.verdict.breaking_point_rps
        safe = run.verdict.safe_rps
        console.print(
            f"breaking point: {'not reached' if breaking is None else f'{breaking:.1f} rps'}   "
            f"safe load: {'unknown' if safe is None else f'{safe:.1f} rps'}   ({run.verdict.stop_reason})"
        )
    if result.malformed_lines:
        console.print(f"{result.malformed_lines} malformed line(s) were skipped; see the warnings above")
