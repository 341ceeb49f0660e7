"""Gatling's text ``simulation.log`` (Gatling 2.x and 3.x up to 3.11).

Records are tab-separated lines. The field layout changed between versions
(2.x and early 3.x carry a user id and scenario on REQUEST lines, 3.4 and
later do not), so fields are found by shape rather than position:

- ``RUN`` ... ``<gatling version>``: starts a run; a second RUN record
  (concatenated logs) starts another.
- ``REQUEST`` ... ``<name> <start ms> <end ms> <OK|KO> [message]``.
- ``USER <scenario> ... START|END ... <ms>``: users starting and ending,
  which give the active users over time.

Gatling's injection profiles are mostly open (users arrive at a rate), so a
run is an open workload unless ``--workload-model closed`` is given. The
open timeline is request starts per second. GROUP, ERROR and ASSERTION
records are not needed. The binary log of Gatling 3.12.1 and later is
rejected when the format is detected.
"""

from __future__ import annotations

import logging

from loadprobe.importers.detect import Detected
from loadprobe.importers.error_kinds import kind_from_text
from loadprobe.importers.model import ImportOptions, ParsedRun, RunInfo
from loadprobe.importers.recorder import SampleRecorder
from loadprobe.importers.source import MalformedLines, SourceFile

__all__ = ["parse_gatling_log"]

logger = logging.getLogger(__name__)

_IGNORED_RECORDS = frozenset({"GROUP", "ERROR", "ASSERTION"})


class _Run:
    def __init__(self, version: str | None, simulation: str | None) -> None:
        self.recorder = SampleRecorder()
        self.version = version
        self.simulation = simulation
        self.active_users = 0


def parse_gatling_log(
    source: SourceFile, detected: Detected, options: ImportOptions, malformed: MalformedLines
) -> list[ParsedRun]:
    runs: list[_Run] = []
    try:
        with source.open_text() as stream:
            for number, line in enumerate(stream, 1):
                fields = line.rstrip("\r\n").split("\t")
                record = fields[0]
                if record == "RUN":
                    version = fields[-1].strip() if len(fields) >= 6 else ""
                    runs.append(_Run(version or None, fields[1] if len(fields) > 1 else None))
                    continue
                if record in _IGNORED_RECORDS or not line.strip():
                    continue
                if record not in ("REQUEST", "USER"):
                    malformed.add(number, f"unknown record type {record[:20]!r}")
                    continue
                if not runs:
                    runs.append(_Run(None, None))
                run = runs[-1]
                problem = _request(fields, run) if record == "REQUEST" else _user(fields, run)
                if problem:
                    malformed.add(number, problem)
    except BaseException:
        for run in runs:
            run.recorder.close()
        raise
    return [_parsed(run, options) for run in runs]


def _request(fields: list[str], run: _Run) -> str | None:
    for index in range(len(fields) - 1, 3, -1):
        status = fields[index]
        if status in ("OK", "KO") and fields[index - 1].isdigit() and fields[index - 2].isdigit():
            start_ms = int(fields[index - 2])
            end_ms = int(fields[index - 1])
            message = " ".join(fields[index + 1 :]).strip()
            kind = None
            if status == "KO":
                kind = kind_from_text(message) if message else "other"
            run.recorder.add(start_ms / 1000.0, float(max(end_ms - start_ms, 0)), kind)
            return None
    return "REQUEST record without start, end and OK/KO fields"


def _user(fields: list[str], run: _Run) -> str | None:
    for index, field in enumerate(fields):
        if field in ("START", "END"):
            stamp = fields[index + 1] if field == "START" and index + 1 < len(fields) else fields[-1]
            if not stamp.strip().isdigit():
                return f"USER record with an invalid time {stamp!r}"
            run.active_users += 1 if field == "START" else -1
            run.recorder.add_users(int(stamp) / 1000.0, max(run.active_users, 0))
            return None
    return "USER record without START or END"


def _parsed(run: _Run, options: ImportOptions) -> ParsedRun:
    info = RunInfo(
        tool="gatling",
        source_format="gatling-log",
        tool_version=run.version,
        workload_model=options.workload_model or "open",
        utc_offset_min=None,
    )
    if run.simulation:
        info.config["gatling_simulation"] = run.simulation
    return ParsedRun(info=info, recorder=run.recorder)
