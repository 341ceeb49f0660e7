"""Demand forecasting and capacity plans.

- :mod:`forecasting.peaks`: daily and weekly peaks of a metric series, the demand a plan sizes for.
- :mod:`forecasting.models`: demand models behind one forecaster interface.
- :mod:`forecasting.backtest`, :mod:`forecasting.selection`, :mod:`forecasting.conformal`:
  rolling-origin backtests, model choice by MASE, and interval recalibration.
- :mod:`forecasting.forecast`: forecasts of stored series at three resolutions, written to the store.
- :mod:`forecasting.scenarios`: growth, step and event overlays on a forecast.
- :mod:`forecasting.users`, :mod:`forecasting.latency_forecast`: requests from users, latency from demand.
- :mod:`forecasting.plan`: instances per month and the runway of the current fleet.

The submodules are not imported here, so importing one of them does not load
statsmodels unless it needs it.
"""

__all__: list[str] = []
