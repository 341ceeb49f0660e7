"""Demand models behind one interface (see :mod:`forecasting.models.base`).

Each model lives in its own module. :func:`make_forecaster` builds one by
name, which is how backtests, the command line and the app refer to them.
Prophet is not among the default candidates: backtesting it costs one
Prophet fit per fold, several times the cost of the whole selection
without it (docs/benchmarks.md), and ask for it with ``--models``.
"""

from __future__ import annotations

from typing import Any

from capplan.errors import ConfigError
from forecasting.models.arima import Sarima
from forecasting.models.base import LEVELS, Forecaster, Prediction
from forecasting.models.ensemble import MedianEnsemble
from forecasting.models.ets import DampedEts
from forecasting.models.multi_seasonal import MultiSeasonal
from forecasting.models.seasonal_naive import SeasonalNaive
from forecasting.models.theta import Theta

__all__ = [
    "LEVELS",
    "MODEL_NAMES",
    "DEFAULT_CANDIDATES",
    "Forecaster",
    "Prediction",
    "MedianEnsemble",
    "make_forecaster",
]

MODEL_NAMES: tuple[str, ...] = ("seasonal_naive", "ets_damped", "sarima", "multi_seasonal", "theta", "prophet")
DEFAULT_CANDIDATES: tuple[str, ...] = ("seasonal_naive", "ets_damped", "sarima", "multi_seasonal", "theta")


def make_forecaster(name: str, seasons: tuple[int, ...] = (), **options: Any) -> Forecaster:
    """Return an unfitted forecaster of model ``name`` with ``seasons`` (steps, shortest first).

    ``options`` go to Prophet only: ``cap`` and ``floor`` for logistic growth.
    Raises ConfigError for an unknown name.
    """
    if name == "seasonal_naive":
        return SeasonalNaive(seasons)
    if name == "ets_damped":
        return DampedEts(seasons)
    if name == "sarima":
        return Sarima(seasons)
    if name == "multi_seasonal":
        return MultiSeasonal(seasons)
    if name == "theta":
        return Theta(seasons)
    if name == "prophet":
        from forecasting.models.prophet_model import ProphetForecaster

        return ProphetForecaster(seasons, cap=options.get("cap"), floor=options.get("floor"))
    raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
