"""Demand forecasting and capacity plans.

- :mod:`forecasting.peaks`: daily peaks of a metric series, the demand a plan sizes for.
- :mod:`forecasting.ets_model`: the ETS forecaster with a weekly season.
- :mod:`forecasting.forecast`: forecasts of stored series, written to the store.
- :mod:`forecasting.plan`: instances per month and the runway of the current fleet.

The submodules are not imported here, so importing one of them does not load
statsmodels unless it needs it.
"""

__all__: list[str] = []
