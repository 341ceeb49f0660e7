"""Prediction intervals of a daily-peak forecast: bands at other levels and the chance of a shortfall.

A stored forecast carries one central interval (``lower``..``upper`` at
probability ``level``). Bands at other levels, and the probability that a
day's peak exceeds a capacity, read each half of that interval as half of a
normal distribution: sigma_upper = (upper - yhat) / z and sigma_lower =
(yhat - lower) / z, z the (1 + level) / 2 quantile of the standard normal.
Columns ``lower_80``/``upper_80`` and ``lower_95``/``upper_95``, when every
point of a forecast has them, are used as they are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

__all__ = ["FAN_LEVELS", "interval_bands", "shortfall_probability"]

FAN_LEVELS = (0.8, 0.95)


def _z(level: float) -> float:
    return float(ndtri((1.0 + level) / 2.0))


def _has_band(points: pd.DataFrame, lower: str, upper: str) -> bool:
    """Return True when both columns exist and every point has a value (forecasts made before they existed store NULL)."""
    return lower in points.columns and upper in points.columns and bool(points[[lower, upper]].notna().all().all())


def interval_bands(points: pd.DataFrame, level: float, levels: tuple[float, ...] = FAN_LEVELS) -> dict[float, tuple[np.ndarray, np.ndarray, bool]]:
    """Return, per level in ``levels``, the (lower, upper) arrays and whether they were derived.

    A band is taken as stored (derived False) when the forecast has columns
    for it or its level is the forecast's own. Otherwise it is scaled from the
    stored interval under the normal reading in the module docstring.
    """
    yhat = points["yhat"].to_numpy(dtype=float)
    upper_spread = points["upper"].to_numpy(dtype=float) - yhat
    lower_spread = yhat - points["lower"].to_numpy(dtype=float)
    z_stored = _z(level)
    bands: dict[float, tuple[np.ndarray, np.ndarray, bool]] = {}
    for target in levels:
        suffix = f"{round(target * 100):d}"
        if _has_band(points, f"lower_{suffix}", f"upper_{suffix}"):
            bands[target] = (
                points[f"lower_{suffix}"].to_numpy(dtype=float),
                points[f"upper_{suffix}"].to_numpy(dtype=float),
                False,
            )
        elif abs(target - level) < 1e-9:
            bands[target] = (yhat - lower_spread, yhat + upper_spread, False)
        else:
            scale = _z(target) / z_stored
            bands[target] = (yhat - lower_spread * scale, yhat + upper_spread * scale, True)
    return bands


def shortfall_probability(points: pd.DataFrame, level: float, capacity_rps: float) -> np.ndarray:
    """Return, per forecast day, the probability that the peak exceeds ``capacity_rps``."""
    yhat = points["yhat"].to_numpy(dtype=float)
    sigma = (points["upper"].to_numpy(dtype=float) - yhat) / _z(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(sigma > 0, (capacity_rps - yhat) / sigma, np.where(yhat > capacity_rps, -np.inf, np.inf))
    return 1.0 - ndtr(score)
