"""The exception family that every capplan error belongs to.

The CLI prints a CapplanError as one line and exits with code 2, with no
traceback, because these errors describe input the user can fix. Lower-level
errors (duckdb, aiohttp, statsmodels) are wrapped ``from exc`` so the cause
stays in the chain for debugging.
"""

from __future__ import annotations

__all__ = [
    "CapplanError",
    "ConfigError",
    "InputDataError",
    "TargetUnreachableError",
    "StoreError",
    "NotFoundError",
]


class CapplanError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(CapplanError):
    """An option or flag has an invalid value or conflicts with another one."""


class InputDataError(CapplanError):
    """A file or series given as input is malformed or too short to use."""


class TargetUnreachableError(CapplanError):
    """The HTTP target of a load test did not accept a connection."""


class StoreError(CapplanError):
    """The DuckDB store could not be opened, read or written."""


class NotFoundError(CapplanError):
    """A run, series, forecast or plan named by the user does not exist."""
