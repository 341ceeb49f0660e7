"""JMeter samples into runs: run boundaries, sub-samples and transaction rows.

JMeter appends to an existing JTL file by default, so one file can hold
several test runs. A new run starts where the CSV header repeats, where a
new XML document begins, or where the samples jump forward or back in time
by more than ``run_gap_s`` (``--run-gap``, 60 s by default). Within one
run, samples are written when they end, so their start times only go back
by a request's duration.

A CSV file flattens sub-samples (a followed redirect or an embedded
resource) into rows labelled ``Label-0``, ``Label-1``. Such a row is a
sub-sample, not a request of its own, when a row labelled ``Label`` exists
in the same run. Otherwise the label merely ends in a number and the row is
a request. Rows a Transaction Controller writes ("Number of samples in
transaction") repeat the requests they time and are skipped.
"""

from __future__ import annotations

import logging
import re

from loadprobe.importers.error_kinds import kind_from_jmeter
from loadprobe.importers.model import ImportOptions, ParsedRun, RunInfo
from loadprobe.importers.recorder import SampleRecorder
from loadprobe.importers.source import SourceFile

__all__ = ["JMeterRuns"]

logger = logging.getLogger(__name__)

_SUB_SAMPLE_LABEL = re.compile(r"^(.*)-(\d+)$")
_TRANSACTION_MESSAGE = "Number of samples in transaction"


class _Run:
    def __init__(self) -> None:
        self.recorder = SampleRecorder()
        self.parent_labels: set[str] = set()
        self.sub_groups: dict[str, int] = {}
        self.max_end_s = float("-inf")
        self.min_start_s = float("inf")
        self.transactions = 0


class JMeterRuns:
    """Collects the samples of a JTL file into one or more runs."""

    def __init__(self, source: SourceFile, source_format: str, options: ImportOptions) -> None:
        self.source = source
        self.source_format = source_format
        self.options = options
        self.offset_min: int | None = None
        self._done: list[_Run] = []
        self._run: _Run | None = None

    def boundary(self, reason: str) -> None:
        """End the current run, if it has samples, because the file marks the start of a new one."""
        if self._run is not None and self._run.recorder.count:
            logger.info("%s: a new run starts (%s)", self.source.path, reason)
            self._done.append(self._run)
            self._run = None

    def add(
        self,
        start_s: float,
        elapsed_ms: float,
        label: str,
        success: bool,
        response_code: str,
        message: str,
        threads: float | None,
        url: str | None,
    ) -> None:
        run = self._run_for(start_s, start_s + elapsed_ms / 1000.0)
        if message.startswith(_TRANSACTION_MESSAGE):
            run.transactions += 1
            return
        group = 0
        match = _SUB_SAMPLE_LABEL.match(label)
        if match:
            base = match.group(1)
            group = run.sub_groups.setdefault(base, len(run.sub_groups) + 1)
        else:
            run.parent_labels.add(label)
        kind = None if success else kind_from_jmeter(response_code, message)
        run.recorder.add(start_s, elapsed_ms, kind, group)
        if threads is not None:
            run.recorder.add_users(start_s, threads)
        if url:
            run.recorder.note_url(url)

    def _run_for(self, start_s: float, end_s: float) -> _Run:
        run = self._run
        gap_s = self.options.run_gap_s
        if run is not None and run.recorder.count and (start_s > run.max_end_s + gap_s or end_s < run.min_start_s - gap_s):
            self.boundary(f"samples jump by more than {gap_s:g} s")
            run = None
        if run is None:
            run = self._run = _Run()
        run.max_end_s = max(run.max_end_s, end_s)
        run.min_start_s = min(run.min_start_s, start_s)
        return run

    def discard(self) -> None:
        for run in [*self._done, *([self._run] if self._run else [])]:
            run.recorder.close()

    def finish(self) -> list[ParsedRun]:
        """Return the runs found, with sub-samples of labels seen as parents excluded."""
        if self._run is not None and self._run.recorder.count:
            self._done.append(self._run)
        self._run = None
        parsed = []
        for run in self._done:
            excluded = {group for base, group in run.sub_groups.items() if base in run.parent_labels}
            run.recorder.exclude_groups(excluded)
            info = RunInfo(
                tool="jmeter",
                source_format=self.source_format,
                workload_model=self.options.workload_model or "closed",
                utc_offset_min=self.offset_min,
                target_url=run.recorder.target_url(),
            )
            if excluded:
                info.notes.append(f"sub-samples of {len(excluded)} label(s) (Label-0, Label-1, ...) not counted as requests")
            if run.transactions:
                info.notes.append(f"{run.transactions} Transaction Controller sample(s) skipped")
            if not run.recorder.users_sum:
                info.notes.append("no allThreads or grpThreads column: steps are fixed windows")
            parsed.append(ParsedRun(info=info, recorder=run.recorder))
        return parsed
