"""Importing one result file: detect, parse, split into steps, judge, store.

Nothing is written until the whole file has been read and every run in it
has its steps, so a file that cannot be imported leaves the store as it was.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from capplan.errors import InputDataError
from capplan.store import Store
from loadprobe.importers.detect import Detected, detect_format
from loadprobe.importers.gatling_log import parse_gatling_log
from loadprobe.importers.jmeter_csv import parse_jmeter_csv
from loadprobe.importers.jmeter_xml import parse_jmeter_xml
from loadprobe.importers.k6_csv import parse_k6_csv
from loadprobe.importers.k6_json import parse_k6_json
from loadprobe.importers.k6_summary import parse_k6_summary
from loadprobe.importers.locust_csv import parse_locust_csv
from loadprobe.importers.model import ImportOptions, ParsedRun, RunInfo
from loadprobe.importers.source import MalformedLines, SourceFile
from loadprobe.importers.step_rows import raw_step_rows
from loadprobe.importers.store_writer import StoredRun, write_runs
from loadprobe.importers.timestamps import format_offset
from loadprobe.importers.verdict import RunVerdict, judge_run

__all__ = ["ImportedRun", "ImportResult", "import_file", "read_file"]

logger = logging.getLogger(__name__)

Parser = Callable[[SourceFile, Detected, ImportOptions, MalformedLines], list[ParsedRun]]

PARSERS: dict[str, Parser] = {
    "k6-json": parse_k6_json,
    "k6-csv": parse_k6_csv,
    "k6-summary": parse_k6_summary,
    "jmeter-csv": parse_jmeter_csv,
    "jmeter-xml": parse_jmeter_xml,
    "locust-stats": parse_locust_csv,
    "locust-history": parse_locust_csv,
    "locust-failures": parse_locust_csv,
    "gatling-log": parse_gatling_log,
}
PROGRESS_REFRESH_S = 0.2


@dataclass
class ImportedRun:
    """One run read from the file, with its store id once written."""

    info: RunInfo
    steps: list[dict[str, Any]]
    verdict: RunVerdict
    run_id: int | None = None

    @property
    def requests(self) -> int:
        return sum(int(step["requests"]) for step in self.steps)

    @property
    def errors(self) -> int:
        return sum(int(step["errors"]) for step in self.steps)


@dataclass
class ImportResult:
    source_file: str
    format: str
    malformed_lines: int
    runs: list[ImportedRun] = field(default_factory=list)


def read_file(path: str, options: ImportOptions, *, progress: bool = False) -> ImportResult:
    """Read and judge every run in a result file without touching the store."""
    source = SourceFile(path)
    detected = detect_format(source)
    logger.info("%s: recognised as %s", source.path, detected.format)
    malformed = MalformedLines(source.path)
    with _byte_progress(source, enabled=progress):
        parsed = PARSERS[detected.format](source, detected, options, malformed)

    result = ImportResult(str(source.path.resolve()), detected.format, 0)
    try:
        for number, run in enumerate(parsed, 1):
            label = f"{source.path} run {number} of {len(parsed)}"
            steps = run.steps if run.recorder is None else raw_step_rows(run.recorder, run.info, options)
            if not steps:
                logger.warning("%s: no requests; it is not stored", label)
                continue
            verdict = judge_run(steps, options, label)
            result.runs.append(ImportedRun(run.info, steps, verdict))
    finally:
        for run in parsed:
            if run.recorder is not None:
                run.recorder.close()

    malformed.report()
    result.malformed_lines = malformed.count
    if not result.runs:
        raise InputDataError(
            f"{source.path} was recognised as {detected.format} but contains no request samples"
            + (f" ({malformed.count} malformed lines)" if malformed.count else "")
            + "; check that the test sent requests and that the file is complete"
        )
    return result


def import_file(store: Store, path: str, options: ImportOptions, *, progress: bool = False) -> ImportResult:
    """Import every run in a result file into the store and return them with their new run ids."""
    result = read_file(path, options, progress=progress)
    stored = [
        StoredRun(
            info=run.info,
            steps=run.steps,
            verdict=run.verdict,
            source_file=result.source_file,
            slo_p95_ms=options.slo_p95_ms,
            max_error_rate=options.max_error_rate,
            config=_run_config(run, result, options, index, len(result.runs)),
        )
        for index, run in enumerate(result.runs)
    ]
    for run, run_id in zip(result.runs, write_runs(store, stored)):
        run.run_id = run_id
        logger.info(
            "stored run %d: %s %s, %d requests, %d errors, %d steps",
            run_id, run.info.tool, run.info.workload_model, run.requests, run.errors, len(run.steps),
        )
    return result


def _run_config(run: ImportedRun, result: ImportResult, options: ImportOptions, index: int, total: int) -> dict[str, Any]:
    return {
        "import": {
            "source_file": result.source_file,
            "format": result.format,
            "run_in_file": index + 1,
            "runs_in_file": total,
            "malformed_lines": result.malformed_lines,
            "utc_offset": format_offset(run.info.utc_offset_min),
            "step_rules": {
                "min_step_s": options.min_step_s,
                "ramp_window_s": options.ramp_window_s,
                "fixed_window_s": options.fixed_window_s,
            },
            "min_achieved_fraction": options.min_achieved_fraction,
            "policy": {"safe_fraction": options.safe_fraction, "recommended_fraction": options.recommended_fraction},
        },
        "notes": run.info.notes,
        **run.info.config,
    }


@contextmanager
def _byte_progress(source: SourceFile, *, enabled: bool) -> Iterator[None]:
    """Show bytes read against the file size on stderr while the file is parsed."""
    if not enabled or source.size == 0:
        yield
        return
    progress = Progress(
        TextColumn(f"reading {source.path.name}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("read", total=source.size)
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(PROGRESS_REFRESH_S):
            progress.update(task, completed=source.bytes_read)

    thread = threading.Thread(target=refresh, name="import-progress", daemon=True)
    progress.start()
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=1.0)
        progress.update(task, completed=source.size)
        progress.stop()
