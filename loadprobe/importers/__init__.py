"""Importing k6, JMeter, Locust and Gatling results as capplan runs and steps.

``import_file`` detects the format from the file's content, reads it as a
stream, splits its load timeline into steps and stores each run found with
kind ``imported``. See docs/importers.md for each format's rules.
"""

from loadprobe.importers.detect import FORMATS, Detected, detect_format
from loadprobe.importers.model import TOOLS, WORKLOAD_MODELS, ImportOptions, ParsedRun, RunInfo
from loadprobe.importers.pipeline import ImportedRun, ImportResult, import_file, read_file
from loadprobe.importers.source import SourceFile

__all__ = [
    "FORMATS",
    "TOOLS",
    "WORKLOAD_MODELS",
    "Detected",
    "ImportOptions",
    "ImportResult",
    "ImportedRun",
    "ParsedRun",
    "RunInfo",
    "SourceFile",
    "detect_format",
    "import_file",
    "read_file",
]
