"""The quarterly capacity review: its numbers, tables, figures and HTML report.

:func:`build_review` reads a store once and returns a QuarterlyReview;
:func:`build_sections` turns it into the sections that both
``notebooks/quarterly_capacity_review.ipynb`` and ``capplan report`` show.
"""

from capplan.review.build import build_review
from capplan.review.html_report import render_report, write_report
from capplan.review.model import QuarterlyReview, Risk, ServiceReview
from capplan.review.quarters import Quarter, current_quarter, parse_quarter
from capplan.review.scenarios import DEFAULT_SCENARIOS
from capplan.review.sections import SECTION_KEYS, Section, build_sections

__all__ = [
    "DEFAULT_SCENARIOS",
    "SECTION_KEYS",
    "Quarter",
    "QuarterlyReview",
    "Risk",
    "Section",
    "ServiceReview",
    "build_review",
    "build_sections",
    "current_quarter",
    "parse_quarter",
    "render_report",
    "write_report",
]
