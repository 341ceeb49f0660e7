"""Request-rate forecasts from a forecast of active users and the fitted requests per user.

Product teams often plan in users ("we expect 2 million users by June"),
while the fleet serves requests. When both histories are stored, the
requests per user is the median ratio of requests to users over their common
time steps, because a median ignores an outage or a bot burst. The user
forecast times that ratio is the request-rate forecast.

The ratio's own spread widens the intervals: on the log scale, the user
interval's half-width and the ratio's quantile spread at the same level are
added in quadrature, which treats the two as independent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from capplan.errors import InputDataError
from forecasting.peaks import regularize

__all__ = ["RequestsPerUser", "fit_requests_per_user", "requests_from_users"]

logger = logging.getLogger(__name__)

MIN_COMMON_POINTS = 10            # common time steps with users above zero needed to fit the ratio
RECENT_POINTS = 28 * 24           # the ratio is fitted on at most the last 28 days of hourly steps


@dataclass(frozen=True)
class RequestsPerUser:
    """Requests per user (median ratio) and the standard deviation of the log ratio."""

    ratio: float
    log_sigma: float
    points: int


def fit_requests_per_user(users: pd.DataFrame, requests: pd.DataFrame) -> RequestsPerUser:
    """Fit requests per user from two sample frames (``ts``, ``value``), aligned on the users' step.

    Raises InputDataError when the two histories share fewer than
    MIN_COMMON_POINTS steps with users above zero.
    """
    user_values = regularize(users)
    step = pd.Timedelta(user_values.index[1] - user_values.index[0]) if len(user_values) > 1 else pd.Timedelta(hours=1)
    request_values = regularize(requests, step)
    joined = pd.concat([user_values.rename("users"), request_values.rename("requests")], axis=1).dropna()
    joined = joined[(joined["users"] > 0) & (joined["requests"] > 0)].tail(RECENT_POINTS)
    if len(joined) < MIN_COMMON_POINTS:
        raise InputDataError(
            f"the users and requests histories share {len(joined)} time steps with both above zero, but fitting "
            f"requests per user needs at least {MIN_COMMON_POINTS}; collect both series over the same period"
        )
    log_ratio = np.log(joined["requests"].to_numpy() / joined["users"].to_numpy())
    ratio = float(np.exp(np.median(log_ratio)))
    sigma = float(np.std(log_ratio, ddof=1))
    logger.info("fitted %.4g requests/s per user from %d common time steps (log spread %.3f)", ratio, len(joined), sigma)
    return RequestsPerUser(ratio=ratio, log_sigma=sigma, points=len(joined))


def requests_from_users(points: pd.DataFrame, fit: RequestsPerUser, levels: dict[str, float]) -> pd.DataFrame:
    """Return a user forecast's points converted to requests/s.

    ``levels`` maps each bound column pair's suffix to its probability, such
    as ``{"": 0.8, "_80": 0.8, "_95": 0.95}`` for ``lower``/``upper``,
    ``lower_80``/``upper_80`` and ``lower_95``/``upper_95``.
    """
    result = points.copy()
    yhat = points["yhat"].to_numpy(dtype=float)
    result["yhat"] = yhat * fit.ratio
    for suffix, level in levels.items():
        lower_column, upper_column = f"lower{suffix}", f"upper{suffix}"
        if lower_column not in points.columns:
            continue
        z = float(norm.ppf((1.0 + level) / 2.0))
        spread = z * fit.log_sigma
        for column, sign in ((lower_column, -1.0), (upper_column, 1.0)):
            bound = points[column].to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                user_spread = np.abs(np.log(np.where(yhat > 0, bound / yhat, 1.0)))
            user_spread = np.where(np.isfinite(user_spread), user_spread, 0.0)
            combined = np.sqrt(user_spread**2 + spread**2)
            result[column] = yhat * fit.ratio * np.exp(sign * combined)
    return result
