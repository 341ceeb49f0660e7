"""Demand forecasts of a stored series: daily peaks in, stored forecast out.

A forecast point at ``ts`` (00:00 UTC) is the predicted peak of that UTC day,
with the central prediction interval of probability ``level``. The history
ends at the last day with an observed peak, and the forecast covers every day
after it up to ``history_end + horizon``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from capplan.errors import ConfigError
from capplan.store import Store
from capplan.store.forecasts import insert_forecast
from capplan.store.series import read_samples
from forecasting.ets_model import EtsForecaster
from forecasting.peaks import DailyPeaks, check_history_length, daily_peaks, seasonal_period

__all__ = [
    "DEFAULT_LEVEL",
    "RESOLUTION",
    "ForecastResult",
    "describe_horizon",
    "horizon_days",
    "forecast_peaks",
    "forecast_series",
]

logger = logging.getLogger(__name__)

DEFAULT_LEVEL = 0.8               # probability of the central prediction interval
RESOLUTION = "daily_peak"         # one point is the peak of one UTC day
ONE_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class ForecastResult:
    """A forecast of daily peaks with its points (``ts``, ``yhat``, ``lower``, ``upper``) and metadata."""

    series_name: str
    model: str
    level: float
    resolution: str
    history_start: pd.Timestamp
    history_end: pd.Timestamp
    points: pd.DataFrame
    params: dict[str, Any]

    @property
    def horizon_end(self) -> pd.Timestamp:
        return pd.Timestamp(self.points["ts"].max())


def describe_horizon(horizon: pd.DateOffset) -> str:
    """Format a horizon offset for messages, such as ``12 months`` or ``90 days``."""
    amounts = dict(horizon.kwds)
    seconds = amounts.pop("seconds", 0)
    if seconds and seconds % 86400 == 0:
        amounts["days"] = amounts.get("days", 0) + seconds // 86400
    elif seconds and seconds % 3600 == 0:
        amounts["hours"] = amounts.get("hours", 0) + seconds // 3600
    elif seconds:
        amounts["seconds"] = seconds
    parts = []
    for unit in ("years", "months", "weeks", "days", "hours", "minutes", "seconds"):
        amount = amounts.get(unit)
        if amount:
            parts.append(f"{amount} {unit[:-1] if amount == 1 else unit}")
    return " ".join(parts) or str(horizon)


def horizon_days(history_end: pd.Timestamp, horizon: pd.DateOffset) -> int:
    """Return the number of whole days from the day after ``history_end`` to ``history_end + horizon``.

    Raises ConfigError when the horizon is shorter than one day.
    """
    end = (pd.Timestamp(history_end) + horizon).floor("D")
    days = int((end - pd.Timestamp(history_end).floor("D")) / ONE_DAY)
    if days < 1:
        raise ConfigError(
            f"horizon {describe_horizon(horizon)} is shorter than one day; a forecast of daily peaks "
            "needs a horizon of at least 1d, such as 90d or 12mo"
        )
    return days


def forecast_peaks(
    peaks: DailyPeaks,
    horizon: pd.DateOffset,
    level: float = DEFAULT_LEVEL,
    series_name: str = "",
) -> ForecastResult:
    """Fit the forecaster to daily peaks and predict every day up to the history end plus ``horizon``.

    Raises ConfigError for a level outside (0, 1) or a horizon under one day,
    and InputDataError when the peaks cover less than two weekly cycles.
    """
    _validate_level(level)
    values = peaks.values
    label = f"series {series_name!r}" if series_name else "the series"
    check_history_length(values.index, values, f"the daily peaks of {label}")
    history_start = pd.Timestamp(values.index[0])
    history_end = pd.Timestamp(values.index[-1])
    steps = horizon_days(history_end, horizon)

    history_length = len(values)
    if steps > history_length:
        logger.warning(
            "forecasting %d days ahead from %d days of history of %s; beyond the history length the trend "
            "is extrapolated from less data than the horizon, so the forecast may be far off",
            steps, history_length, label,
        )

    forecaster = EtsForecaster(seasonal_periods=seasonal_period(values))
    forecaster.fit(values)
    points = forecaster.predict(steps, level)

    params: dict[str, Any] = {
        "horizon": describe_horizon(horizon),
        "horizon_days": steps,
        "history_days": history_length,
        "history_points": int(values.notna().sum()),
        "missing_days": peaks.missing_days,
        "dropped_sparse_days": len(peaks.dropped_days),
        "sample_step_s": peaks.sample_step.total_seconds(),
        **forecaster.params,
    }
    return ForecastResult(
        series_name=series_name,
        model=forecaster.model_name,
        level=level,
        resolution=RESOLUTION,
        history_start=history_start,
        history_end=history_end,
        points=points,
        params=params,
    )


def forecast_series(
    store: Store,
    name: str,
    horizon: pd.DateOffset,
    level: float = DEFAULT_LEVEL,
) -> tuple[int, ForecastResult]:
    """Forecast the daily peaks of stored series ``name``, store the forecast and return its id and result.

    Raises NotFoundError for an unknown series and the errors of
    :func:`forecast_peaks`. Nothing is written unless the forecast succeeds.
    """
    _validate_level(level)
    samples = read_samples(store, name)
    check_history_length(samples["ts"], samples["value"], f"series {name!r}")
    peaks = daily_peaks(samples)
    result = forecast_peaks(peaks, horizon, level, series_name=name)

    created_at = pd.Timestamp.now(tz="UTC").tz_localize(None)
    forecast_id = insert_forecast(
        store,
        series_name=name,
        created_at=created_at.to_pydatetime(),
        model=result.model,
        resolution=result.resolution,
        level=level,
        history_start=result.history_start.to_pydatetime(),
        history_end=result.history_end.to_pydatetime(),
        points=result.points,
        params=result.params,
    )
    logger.info(
        "stored forecast %d of series %r: %s, %d days after %s",
        forecast_id, name, result.model, len(result.points), result.history_end.date(),
    )
    return forecast_id, result


def _validate_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ConfigError(
            f"forecast level {level!r} is outside 0..1 (exclusive); give the interval probability as a "
            "fraction such as 0.8"
        )
