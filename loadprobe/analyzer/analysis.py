"""One analysis of a live service: measure a window, find bottlenecks, store the result."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from capplan.store import Store
from loadprobe.analyzer.bottlenecks import Bottleneck, find_bottlenecks, overall_status
from loadprobe.analyzer.config import AnalyzerConfig, Thresholds
from loadprobe.analyzer.measure import METRIC_UNITS, Measurements, build_queries, measure
from loadprobe.prometheus.client import PrometheusClient
from loadprobe.prometheus.timegrid import utc_now

__all__ = ["Analysis", "analyze", "store_analysis"]

logger = logging.getLogger(__name__)


@dataclass
class Analysis:
    """The measurements of one window, its bottlenecks and what was not measured."""

    prometheus_url: str
    config: AnalyzerConfig
    thresholds: Thresholds
    measurements: Measurements
    bottlenecks: list[Bottleneck]
    status: str
    created_at: datetime
    analysis_id: int | None = None
    missing: dict[str, str] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """Return the ``--json`` object of this analysis."""
        m = self.measurements
        return {
            "analysis_id": self.analysis_id,
            "prometheus_url": self.prometheus_url,
            "window_start": m.window_start,
            "window_end": m.window_end,
            "window_s": self.config.window_s,
            "status": self.status,
            "metrics": m.values(),
            "units": dict(METRIC_UNITS),
            "thresholds": self.thresholds.as_dict(),
            "bottlenecks": [b.as_dict() for b in self.bottlenecks],
            "missing": dict(self.missing),
        }


def _missing(m: Measurements, config: AnalyzerConfig) -> dict[str, str]:
    """Return, for each unmeasured value, why it is missing and which option sets it."""
    names = config.names
    reasons: dict[str, str] = {}

    if m.throughput_rps is None:
        reasons["throughput_rps"] = f"{names.requests_total} has no data in the window; set --requests-metric or --selector"
    if m.error_rate is None and m.throughput_rps is not None:
        reasons["error_rate"] = "no requests in the window"
    for metric in ("p95_ms", "p99_ms", "mean_ms"):
        if getattr(m, metric) is None:
            reasons[metric] = (
                f"{names.duration_histogram}_bucket has no data or no requests in the window; set --duration-metric"
            )

    if m.cpu_cores is None:
        reasons["cpu_cores"] = f"{names.cpu_seconds_total} has no data in the window; set --cpu-metric"
    if m.cpu_utilisation is None:
        reasons["cpu_utilisation"] = (
            "give --cpu-cores (cores per instance) or --cpu-query" if m.cpu_cores is not None and not config.cpu_query
            else "no CPU data in the window"
        )

    if m.memory_bytes is None:
        reasons["memory_bytes"] = f"{names.memory_bytes} has no data in the window; set --memory-metric"
    if m.memory_utilisation is None:
        reasons["memory_utilisation"] = (
            "give --memory-limit (bytes per instance) or --memory-query"
            if m.memory_bytes is not None and not config.memory_query
            else "no memory data in the window"
        )

    if m.instances is None:
        reasons["instances"] = f"{names.up} has no data; set --up-metric"
    return reasons


def analyze(
    client: PrometheusClient,
    config: AnalyzerConfig,
    thresholds: Thresholds,
    window_end: datetime | None = None,
) -> Analysis:
    """Measure the window ending at ``window_end`` (default now, naive UTC) and find its bottlenecks."""
    end = window_end or utc_now()
    measurements = measure(client, config, end)
    bottlenecks = find_bottlenecks(measurements, thresholds)
    status = overall_status(measurements, bottlenecks)
    analysis = Analysis(
        prometheus_url=client.url,
        config=config,
        thresholds=thresholds,
        measurements=measurements,
        bottlenecks=bottlenecks,
        status=status,
        created_at=utc_now(),
        missing=_missing(measurements, config),
    )
    if bottlenecks:
        logger.info(
            "window ending %s UTC: %d bottleneck(s), worst %s",
            end.isoformat(),
            len(bottlenecks),
            status,
        )
    return analysis


def store_analysis(store: Store, analysis: Analysis) -> int:
    """Insert the analysis and its bottlenecks in one transaction and return its id."""
    m = analysis.measurements
    config = analysis.config.as_dict()
    config["queries"] = build_queries(analysis.config)
    with store.write() as con:
        row = con.execute(
            """
            INSERT INTO analyses (created_at, prometheus_url, selector, window_start, window_end, status,
                                  throughput_rps, error_rate, p95_ms, p99_ms, mean_ms, cpu_cores, cpu_utilisation,
                                  memory_bytes, memory_utilisation, instances, thresholds, config)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            RETURNING analysis_id
            """,
            [
                analysis.created_at,
                analysis.prometheus_url,
                analysis.config.names.selector or None,
                m.window_start,
                m.window_end,
                analysis.status,
                m.throughput_rps,
                m.error_rate,
                m.p95_ms,
                m.p99_ms,
                m.mean_ms,
                m.cpu_cores,
                m.cpu_utilisation,
                m.memory_bytes,
                m.memory_utilisation,
                m.instances,
                json.dumps(analysis.thresholds.as_dict()),
                json.dumps(config),
            ],
        ).fetchone()
        assert row is not None
        analysis_id = int(row[0])
        for b in analysis.bottlenecks:
            con.execute(
                "INSERT INTO analysis_bottlenecks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [analysis_id, b.metric, b.severity, b.value, b.threshold, b.unit, b.recommendation],
            )
    analysis.analysis_id = analysis_id
    return analysis_id
