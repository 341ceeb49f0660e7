"""The performance analyzer: measure a live service from Prometheus and find its bottlenecks.

- :mod:`.config`: thresholds and where the metrics are.
- :mod:`.measure`: latency, throughput, errors, CPU and memory over one window.
- :mod:`.bottlenecks`: threshold breaches with severity and a recommendation.
- :mod:`.analysis`: one analysis end to end, and storing it.
"""

from loadprobe.analyzer.analysis import Analysis, analyze, store_analysis
from loadprobe.analyzer.bottlenecks import Bottleneck, find_bottlenecks
from loadprobe.analyzer.config import AnalyzerConfig, Thresholds, parse_bytes
from loadprobe.analyzer.measure import Measurements, build_queries, measure

__all__ = [
    "Analysis",
    "analyze",
    "store_analysis",
    "Bottleneck",
    "find_bottlenecks",
    "AnalyzerConfig",
    "Thresholds",
    "parse_bytes",
    "Measurements",
    "build_queries",
    "measure",
]
