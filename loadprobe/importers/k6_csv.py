"""k6 ``--out csv`` results: one metric sample per row, plain or gzipped.

Columns are found by name in the header, which differs between k6 versions
(``expected_response``, ``service`` and ``metadata`` came later). The
``timestamp`` column is Unix seconds by default; ``timeFormat`` can make it
Unix milliseconds, microseconds or nanoseconds, or RFC 3339 text. The unit is
recognised from the first value: the digit count for numbers, an offset for
text. The metrics used are those of ``k6_json``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable

from capplan.errors import InputDataError
from loadprobe.importers.detect import Detected
from loadprobe.importers.error_kinds import kind_from_k6
from loadprobe.importers.k6_json import first_offset, k6_request_failed
from loadprobe.importers.model import ImportOptions, ParsedRun, RunInfo
from loadprobe.importers.recorder import SampleRecorder
from loadprobe.importers.source import MalformedLines, SourceFile
from loadprobe.importers.timestamps import epoch_seconds, epoch_unit_of, parse_rfc3339

__all__ = ["parse_k6_csv"]

logger = logging.getLogger(__name__)

_DECODED = frozenset({"http_req_duration", "vus", "dropped_iterations"})


def parse_k6_csv(
    source: SourceFile, detected: Detected, options: ImportOptions, malformed: MalformedLines
) -> list[ParsedRun]:
    recorder = SampleRecorder()
    info = RunInfo(tool="k6", source_format="k6-csv")
    offsets: dict[int, None] = {}
    saw_dropped = False
    try:
        with source.open_text(newline="") as stream:
            reader = csv.reader(stream)
            header = [name.strip() for name in next(reader)]
            column = {name: index for index, name in enumerate(header)}
            name_at, time_at, value_at = column["metric_name"], column["timestamp"], column["metric_value"]
            status_at = column.get("status")
            expected_at = column.get("expected_response")
            code_at = column.get("error_code")
            error_at = column.get("error")
            url_at = column.get("url")
            needed = max(name_at, time_at, value_at, *(i for i in (status_at, expected_at, code_at, error_at) if i is not None)) + 1
            parse_time: Callable[[str], tuple[float, int | None]] | None = None
            previous_line = reader.line_num
            while True:
                first_line = previous_line + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    malformed.add(first_line, f"invalid CSV ({exc})")
                    previous_line = reader.line_num
                    continue
                previous_line = reader.line_num
                if not row:
                    continue
                name = row[name_at] if len(row) > name_at else ""
                if name == "iterations":
                    recorder.iterations += 1
                    continue
                if name not in _DECODED:
                    if len(row) != len(header):
                        malformed.add(first_line, f"{len(row)} fields where the header has {len(header)}")
                    continue
                if len(row) < needed:
                    malformed.add(first_line, f"{len(row)} fields where the header has {len(header)}")
                    continue
                try:
                    if parse_time is None:
                        parse_time = _time_parser(row[time_at])
                    time_s, offset_min = parse_time(row[time_at])
                    value = float(row[value_at])
                except ValueError as exc:
                    malformed.add(first_line, f"invalid {name} row ({exc})")
                    continue
                if offset_min is not None:
                    offsets[offset_min] = None
                if name == "http_req_duration":
                    status = row[status_at] if status_at is not None else ""
                    expected = row[expected_at] if expected_at is not None else None
                    failed = k6_request_failed(status, expected)
                    kind = None
                    if failed:
                        kind = kind_from_k6(
                            status,
                            row[code_at] if code_at is not None else None,
                            row[error_at] if error_at is not None else None,
                        )
                    recorder.add(time_s - value / 1000.0, value, kind)
                    if url_at is not None and url_at < len(row):
                        recorder.note_url(row[url_at])
                elif name == "vus":
                    recorder.add_users(time_s, value)
                else:
                    recorder.add_dropped(time_s, value)
                    saw_dropped = True
    except StopIteration:
        recorder.close()
        raise InputDataError(f"{source.path} has no header line; expected k6 --out csv output") from None
    except BaseException:
        recorder.close()
        raise
    info.utc_offset_min = first_offset(offsets, source)
    info.workload_model = options.workload_model or ("open" if saw_dropped else "closed")
    info.target_url = recorder.target_url()
    return [ParsedRun(info=info, recorder=recorder)]


def _time_parser(sample: str) -> Callable[[str], tuple[float, int | None]]:
    """Return a parser for the timestamp format of ``sample``."""
    text = sample.strip()
    if "-" in text[1:] or "T" in text:
        return parse_rfc3339  # type: ignore[return-value]
    divisor = epoch_unit_of(text)
    unit = {1.0: "seconds", 1e3: "milliseconds", 1e6: "microseconds", 1e9: "nanoseconds"}[divisor]
    logger.info("k6 CSV timestamps are Unix %s", unit)

    def parse(value: str) -> tuple[float, int | None]:
        return epoch_seconds(value, divisor), None

    return parse
