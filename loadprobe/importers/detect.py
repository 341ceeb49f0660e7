"""Recognising a result file's format from its content, never its name.

The first 64 KiB (after gunzipping) decide. An XML document with a
``testResults`` root is a JMeter JTL. JSON lines with ``type`` Metric or
Point are k6 ``--out json``, and a JSON document with ``metrics`` is a k6
summary. Tab-separated RUN/USER/REQUEST records are a Gatling log. A CSV
header names k6, JMeter or Locust columns. Anything else is rejected before
the store is opened.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass

from capplan.errors import InputDataError
from loadprobe.importers.source import SourceFile

__all__ = ["Detected", "FORMATS", "detect_format", "JMETER_COLUMNS"]

FORMATS = (
    "k6-json",
    "k6-csv",
    "k6-summary",
    "jmeter-csv",
    "jmeter-xml",
    "locust-stats",
    "locust-history",
    "locust-failures",
    "gatling-log",
)

# Column names JMeter's CSV writer (SaveService) uses in its header line.
JMETER_COLUMNS = frozenset(
    {
        "timeStamp",
        "elapsed",
        "time",
        "label",
        "responseCode",
        "responseMessage",
        "threadName",
        "dataType",
        "success",
        "failureMessage",
        "bytes",
        "sentBytes",
        "grpThreads",
        "allThreads",
        "URL",
        "Filename",
        "Latency",
        "Encoding",
        "SampleCount",
        "ErrorCount",
        "Hostname",
        "IdleTime",
        "Connect",
    }
)
_GATLING_RECORDS = ("RUN\t", "USER\t", "REQUEST\t", "GROUP\t", "ASSERTION\t", "ERROR\t")
_GATLING_VERSION = re.compile(rb"\d+\.\d+(\.\d+)?[0-9A-Za-z.-]*")
# An epoch-millisecond timestamp, a delimiter and an elapsed time: a JMeter data row.
_JMETER_DATA_ROW = re.compile(r"^\d{13}[^\w\" ]\d+[^\w\" ]")


@dataclass(frozen=True)
class Detected:
    """A recognised format and, for delimited text, its delimiter."""

    format: str
    delimiter: str = ","


def detect_format(source: SourceFile) -> Detected:
    """Return the format of ``source`` or raise InputDataError saying what was expected."""
    head = source.head()
    if not head.strip():
        raise InputDataError(f"{source.path} is empty; expected a k6, JMeter, Locust or Gatling result file")
    _reject_gatling_binary(head, source)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    if "\x00" in text:
        raise _not_a_result_file(source, "it contains binary data")
    stripped = text.lstrip()
    if stripped.startswith("<"):
        if "<testResults" in stripped[:8192]:
            return Detected("jmeter-xml")
        raise _not_a_result_file(source, "it is XML without a JMeter <testResults> root")
    if stripped.startswith("{"):
        return _detect_json(stripped, source)
    first_line = stripped.splitlines()[0]
    if first_line.startswith(_GATLING_RECORDS):
        return Detected("gatling-log")
    detected = _detect_csv_header(first_line)
    if detected is None and _JMETER_DATA_ROW.match(first_line):
        raise InputDataError(
            f"{source.path} looks like a JMeter CSV JTL without a header line, so its columns are unknown; "
            "add the header line JMeter writes (timeStamp,elapsed,label,...) or save results with "
            "jmeter.save.saveservice.print_field_names=true"
        )
    if detected is None:
        raise _not_a_result_file(source, f"its first line {first_line[:80]!r} is not a known header")
    return detected


def _reject_gatling_binary(head: bytes, source: SourceFile) -> None:
    # Gatling 3.12.1 and later write a binary log: a zero record-type byte,
    # then the Gatling version as a big-endian int32 length and UTF-8 bytes.
    if len(head) < 6 or head[0] != 0:
        return
    length = int.from_bytes(head[1:5], "big")
    version = head[5 : 5 + length]
    if 1 <= length <= 32 and _GATLING_VERSION.fullmatch(version):
        raise InputDataError(
            f"{source.path} is a binary simulation.log written by Gatling {version.decode()}; Gatling 3.12.1 and later "
            "write this undocumented format, which capplan does not read. Import a text simulation.log (Gatling 3.11 "
            "or earlier), or export the run from Gatling in another format"
        )


def _detect_json(text: str, source: SourceFile) -> Detected:
    first_line = text.split("\n", 1)[0].strip()
    try:
        record = json.loads(first_line)
    except ValueError:
        record = None
    if isinstance(record, dict) and record.get("type") in ("Metric", "Point") and "metric" in record:
        return Detected("k6-json")
    if re.search(r'"metrics"\s*:\s*\{', text):
        return Detected("k6-summary")
    raise _not_a_result_file(source, "it is JSON but neither k6 --out json lines nor a k6 summary with \"metrics\"")


def _detect_csv_header(line: str) -> Detected | None:
    fields = [field.strip() for field in next(csv.reader([line]))]
    names = set(fields)
    if {"metric_name", "timestamp", "metric_value"} <= names:
        return Detected("k6-csv")
    if {"Timestamp", "User Count", "Name"} <= names:
        return Detected("locust-history")
    if {"Type", "Name", "Request Count", "Failure Count"} <= names:
        return Detected("locust-stats")
    if {"Name", "Error", "Occurrences"} <= names:
        return Detected("locust-failures")
    delimiter = _jmeter_delimiter(line)
    if delimiter is not None:
        return Detected("jmeter-csv", delimiter)
    return None


def _jmeter_delimiter(line: str) -> str | None:
    """Return the delimiter that splits the line into JMeter column names, or None."""
    candidates = {char for char in line if not char.isalnum() and char not in "\"'\r\n"}
    best: tuple[int, str] | None = None
    for delimiter in candidates:
        fields = [field.strip().strip('"') for field in line.rstrip("\r\n").split(delimiter)]
        known = sum(1 for field in fields if field in JMETER_COLUMNS)
        if "timeStamp" in fields and known >= 3 and (best is None or known > best[0]):
            best = (known, delimiter)
    return best[1] if best else None


def _not_a_result_file(source: SourceFile, reason: str) -> InputDataError:
    return InputDataError(
        f"{source.path} is not a load-test result file that capplan can import: {reason}. Expected k6 --out json "
        "or csv, a k6 summary export, a JMeter JTL (CSV or XML), Locust --csv files or a Gatling simulation.log"
    )
