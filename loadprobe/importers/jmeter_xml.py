"""JMeter JTL files in XML form, read as a stream.

Top-level ``httpSample`` and ``sample`` elements under ``testResults`` are
requests, and elements nested in them are sub-results (redirects, embedded
resources) that are not counted. NOTE: a Transaction Controller with
"Generate parent sample" writes the transaction as the top-level sample, so
its requests count as one request each transaction. Attributes used: ``ts`` (epoch ms, start),
``t`` (elapsed ms), ``s`` (success), ``lb``, ``rc``, ``rm`` and ``na``/``ng``
(active threads). Several documents appended to one file are separate runs.

A malformed element is reported with its line number and skipped: reading
resumes at the next line that opens a top-level sample, which JMeter always
writes at the start of a line. A file cut off mid-sample (JMeter killed)
keeps every complete sample.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree

from loadprobe.importers.detect import Detected
from loadprobe.importers.jmeter_runs import JMeterRuns
from loadprobe.importers.model import ImportOptions, ParsedRun
from loadprobe.importers.source import MalformedLines, SourceFile

__all__ = ["parse_jmeter_xml"]

logger = logging.getLogger(__name__)

_SAMPLE_TAGS = frozenset({"httpSample", "sample"})
_SAMPLE_LINE_PREFIXES = ("<httpSample", "<sample")
_ROOT_OPEN = "<testResults"
_ROOT_CLOSE = "</testResults>"


class _Document:
    """One XML document being fed line by line."""

    def __init__(self, resumed: bool = False) -> None:
        self.parser = ElementTree.XMLPullParser(events=("start", "end"))
        self.depth = 0  # open elements, the root included
        self.root_seen = False
        self.open_sample = False
        self.root: ElementTree.Element | None = None
        if resumed:
            self.parser.feed("<testResults>")

    def feed(self, text: str) -> list[tuple[str, ElementTree.Element]]:
        self.parser.feed(text)
        return list(self.parser.read_events())  # type: ignore[arg-type]


def parse_jmeter_xml(
    source: SourceFile, detected: Detected, options: ImportOptions, malformed: MalformedLines
) -> list[ParsedRun]:
    runs = JMeterRuns(source, "jmeter-xml", options)
    document: _Document | None = None
    documents = 0
    skipping = False
    try:
        with source.open_text() as stream:
            for number, line in enumerate(stream, 1):
                if skipping:
                    if not line.startswith(_SAMPLE_LINE_PREFIXES):
                        continue
                    skipping = False
                    document = _Document(resumed=True)
                if ("<?xml" in line or _ROOT_OPEN in line) and document is not None and document.root_seen:
                    document = None  # an appended document whose predecessor was never closed
                if document is None:
                    if not line.strip():
                        continue
                    if documents:
                        runs.boundary("a new XML document starts")
                    document = _Document()
                    documents += 1
                try:
                    events = document.feed(line)
                except ElementTree.ParseError as exc:
                    malformed.add(number, f"invalid XML ({exc})")
                    skipping = True
                    document = None
                    continue
                for event, element in events:
                    _handle(event, element, document, runs, malformed, number)
                if _ROOT_CLOSE in line:
                    document = None
        if document is not None and not skipping:
            _close_truncated(document, runs, malformed, number, source)
    except BaseException:
        runs.discard()
        raise
    return runs.finish()


def _close_truncated(
    document: _Document, runs: JMeterRuns, malformed: MalformedLines, number: int, source: SourceFile
) -> None:
    """Finish a document the file ended inside, as when JMeter was stopped before closing it."""
    try:
        for event, element in document.feed(_ROOT_CLOSE):
            _handle(event, element, document, runs, malformed, number)
        document.parser.close()
    except ElementTree.ParseError:
        malformed.add(number, "the file ends inside a sample (JMeter stopped while writing?)")
        return
    logger.info("%s: the XML ends without </testResults>; every complete sample was read", source.path)


def _handle(
    event: str,
    element: ElementTree.Element,
    document: _Document,
    runs: JMeterRuns,
    malformed: MalformedLines,
    number: int,
) -> None:
    if event == "start":
        document.depth += 1
        if document.depth == 1:
            document.root_seen = True
            document.root = element
        elif document.depth == 2 and element.tag in _SAMPLE_TAGS:
            document.open_sample = True
        return
    document.depth -= 1
    if document.depth != 1 or element.tag not in _SAMPLE_TAGS:
        return
    document.open_sample = False
    attributes = dict(element.attrib)
    if document.root is not None:
        document.root.clear()  # drop finished samples so memory stays flat
    try:
        start_s = int(attributes["ts"]) / 1000.0
        elapsed_ms = float(attributes.get("t", "0"))
        threads_text = attributes.get("na") or attributes.get("ng")
        threads = float(threads_text) if threads_text else None
    except (KeyError, ValueError) as exc:
        malformed.add(number, f"sample without a valid ts or t attribute ({exc})")
        return
    runs.add(
        start_s,
        elapsed_ms,
        attributes.get("lb", ""),
        attributes.get("s", "true").lower() == "true",
        attributes.get("rc", ""),
        attributes.get("rm", ""),
        threads,
        None,
    )
