"""Demand forecasts of a stored series at three resolutions, chosen by backtests and stored.

- ``native``: the series at its own step (the median spacing of its samples),
  with gaps kept missing.
- ``daily_peak``: the peak of each UTC day (:func:`daily_peaks`), which plans
  size the fleet for. A point at ``ts`` (00:00 UTC) is the peak of that day.
- ``weekly_peak``: the peak of each week, a point at each Monday 00:00 UTC.

Each resolution gets its own model choice (:func:`select_and_forecast`),
with the 80 % and 95 % intervals and the central interval of probability
``level`` as ``lower`` and ``upper``. The history ends at the last observed
value, and the forecast covers every step after it up to
``history_end + horizon``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from capplan.errors import ConfigError, InputDataError
from capplan.store import Store
from capplan.store.forecasts import insert_forecast
from capplan.store.series import read_samples
from forecasting.backtest import DEFAULT_FOLDS, ProgressCallback
from forecasting.models import DEFAULT_CANDIDATES, LEVELS
from forecasting.peaks import DailyPeaks, check_history_length, daily_peaks, format_span, regularize, weekly_peaks
from forecasting.scenarios import Scenario, apply_scenarios
from forecasting.seasonality import usable_seasons
from forecasting.selection import Selection, select_and_forecast

__all__ = [
    "DEFAULT_LEVEL",
    "RESOLUTION",
    "RESOLUTIONS",
    "MAX_NATIVE_POINTS",
    "ForecastOptions",
    "ForecastResult",
    "describe_horizon",
    "horizon_days",
    "forecast_values",
    "forecast_peaks",
    "forecast_samples",
    "forecast_series",
    "forecast_and_store",
    "store_forecast",
]

logger = logging.getLogger(__name__)

DEFAULT_LEVEL = 0.8               # probability of the central prediction interval
RESOLUTION = "daily_peak"         # the resolution plans read
NATIVE, DAILY_PEAK, WEEKLY_PEAK = "native", "daily_peak", "weekly_peak"
RESOLUTIONS: tuple[str, ...] = (NATIVE, DAILY_PEAK, WEEKLY_PEAK)
MAX_NATIVE_POINTS = 200_000       # forecast points at the native step; 12 months of 5-minute data is 105,120
MIN_WEEKLY_PEAKS = 8              # observed weeks a weekly-peak forecast needs
ONE_DAY = pd.Timedelta(days=1)
ONE_WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True)
class ForecastOptions:
    """Model-choice settings: candidate names, backtest folds, the daily peak statistic, Prophet's cap and floor."""

    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    folds: int = DEFAULT_FOLDS
    peak_quantile: float | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    progress: ProgressCallback | None = None


@dataclass(frozen=True)
class ForecastResult:
    """A forecast with its points and metadata.

    ``points`` has ``ts``, ``yhat``, ``lower`` and ``upper`` (the interval of
    probability ``level``) and ``lower_80`` .. ``upper_95``. ``selection``
    contains the backtest evidence, and it is None only for results built by hand.
    """

    series_name: str
    model: str
    level: float
    resolution: str
    history_start: pd.Timestamp
    history_end: pd.Timestamp
    points: pd.DataFrame
    params: dict[str, Any]
    step: pd.Timedelta = ONE_DAY
    selection: Selection | None = None
    peak_statistic: str | None = None

    @property
    def horizon_end(self) -> pd.Timestamp:
        return pd.Timestamp(self.points["ts"].max())

    @property
    def mase(self) -> float | None:
        return None if self.selection is None else self.selection.mase

    def coverage(self, level: float) -> float | None:
        """Return the backtest coverage of the stored interval at ``level``, or None when unmeasured."""
        if self.selection is None:
            return None
        value = self.selection.calibration.coverage.get(level)
        return None if value is None or np.isnan(value) else float(value)

    def selection_columns(self) -> dict[str, Any]:
        """Return the values of the store's selection columns for this forecast."""
        selection = self.selection
        return {
            "step_s": self.step.total_seconds(),
            "peak_statistic": self.peak_statistic,
            "backtest_mase": None if selection is None or selection.mase is None else float(selection.mase),
            "backtest_folds": None if selection is None else selection.folds,
            "backtest_horizon_steps": None if selection is None else selection.backtest_horizon,
            "coverage_80": self.coverage(0.8),
            "coverage_95": self.coverage(0.95),
            "coverage_level": self.coverage(self.level),
            "interval_method": None if selection is None else selection.calibration.method,
            "selection_reason": None if selection is None else selection.reason,
        }

    def with_scenarios(self, scenarios: list[Scenario]) -> pd.DataFrame:
        """Return the points with ``scenarios`` applied."""
        return apply_scenarios(self.points, scenarios, self.step)


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


