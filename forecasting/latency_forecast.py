"""Latency predicted from forecast demand at a given fleet size.

A latency series (such as a service's p95 in ms) can be forecast directly
like any other series. This module answers the other question: what will
latency be if the fleet stays at N instances while demand follows its
forecast? It uses the latency-versus-rate model that ``capplan capacity``
fits to a stepped load test (:class:`forecasting.latency_model.LatencyModel`),
with the forecast demand spread evenly over the serving instances.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from capplan.errors import ConfigError
from forecasting.latency_model import LatencyModel

__all__ = ["latency_from_demand"]


def latency_from_demand(
    points: pd.DataFrame,
    model: LatencyModel,
    instances: int,
    statistic: str = "p95",
    redundancy: int = 0,
) -> pd.DataFrame:
    """Return the predicted latency at each forecast point for a fleet of ``instances``.

    ``points`` has ``ts``, ``yhat`` and ``upper`` in requests/s. The
    ``redundancy`` instances are held back, as in a plan, so each serving
    instance takes demand / (instances - redundancy). The result has ``ts``,
    ``rate_per_instance_rps``, ``latency_ms`` (at ``yhat``),
    ``latency_upper_ms`` (at ``upper``) and ``saturated``, which is True where
    the upper demand reaches the model's capacity, so latency has no bound
    there and is NaN.

    NOTE: even balancing is assumed; a skewed load balancer makes the
    busiest instance slower than predicted.
    """
    if isinstance(instances, bool) or not isinstance(instances, (int, np.integer)) or instances < 1:
        raise ConfigError(f"instances {instances!r} is invalid; give a whole number of at least 1")
    serving = int(instances) - int(redundancy)
    if serving < 1:
        raise ConfigError(
            f"a fleet of {instances} with {redundancy} redundant instances has none left to serve; "
            "give more instances or less redundancy"
        )
    rate = points["yhat"].to_numpy(dtype=float) / serving
    rate_upper = points["upper"].to_numpy(dtype=float) / serving
    latency = np.array([_predict(model, statistic, r) for r in rate])
    latency_upper = np.array([_predict(model, statistic, r) for r in rate_upper])
    return pd.DataFrame(
        {
            "ts": points["ts"].to_numpy(),
            "rate_per_instance_rps": rate,
            "latency_ms": latency,
            "latency_upper_ms": latency_upper,
            "saturated": ~np.isfinite(latency_upper),
        }
    )


def _predict(model: LatencyModel, statistic: str, rate_rps: float) -> float:
    value = model.predict_ms(statistic, max(rate_rps, 0.0))
    return math.nan if value is None else float(value)
