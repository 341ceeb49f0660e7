"""``capplan capacity``: the capacity of one instance from a run or a measurements table, and run comparisons."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

from rich.table import Table

from capplan.cli.output import console, print_json
from capplan.errors import ConfigError
from capplan.store import Store
from capplan.units import parse_latency_ms

if TYPE_CHECKING:
    from forecasting.capacity import CapacityPolicy, CapacityReport
    from forecasting.run_compare import RunComparison

__all__ = ["register", "run_capacity", "parse_rate", "policy_from_args", "add_policy_arguments"]

PREDICTED_STATISTICS = ("mean", "p50", "p90", "p95", "p99")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "capacity",
        parents=[common],
        help="fit the capacity of one instance: USL, latency model, peak, knee and safe load",
        description=(
            "Fit the Universal Scalability Law and a queueing latency model to the steps of a run (RUN), "
            "or to a table of concurrency and throughput (--measurements FILE.csv), and report the peak, "
            "the knee, the breaking point and the safe load under a policy. "
            "'capplan capacity compare RUN_BEFORE RUN_AFTER' measures the difference a change made, with "
            "bootstrap confidence intervals."
        ),
    )
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="RUN",
        help="a run id; or 'compare' followed by the run before and the run after a change",
    )
    parser.add_argument("--measurements", metavar="FILE.csv", help="fit a table of concurrency,throughput[,mean_ms] instead of a run")
    parser.add_argument("--upto", metavar="RPS", help="fit only the steps offered at or below this rate, requests/s")
    parser.add_argument(
        "--at",
        metavar="RPS",
        help="predict latency at this rate, requests/s; with compare, the rate at which p95 is compared",
    )
    add_policy_arguments(parser)
    parser.add_argument("--bootstrap", metavar="N", default="300", help="bootstrap replicates of compare (default 300)")
    parser.add_argument("--seed", metavar="N", default="0", help="seed of the bootstrap draws (default 0)")
    parser.set_defaults(handler=run_capacity)


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the safe-load policy options shared with ``capplan plan``."""
    parser.add_argument(
        "--policy",
        choices=["breaking-point", "slo"],
        default="breaking-point",
        help=(
            "basis of the safe load: fractions of the breaking point (measured, else predicted), or of the "
            "highest rate whose predicted p95 meets the SLO (default breaking-point)"
        ),
    )
    parser.add_argument("--safe-fraction", metavar="F", default="0.8", help="maximum safe load as a fraction of the basis (default 0.8)")
    parser.add_argument(
        "--recommended-fraction", metavar="F", default="0.6", help="load for normal operation as a fraction of the basis (default 0.6)"
    )
    parser.add_argument(
        "--slo-p95", metavar="MS", help="p95 SLO of the slo policy; a bare number is ms (default: the run's SLO)"
    )


def parse_rate(text: str | None, option: str) -> float | None:
    """Parse a positive rate in requests/s, or return None for None."""
    if text is None:
        return None
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ConfigError(f"{option}: invalid rate {text!r}; give requests per second, such as 120") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{option}: {text!r} is not a rate above 0; give requests per second, such as 120")
    return value


def policy_from_args(args: argparse.Namespace) -> CapacityPolicy:
    from forecasting.capacity import CapacityPolicy

    return CapacityPolicy(
        basis=args.policy,
        safe_fraction=_parse_fraction(args.safe_fraction, "--safe-fraction"),
        recommended_fraction=_parse_fraction(args.recommended_fraction, "--recommended-fraction"),
        slo_p95_ms=parse_latency_ms(args.slo_p95, "--slo-p95") if args.slo_p95 is not None else None,
    )


def run_capacity(args: argparse.Namespace) -> int:
    """Fit and print a capacity report, or compare two runs."""
    policy = policy_from_args(args)
    at_rps = parse_rate(args.at, "--at")
    upto_rps = parse_rate(args.upto, "--upto")
    targets = list(args.targets)
    if targets and targets[0] == "compare":
        return _run_compare(args, targets[1:], policy, at_rps)
    if args.measurements:
        if targets:
            raise ConfigError(f"give either a run or --measurements, not both (got run {targets[0]!r})")
        if upto_rps is not None:
            raise ConfigError("--upto filters the steps of a run; it does not apply to --measurements")
        from forecasting.capacity import measurements_report

        report = measurements_report(args.measurements, policy)
    else:
        if len(targets) != 1:
            raise ConfigError(
                "capacity needs one run id, --measurements FILE.csv, or 'compare RUN_BEFORE RUN_AFTER'; "
                f"got {' '.join(targets) or 'nothing'}"
            )
        from forecasting.capacity import run_report

        report = run_report(Store(args.db), _parse_run(targets[0], "RUN"), policy, upto_rps)

    predictions = _predictions(report, at_rps)
    if args.json:
        payload = report.as_dict()
        if predictions is not None:
            payload["predicted_at"] = predictions
        print_json(payload)
    else:
        print_report(report, predictions)
    return 0