def horizon_steps(history_end: pd.Timestamp, horizon: pd.DateOffset, step: pd.Timedelta) -> int:
    """Return the number of whole steps from ``history_end`` to ``history_end + horizon``."""
    return int(((pd.Timestamp(history_end) + horizon) - pd.Timestamp(history_end)) // step)


def forecast_values(
    values: pd.Series,
    resolution: str,
    horizon: pd.DateOffset,
    level: float = DEFAULT_LEVEL,
    series_name: str = "",
    options: ForecastOptions | None = None,
    peak_statistic: str | None = None,
) -> ForecastResult:
    """Choose a model for a regular series (NaN for gaps) and forecast it up to its last value plus ``horizon``.

    Raises ConfigError for a horizon shorter than one step.
    """
    _validate_level(level)
    options = options or ForecastOptions()
    index = pd.DatetimeIndex(values.index)
    step = pd.Timedelta(index[1] - index[0]) if len(index) > 1 else ONE_DAY
    history_start, history_end = pd.Timestamp(index[0]), pd.Timestamp(index[-1])
    steps = horizon_days(history_end, horizon) if resolution == DAILY_PEAK else horizon_steps(history_end, horizon, step)
    label = _label(resolution, series_name)
    if steps < 1:
        raise ConfigError(
            f"horizon {describe_horizon(horizon)} is shorter than one step ({format_span(step)}) of the {label}; "
            "give a longer horizon"
        )
    history_span = history_end - history_start + step
    if steps > len(values):
        logger.warning(
            "forecasting %s ahead from %s of history of the %s; a history this long supports forecasts of about "
            "%s, so beyond that the trend is extrapolated and the forecast may be far off",
            format_span(steps * step), format_span(history_span), label, format_span(history_span),
        )

    seasons = usable_seasons(step, len(values), label)
    levels = tuple(sorted(set(LEVELS) | {level}))
    selection = select_and_forecast(
        values, seasons, steps, options.candidates, levels, options.folds,
        options.model_options, options.progress, context=label,
    )
    ts = pd.date_range(history_end + step, periods=steps, freq=step)
    prediction = selection.prediction
    points = pd.DataFrame({"ts": ts, "yhat": prediction.mean})
    points["lower"], points["upper"] = prediction.bounds[level]
    for known in LEVELS:
        suffix = round(known * 100)
        points[f"lower_{suffix}"], points[f"upper_{suffix}"] = prediction.bounds[known]

    params: dict[str, Any] = {
        "horizon": describe_horizon(horizon),
        "horizon_steps": steps,
        "history_points": int(values.notna().sum()),
        "history_steps": len(values),
        "missing_steps": int(values.isna().sum()),
        "seasons": list(seasons),
        "winner": selection.winner,
        "backtest_horizon_steps": selection.backtest_horizon,
        "conformal_factors": {str(k): v for k, v in selection.calibration.factors.items()},
        "raw_coverage": {str(k): v for k, v in selection.calibration.raw_coverage.items()},
        "coverage_in_sample": selection.calibration.in_sample,
        "calibration_folds": selection.calibration.folds,
        "calibration_quantile_levels": {str(k): v for k, v in selection.calibration.quantile_levels.items()},
        "interval_notes": {str(k): v for k, v in selection.calibration.notes.items()},
        "model_params": selection.params,
    }
    if resolution == DAILY_PEAK:
        params["history_days"] = len(values)
    return ForecastResult(
        series_name=series_name, model=selection.model, level=level, resolution=resolution,
        history_start=history_start, history_end=history_end, points=points, params=params,
        step=step, selection=selection, peak_statistic=peak_statistic,
    )


def forecast_peaks(
    peaks: DailyPeaks,
    horizon: pd.DateOffset,
    level: float = DEFAULT_LEVEL,
    series_name: str = "",
    options: ForecastOptions | None = None,
) -> ForecastResult:
    """Forecast daily peaks up to the last observed day plus ``horizon``.

    Raises ConfigError for a level outside (0, 1) or a horizon under one day,
    and InputDataError when the peaks cover less than two weekly cycles.
    """
    _validate_level(level)
    label = f"series {series_name!r}" if series_name else "the series"
    check_history_length(peaks.values.index, peaks.values, f"the daily peaks of {label}")
    result = forecast_values(peaks.values, DAILY_PEAK, horizon, level, series_name, options, _peak_statistic(options))
    extra = {
        "missing_days": peaks.missing_days,
        "dropped_sparse_days": len(peaks.dropped_days),
        "sample_step_s": peaks.sample_step.total_seconds(),
    }
    return replace(result, params={**result.params, **extra})


def forecast_samples(
    samples: pd.DataFrame,
    horizon: pd.DateOffset,
    level: float = DEFAULT_LEVEL,
    series_name: str = "",
    resolutions: tuple[str, ...] = RESOLUTIONS,
    options: ForecastOptions | None = None,
) -> list[ForecastResult]:
    """Forecast samples (``ts`` naive UTC, ``value``) at each of ``resolutions``.

    When several resolutions are asked for, one that the history or the
    horizon cannot support (daily peaks of a 5-day history, weekly peaks of a
    3-day horizon) is skipped with a WARNING; asked for alone, it raises.
    """
    _validate_level(level)
    unknown = [r for r in resolutions if r not in RESOLUTIONS]
    if unknown:
        raise ConfigError(f"unknown resolution {unknown[0]!r}; choose from {', '.join(RESOLUTIONS)}")
    options = options or ForecastOptions()
    results: list[ForecastResult] = []
    peaks: DailyPeaks | None = None
    for resolution in resolutions:
        try:
            if resolution == NATIVE:
                results.append(_forecast_native(samples, horizon, level, series_name, options))
                continue
            if peaks is None:
                check_history_length(samples["ts"], samples["value"], f"series {series_name!r}")
                peaks = daily_peaks(samples, options.peak_quantile)
            if resolution == DAILY_PEAK:
                results.append(forecast_peaks(peaks, horizon, level, series_name, options))
            else:
                results.append(_forecast_weekly(peaks, horizon, level, series_name, options))
        except (ConfigError, InputDataError) as exc:
            if len(resolutions) == 1:
                raise
            logger.warning("%s forecast skipped: %s", resolution, exc)
    if not results:
        raise InputDataError(f"no resolution of series {series_name!r} could be forecast; see the warnings above")
    return results


def store_forecast(store: Store, result: ForecastResult, scenarios: list[Scenario] | tuple[Scenario, ...] = ()) -> int:
    """Store a forecast with its backtest scores and scenarios, and return its id."""
    selection = result.selection
    scores = None if selection is None else selection.scores
    return insert_forecast(
        store,
        series_name=result.series_name,
        created_at=pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(),
        model=result.model,
        resolution=result.resolution,
        level=result.level,
        history_start=result.history_start.to_pydatetime(),
        history_end=result.history_end.to_pydatetime(),
        points=result.points,
        params=result.params,
        selection=result.selection_columns(),
        scores=scores,
        scenarios=[_resolved_row(scenario, result) for scenario in scenarios],
    )


def forecast_series(
    store: Store,
    name: str,
    horizon: pd.DateOffset,
    level: float = DEFAULT_LEVEL,
    options: ForecastOptions | None = None,
) -> tuple[int, ForecastResult]:
    """Forecast the daily peaks of stored series ``name``, store the forecast and return its id and result.

    Raises NotFoundError for an unknown series and the errors of
    :func:`forecast_peaks`. Nothing is written unless the forecast succeeds.
    """
    (forecast_id, result), = forecast_and_store(store, name, horizon, level, (DAILY_PEAK,), options)
    return forecast_id, result


def forecast_and_store(
    store: Store,
    name: str,
    horizon: pd.DateOffset,
    level: float = DEFAULT_LEVEL,
    resolutions: tuple[str, ...] = RESOLUTIONS,
    options: ForecastOptions | None = None,
    scenarios: list[Scenario] | tuple[Scenario, ...] = (),
) -> list[tuple[int, ForecastResult]]:
    """Forecast stored series ``name`` at each resolution and store every forecast, with ``scenarios`` attached.

    Every forecast is computed before the first write, so an error leaves
    the store unchanged.
    """
    _validate_level(level)
    samples = read_samples(store, name)
    results = forecast_samples(samples, horizon, level, name, resolutions, options)
    stored = []
    for result in results:
        forecast_id = store_forecast(store, result, scenarios)
        logger.info(
            "stored forecast %d of series %r: %s %s, %d points after %s",
            forecast_id, name, result.resolution, result.model, len(result.points), result.history_end,
        )
        stored.append((forecast_id, result))
    return stored


def _forecast_native(
    samples: pd.DataFrame, horizon: pd.DateOffset, level: float, series_name: str, options: ForecastOptions
) -> ForecastResult:
    values = regularize(samples)
    observed = values.dropna()
    if observed.empty:
        raise InputDataError(f"series {series_name!r} has no observed values; every sample is missing")
    values = values.loc[observed.index[0] : observed.index[-1]]
    values = values.asfreq(pd.Timedelta(values.index[1] - values.index[0])) if len(values) > 1 else values
    step = pd.Timedelta(values.index[1] - values.index[0]) if len(values) > 1 else ONE_DAY
    steps = horizon_steps(values.index[-1], horizon, step)
    if steps > MAX_NATIVE_POINTS:
        raise ConfigError(
            f"a native forecast of {describe_horizon(horizon)} at a step of {format_span(step)} would have {steps:,} "
            f"points, more than {MAX_NATIVE_POINTS:,}; give a shorter horizon or forecast the daily peaks only "
            "(--resolution daily_peak)"
        )
    return forecast_values(values, NATIVE, horizon, level, series_name, options)


def _forecast_weekly(
    peaks: DailyPeaks, horizon: pd.DateOffset, level: float, series_name: str, options: ForecastOptions
) -> ForecastResult:
    weekly = weekly_peaks(peaks.values)
    observed = int(weekly.notna().sum())
    if observed < MIN_WEEKLY_PEAKS:
        raise InputDataError(
            f"weekly peaks of series {series_name!r} need at least {MIN_WEEKLY_PEAKS} observed weeks, but the history "
            f"has {observed}; collect a longer history"
        )
    if horizon_steps(weekly.index[-1], horizon, ONE_WEEK) < 1:
        raise ConfigError(f"horizon {describe_horizon(horizon)} is shorter than one week; weekly peaks need at least 7d")
    return forecast_values(weekly, WEEKLY_PEAK, horizon, level, series_name, options, _peak_statistic(options))


def _resolved_row(scenario: Scenario, result: ForecastResult) -> dict[str, Any]:
    """Return the scenario's row, with a growth start made explicit as the forecast's first point."""
    row = scenario.to_row()
    if scenario.kind == "growth" and row["start_ts"] is None:
        row["start_ts"] = pd.Timestamp(result.points["ts"].iloc[0])
    return row


def _peak_statistic(options: ForecastOptions | None) -> str:
    quantile = None if options is None else options.peak_quantile
    return "max" if quantile is None else f"q{quantile:g}"


def _label(resolution: str, series_name: str) -> str:
    name = f"series {series_name!r}" if series_name else "series"
    if resolution == DAILY_PEAK:
        return f"daily peaks of {name}"
    if resolution == WEEKLY_PEAK:
        return f"weekly peaks of {name}"
    return name


def _validate_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ConfigError(
            f"forecast level {level!r} is outside 0..1 (exclusive); give the interval probability as a "
            "fraction such as 0.8"
        )
