"""Runs as importers hand them to the step splitter and the store writer.

A parser produces one :class:`ParsedRun` per load test found in a file. A run
read from raw samples (k6 ``--out``, JMeter JTL, Gatling ``simulation.log``)
carries a :class:`~loadprobe.importers.recorder.SampleRecorder` and is split
into steps later. A run read from a summary (k6 summary export, Locust CSV)
already carries its step rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadprobe.importers.recorder import SampleRecorder

__all__ = ["TOOLS", "WORKLOAD_MODELS", "ImportOptions", "RunInfo", "ParsedRun"]

TOOLS = ("k6", "jmeter", "locust", "gatling")
WORKLOAD_MODELS = ("open", "closed")


@dataclass(frozen=True)
class ImportOptions:
    """Choices the user makes on the command line; every field has a safe default.

    ``utc_offset_min`` applies to timestamps written without an offset (JMeter
    formatted timestamps). ``started_at`` is the start of a run whose file has
    no timestamps at all (k6 and Locust summaries).
    """

    slo_p95_ms: float | None = None
    max_error_rate: float | None = None
    min_achieved_fraction: float = 0.9
    safe_fraction: float = 0.8
    recommended_fraction: float = 0.6
    workload_model: str | None = None
    utc_offset_min: int | None = None
    started_at: datetime | None = None
    run_gap_s: float = 60.0
    min_step_s: float = 5.0
    ramp_window_s: float = 10.0
    fixed_window_s: float = 30.0


@dataclass
class RunInfo:
    """Facts about one imported run that are stored on its ``runs`` row."""

    tool: str
    source_format: str
    tool_version: str | None = None
    workload_model: str | None = None
    utc_offset_min: int | None = None
    target_url: str | None = None
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class ParsedRun:
    """One run found in a file: raw samples to split, or ready step rows."""

    info: RunInfo
    recorder: SampleRecorder | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