def _run_compare(args: argparse.Namespace, runs: list[str], policy: CapacityPolicy, at_rps: float | None) -> int:
    from forecasting.run_compare import compare_runs

    if len(runs) != 2:
        raise ConfigError(f"compare needs two run ids, the run before and the run after a change; got {len(runs)}")
    if args.measurements or args.upto:
        raise ConfigError("compare works on two stored runs; leave out --measurements and --upto")
    before, after = (_parse_run(text, "compare") for text in runs)
    replicates = _parse_int(args.bootstrap, "--bootstrap")
    seed = _parse_int(args.seed, "--seed")
    comparison = compare_runs(Store(args.db), before, after, policy, at_rps=at_rps, replicates=replicates, seed=seed)
    if args.json:
        print_json(comparison.as_dict())
    else:
        print_comparison(comparison)
    return 0


def _predictions(report: CapacityReport, at_rps: float | None) -> dict[str, Any] | None:
    if at_rps is None:
        return None
    values: dict[str, float | None] = {}
    if report.latency is not None:
        for name in PREDICTED_STATISTICS:
            if name in report.latency.statistics:
                values[f"{name}_ms"] = report.latency.predict_ms(name, at_rps)
    if report.latency is None:
        report.notes.append("--at: no latency model was fitted, so no latency is predicted")
    elif report.knee_rps is not None and at_rps > report.knee_rps:
        report.notes.append(
            f"--at {at_rps:g} rps is beyond the knee ({report.knee_rps:.4g} rps); the prediction there depends "
            "strongly on the fitted capacity"
        )
    return {"rate_rps": at_rps, **values}


def _fmt(value: float | None, digits: str = ",.1f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{digits}}{unit}"


def print_report(report: CapacityReport, predictions: dict[str, Any] | None = None) -> None:
    """Print a capacity report as a table with its notes."""
    title = f"capacity of one instance: {report.source}"
    if report.upto_rps is not None:
        title += f", steps up to {report.upto_rps:g} rps"
    table = Table(title=title, show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("usable levels", str(report.levels))
    table.add_row(f"peak ({report.peak_source or 'not predicted'})", _fmt(report.peak_rps, unit=" rps"))
    table.add_row("peak concurrency", _fmt(report.peak_concurrency, ".3g"))
    table.add_row("knee", _fmt(report.knee_rps, unit=" rps"))
    table.add_row("breaking point (measured)", _fmt(report.breaking_point_rps, unit=" rps"))
    table.add_row("highest measured throughput", _fmt(report.measured_peak_rps, unit=" rps"))
    table.add_row(f"safe load ({report.safe_basis or 'no basis'})", _fmt(report.safe_rps, unit=" rps"))
    table.add_row("recommended load", _fmt(report.recommended_rps, unit=" rps"))
    if report.usl is not None:
        intervals = report.usl.intervals
        for name, value in (("sigma", report.usl.params.sigma), ("kappa", report.usl.params.kappa), ("lambda", report.usl.params.lambda_)):
            low, high = intervals[name]
            table.add_row(f"USL {name} ({report.usl.confidence:.0%} interval)", f"{value:.4g} [{_fmt(low, '.3g')}, {_fmt(high, '.3g')}]")
        table.add_row("USL R squared", f"{report.usl.r_squared:.4f}")
    if report.latency is not None:
        table.add_row("latency model capacity", _fmt(report.latency.capacity_rps, unit=" rps"))
    console.print(table)
    if predictions is not None:
        rate = predictions["rate_rps"]
        parts = [f"{key[:-3]} {value:.1f} ms" for key, value in predictions.items() if key != "rate_rps" and value is not None]
        console.print(f"predicted at {rate:g} rps: {', '.join(parts) or 'beyond the fitted capacity'}")
    for note in report.notes:
        console.print(f"note: {note}")


def print_comparison(comparison: RunComparison) -> None:
    """Print a two-run comparison and its verdict."""
    table = Table(title=f"run {comparison.run_after} against run {comparison.run_before}")
    for column in ("quantity", "before", "after", "after - before", f"{comparison.confidence:.0%} interval"):
        table.add_column(column, justify="right")
    rate = "-" if comparison.rate_rps is None else f"{comparison.rate_rps:g} rps"
    for label, diff, unit in (("safe load (rps)", comparison.safe_rps, ""), (f"p95 at {rate} (ms)", comparison.p95_ms, "")):
        table.add_row(
            label,
            _fmt(diff.before, ",.2f"),
            _fmt(diff.after, ",.2f"),
            _fmt(diff.difference, "+,.2f"),
            f"{_fmt(diff.low, '+,.2f')} .. {_fmt(diff.high, '+,.2f')}",
        )
    console.print(table)
    console.print(f"verdict: {comparison.verdict()}")
    for note in comparison.notes:
        console.print(f"note: {note}")


def _parse_run(text: str, option: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{option}: invalid run id {text!r}; give a whole number (list runs with 'capplan sql \"SELECT * FROM runs\"')") from None
    if value < 1:
        raise ConfigError(f"{option}: run id {value} is below 1; run ids start at 1")
    return value


def _parse_int(text: str, option: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{option}: invalid value {text!r}; give a whole number") from None


def _parse_fraction(text: str, option: str) -> float:
    try:
        return float(str(text).strip().rstrip("%")) / (100.0 if str(text).strip().endswith("%") else 1.0)
    except ValueError:
        raise ConfigError(f"{option}: invalid value {text!r}; give a fraction such as 0.8 or 80%") from None
