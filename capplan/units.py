"""Parsing of the human units that the command line accepts.

Durations: ``500ms``, ``5s``, ``10m``, ``2h``, ``7d``, ``2w``, ``12mo``, ``1y``.
A bare number is seconds. Months and years are calendar units, so they are
returned as a ``pandas.DateOffset`` by :func:`parse_horizon` and rejected by
:func:`parse_duration_s`, which needs a fixed length.
"""

from __future__ import annotations

import re

import pandas as pd

from capplan.errors import ConfigError

__all__ = [
    "parse_duration_s",
    "parse_horizon",
    "parse_latency_ms",
    "parse_fraction",
    "parse_growth",
]

_SECONDS_PER_UNIT = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}

_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z%]*)\s*$", re.IGNORECASE)


def _split(text: str, option: str, example: str) -> tuple[float, str]:
    match = _QUANTITY.match(str(text))
    if match is None:
        raise ConfigError(f"{option}: invalid value {text!r}; expected a number with a unit, such as {example}")
    return float(match.group(1)), match.group(2).lower()


def parse_duration_s(text: str | float, option: str = "duration") -> float:
    """Parse a fixed-length duration such as ``5s`` or ``10m`` into seconds."""
    if isinstance(text, (int, float)):
        value, unit = float(text), "s"
    else:
        value, unit = _split(text, option, "5s, 10m or 2h")
    unit = unit or "s"
    if unit in ("mo", "y"):
        raise ConfigError(f"{option}: {text!r} is a calendar unit; give a fixed duration such as 30d")
    if unit not in _SECONDS_PER_UNIT:
        raise ConfigError(f"{option}: unknown unit {unit!r} in {text!r}; use ms, s, m, h, d or w")
    seconds = value * _SECONDS_PER_UNIT[unit]
    if seconds <= 0:
        raise ConfigError(f"{option}: {text!r} must be longer than zero")
    return seconds


def parse_horizon(text: str, option: str = "--horizon") -> pd.DateOffset:
    """Parse a forecast horizon (``90d``, ``12mo``, ``1y``) into a calendar offset."""
    value, unit = _split(text, option, "90d, 12mo or 1y")
    if value <= 0:
        raise ConfigError(f"{option}: {text!r} must be longer than zero")
    if unit == "mo":
        if value != int(value):
            raise ConfigError(f"{option}: months must be whole in {text!r}; use 6mo or 180d")
        return pd.DateOffset(months=int(value))
    if unit == "y":
        if value != int(value):
            raise ConfigError(f"{option}: years must be whole in {text!r}; use 18mo")
        return pd.DateOffset(years=int(value))
    if unit and unit not in _SECONDS_PER_UNIT:
        raise ConfigError(f"{option}: unknown unit {unit!r} in {text!r}; use s, m, h, d, w, mo or y, such as 90d or 12mo")
    seconds = parse_duration_s(text, option)
    return pd.DateOffset(seconds=int(round(seconds)))


def parse_latency_ms(text: str | float, option: str = "--slo-p95") -> float:
    """Parse a latency: a bare number is milliseconds, ``500ms`` and ``0.5s`` work too."""
    if isinstance(text, (int, float)):
        value, unit = float(text), "ms"
    else:
        value, unit = _split(text, option, "500 or 500ms")
    unit = unit or "ms"
    if unit not in ("ms", "s"):
        raise ConfigError(f"{option}: unknown unit {unit!r} in {text!r}; give milliseconds, such as 500 or 500ms")
    value_ms = value * (1000.0 if unit == "s" else 1.0)
    if value_ms <= 0:
        raise ConfigError(f"{option}: {text!r} must be greater than zero")
    return value_ms


def parse_fraction(text: str | float, option: str = "--max-error-rate") -> float:
    """Parse a fraction in [0, 1]: ``0.01`` and ``1%`` are the same value."""
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        value, unit = _split(text, option, "0.01 or 1%")
    if unit == "%":
        value /= 100.0
    elif unit:
        raise ConfigError(f"{option}: unknown unit {unit!r} in {text!r}; give a fraction such as 0.01 or a percentage such as 1%")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{option}: {text!r} is outside 0..1; give a fraction such as 0.01 or a percentage such as 1%")
    return value


def parse_growth(text: str, option: str = "--growth") -> float:
    """Parse a compound yearly growth such as ``20%/y`` or ``0.2`` into a fraction per year."""
    raw = str(text).strip().lower()
    for suffix in ("/y", "/yr", "/year"):
        if raw.endswith(suffix):
            raw = raw[: -len(suffix)]
            break
    negative = raw.startswith("-")
    body = raw[1:] if negative else raw
    value, unit = _split(body, option, "20%/y or 0.2")
    if unit == "%":
        value /= 100.0
    elif unit:
        raise ConfigError(f"{option}: unknown unit {unit!r} in {text!r}; give a yearly growth such as 20%/y")
    value = -value if negative else value
    if value <= -1.0:
        raise ConfigError(f"{option}: {text!r} would shrink demand below zero; give a value above -100%/y")
    return value
