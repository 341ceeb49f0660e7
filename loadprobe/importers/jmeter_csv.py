"""JMeter JTL files in CSV form.

The header names the columns (any subset JMeter's SaveService writes, in any
order) and the delimiter is whatever ``jmeter.save.saveservice.default_delimiter``
was: it is recognised from the header. Fields may be quoted, with doubled
quotes, delimiters and line breaks inside. ``timeStamp`` is epoch
milliseconds, or text in the ``timestamp_format`` the user set. Text without
an offset is local time of the JMeter machine, converted with
``--utc-offset`` (UTC when not given). With JMeter's shipped properties
(``sampleresult.timestamp.start=true``) it is the sample's start.
"""

from __future__ import annotations

import csv
import logging

from capplan.errors import InputDataError
from loadprobe.importers.detect import Detected
from loadprobe.importers.jmeter_runs import JMeterRuns
from loadprobe.importers.model import ImportOptions, ParsedRun
from loadprobe.importers.source import MalformedLines, SourceFile
from loadprobe.importers.timestamps import LocalTimeParser

__all__ = ["parse_jmeter_csv"]

logger = logging.getLogger(__name__)


def parse_jmeter_csv(
    source: SourceFile, detected: Detected, options: ImportOptions, malformed: MalformedLines
) -> list[ParsedRun]:
    runs = JMeterRuns(source, "jmeter-csv", options)
    local_time = LocalTimeParser(options.utc_offset_min)
    try:
        with source.open_text(newline="") as stream:
            reader = csv.reader(stream, delimiter=detected.delimiter)
            header = [name.strip() for name in next(reader)]
            column = {name: index for index, name in enumerate(header)}
            time_at = column["timeStamp"]
            elapsed_at = column.get("elapsed", column.get("time"))
            if elapsed_at is None:
                raise InputDataError(
                    f"{source.path}: the JMeter header has no elapsed column, so response times are unknown; "
                    "save with jmeter.save.saveservice.time=true"
                )
            label_at = column.get("label")
            success_at = column.get("success")
            code_at = column.get("responseCode")
            message_at = column.get("responseMessage")
            failure_at = column.get("failureMessage")
            threads_at = column.get("allThreads", column.get("grpThreads"))
            url_at = column.get("URL")
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
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if [field.strip() for field in row] == header:
                    runs.boundary("the header line repeats")
                    continue
                if len(row) != len(header):
                    malformed.add(first_line, f"{len(row)} fields where the header has {len(header)}")
                    continue
                try:
                    stamp = row[time_at].strip()
                    start_s = int(stamp) / 1000.0 if stamp.isdigit() else local_time(stamp)
                    elapsed_ms = float(row[elapsed_at])
                    threads = float(row[threads_at]) if threads_at is not None and row[threads_at].strip() else None
                except ValueError as exc:
                    malformed.add(first_line, str(exc))
                    continue
                code = row[code_at] if code_at is not None else ""
                success = _success(row[success_at] if success_at is not None else None, code)
                message = row[message_at] if message_at is not None else ""
                if not success and failure_at is not None and row[failure_at]:
                    message = f"{message} {row[failure_at]}".strip()
                runs.add(
                    start_s,
                    elapsed_ms,
                    row[label_at] if label_at is not None else "",
                    success,
                    code,
                    message,
                    threads,
                    row[url_at] if url_at is not None else None,
                )
    except StopIteration:
        runs.discard()
        raise InputDataError(f"{source.path} has no header line; expected a JMeter CSV JTL") from None
    except BaseException:
        runs.discard()
        raise
    if local_time.saw_naive and options.utc_offset_min is None:
        logger.info(
            "%s: timestamps have no UTC offset and are taken as UTC; pass --utc-offset with the offset of the "
            "JMeter machine, such as +02:00, if they are local time",
            source.path,
        )
    runs.offset_min = local_time.offset_min
    return runs.finish()


def _success(text: str | None, response_code: str) -> bool:
    if text is None:
        code = response_code.strip()
        return code.isdigit() and int(code) < 400
    return text.strip().lower() == "true"
