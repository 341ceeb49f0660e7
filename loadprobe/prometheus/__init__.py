"""Metric history from Prometheus and servers with its HTTP API (Thanos, Mimir, VictoriaMetrics).

- :mod:`.client`: queries with retries and backoff over prometheus-api-client.
- :mod:`.auth`: bearer token or basic auth from the environment.
- :mod:`.catalogue`: the standard queries, built from configurable metric names.
- :mod:`.collector`: chunked, resumable collection of a query into the store.
- :mod:`.resources`: the target's CPU and memory during a load-test step.
"""

from loadprobe.prometheus.auth import PrometheusAuth, auth_from_environment
from loadprobe.prometheus.catalogue import STANDARD_QUERIES, MetricNames, StandardQuery, standard_query
from loadprobe.prometheus.client import PrometheusClient, PrometheusQueryError, QueryTransport
from loadprobe.prometheus.collector import CollectRequest, CollectResult, collect_prometheus
from loadprobe.prometheus.resources import target_resources

__all__ = [
    "PrometheusAuth",
    "auth_from_environment",
    "STANDARD_QUERIES",
    "MetricNames",
    "StandardQuery",
    "standard_query",
    "PrometheusClient",
    "PrometheusQueryError",
    "QueryTransport",
    "CollectRequest",
    "CollectResult",
    "collect_prometheus",
    "target_resources",
]
