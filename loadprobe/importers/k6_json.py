"""k6 ``--out json`` results: one JSON object per line, plain or gzipped.

Each line is a Metric declaration or a Point sample with ``type``,
``data`` and ``metric``. Older k6 writes ``type`` first and adds
``tainted`` and ``sub`` to Metric lines; newer k6 writes ``metric`` first.
Only the metrics capplan uses are decoded:

- ``http_req_duration`` (ms), one point per request, timed when the response
  ended; the request's start is that time minus the duration.
- ``vus``, the active virtual users, once a second: the closed-model timeline.
- ``dropped_iterations``: arrivals an arrival-rate executor could not start,
  which marks the run as an open workload.
- ``iterations`` lines are counted without decoding, for requests per iteration.

Every other line is skipped after a cheap check that it is a whole JSON
object, so a truncated line is still reported as malformed. Skipping the
decode makes the import faster than decoding every line.
"""

from __future__ import annotations

import json
import logging
import re

from loadprobe.importers.detect import Detected
from loadprobe.importers.error_kinds import kind_from_k6
from loadprobe.importers.model import ImportOptions, ParsedRun, RunInfo
from loadprobe.importers.recorder import SampleRecorder
from loadprobe.importers.source import MalformedLines, SourceFile
from loadprobe.importers.timestamps import parse_rfc3339

__all__ = ["parse_k6_json", "k6_request_failed", "first_offset"]

logger = logging.getLogger(__name__)

_DECODED = frozenset({"http_req_duration", "vus", "dropped_iterations"})
_NEW_LAYOUT_PREFIX = '{"metric":"'
_METRIC_KEY = '"metric":"'
_SPACED_METRIC = re.compile(r'"metric"\s*:\s*"([^"\\]*)"')


def _metric_name(line: str) -> str | None:
    # The newer layout starts with the metric; the older one ends with it,
    # after data.tags, where a user tag called "metric" could also appear.
    if line.startswith(_NEW_LAYOUT_PREFIX):
        end = line.find('"', 11)
        return line[11:end] if end > 0 else None
    at = line.rfind(_METRIC_KEY)
    if at >= 0:
        end = line.find('"', at + 10)
        return line[at + 10 : end] if end > 0 else None
    # k6 writes compact JSON; this slower path reads lines re-encoded with spaces.
    names = _SPACED_METRIC.findall(line)
    if not names:
        return None
    return names[0] if line.lstrip().startswith('{"metric"') else names[-1]


def k6_request_failed(status: str, expected_response: str | None) -> bool:
    """Return whether k6 counted the request as failed.

    k6 0.31 and later tag each request with ``expected_response``. For older
    versions, a status of 0 (no response) or 400 and above is taken as
    failed, because k6's default expected statuses are 200-399.
    """
    if expected_response is not None and expected_response != "":
        return expected_response == "false"
    if not status.isdigit():
        return True
    code = int(status)
    return code == 0 or code >= 400


def parse_k6_json(
    source: SourceFile, detected: Detected, options: ImportOptions, malformed: MalformedLines
) -> list[ParsedRun]:
    recorder = SampleRecorder()
    info = RunInfo(tool="k6", source_format="k6-json")
    offsets: dict[int, None] = {}  # insertion-ordered, so the first offset seen comes first
    saw_dropped = False
    try:
        with source.open_text() as stream:
            for number, line in enumerate(stream, 1):
                name = _metric_name(line)
                if name not in _DECODED:
                    # Most lines are whole objects of other metrics: skip them without a call.
                    if name is None or name == "iterations" or not (line.endswith("}\n") and line.startswith("{")):
                        _check_skipped(line, name, number, malformed, recorder)
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    malformed.add(number, f"invalid JSON ({exc})")
                    continue
                if not isinstance(record, dict) or record.get("type") != "Point":
                    continue
                try:
                    data = record["data"]
                    time_s, offset_min = parse_rfc3339(data["time"])
                    value = float(data["value"])
                except (KeyError, TypeError, ValueError) as exc:
                    malformed.add(number, f"invalid {name} point ({exc})")
                    continue
                offsets[offset_min] = None
                if name == "http_req_duration":
                    tags = data.get("tags") or {}
                    status = str(tags.get("status", ""))
                    failed = k6_request_failed(status, tags.get("expected_response"))
                    kind = kind_from_k6(status, tags.get("error_code"), tags.get("error")) if failed else None
                    recorder.add(time_s - value / 1000.0, value, kind)
                    recorder.note_url(str(tags.get("url", "")))
                elif name == "vus":
                    recorder.add_users(time_s, value)
                else:
                    recorder.add_dropped(time_s, value)
                    saw_dropped = True
    except BaseException:
        recorder.close()
        raise
    info.utc_offset_min = first_offset(offsets, source)
    # NOTE: an arrival-rate executor that never dropped an iteration leaves no
    # trace in the file, so its run is taken as closed unless --workload-model open.
    info.workload_model = options.workload_model or ("open" if saw_dropped else "closed")
    if options.workload_model is None:
        logger.info(
            "%s: workload taken as %s (%s); pass --workload-model to override",
            source.path,
            info.workload_model,
            "k6 dropped iterations, so an arrival-rate executor ran" if saw_dropped else "no dropped iterations",
        )
    info.target_url = recorder.target_url()
    return [ParsedRun(info=info, recorder=recorder)]


def _check_skipped(
    line: str, name: str | None, number: int, malformed: MalformedLines, recorder: SampleRecorder
) -> None:
    text = line.strip()
    if not text:
        return
    if not (text.startswith("{") and text.endswith("}")):
        malformed.add(number, "not a complete JSON object (truncated line?)")
        return
    if name is None:
        malformed.add(number, "JSON object without a \"metric\" field")
        return
    if name == "iterations" and '"Point"' in text:
        recorder.iterations += 1


def first_offset(offsets: dict[int, None], source: SourceFile) -> int | None:
    """Return the first UTC offset seen in a file, logging when the file has several (a DST change)."""
    if not offsets:
        return None
    if len(offsets) > 1:
        logger.info(
            "%s: timestamps carry several UTC offsets (%s minutes); all are stored in UTC and the first is kept",
            source.path,
            ", ".join(map(str, offsets)),
        )
    return next(iter(offsets))
