"""Parsing of durations, latencies, fractions and growth rates."""

from __future__ import annotations

import pandas as pd
import pytest

from capplan.errors import ConfigError
from capplan.units import parse_duration_s, parse_fraction, parse_growth, parse_horizon, parse_latency_ms


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("10m", 600.0), ("2h", 7200.0), ("7d", 604800.0), ("500ms", 0.5), ("30", 30.0), ("1.5s", 1.5)],
)
def test_duration_units(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["12mo", "1y", "soon", "0s", "5 parsecs", "-3s"])
def test_duration_invalid(text):
    with pytest.raises(ConfigError) as excinfo:
        parse_duration_s(text, "--step-duration")
    assert "--step-duration" in str(excinfo.value)


def test_horizon_months_are_calendar():
    start = pd.Timestamp("2026-01-31")
    assert start + parse_horizon("12mo") == pd.Timestamp("2027-01-31")
    assert start + parse_horizon("1mo") == pd.Timestamp("2026-02-28")
    assert start + parse_horizon("90d") == pd.Timestamp("2026-05-01")
    assert start + parse_horizon("1y") == pd.Timestamp("2027-01-31")


def test_horizon_invalid():
    with pytest.raises(ConfigError, match="--horizon"):
        parse_horizon("1.5mo")
    with pytest.raises(ConfigError, match="--horizon"):
        parse_horizon("lots")


@pytest.mark.parametrize(("text", "ms"), [("500", 500.0), ("500ms", 500.0), ("0.5s", 500.0), (250, 250.0)])
def test_latency_units(text, ms):
    assert parse_latency_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["0", "fast", "5m"])
def test_latency_invalid(text):
    with pytest.raises(ConfigError, match="--slo-p95"):
        parse_latency_ms(text)


@pytest.mark.parametrize(("text", "fraction"), [("0.01", 0.01), ("1%", 0.01), ("0", 0.0), ("100%", 1.0)])
def test_fraction_forms(text, fraction):
    assert parse_fraction(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["2", "150%", "1 in 100"])
def test_fraction_invalid(text):
    with pytest.raises(ConfigError, match="--max-error-rate"):
        parse_fraction(text)


@pytest.mark.parametrize(("text", "growth"), [("20%/y", 0.2), ("0.2", 0.2), ("-10%/year", -0.1), ("0%", 0.0)])
def test_growth_forms(text, growth):
    assert parse_growth(text) == pytest.approx(growth)


def test_growth_below_minus_100_percent():
    with pytest.raises(ConfigError, match="-150%"):
        parse_growth("-150%/y")


def test_horizon_unknown_unit_lists_calendar_units() -> None:
    with pytest.raises(ConfigError) as error:
        parse_horizon("90days")

    assert "unknown unit 'days'" in str(error.value)
    assert "mo or y" in str(error.value)
