"""The synthetic demo history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capplan.demo_history import (
    DEFAULT_PEAK_RPS,
    HOLIDAY_FACTOR,
    make_demo_history,
    write_history_csv,
)
from loadprobe.csv_history import read_history_csv

END = pd.Timestamp("2026-06-30 23:00")


def test_demo_default_length_and_end() -> None:
    before = pd.Timestamp.now(tz="UTC").floor("h").tz_convert(None) - pd.Timedelta(days=1)
    history = make_demo_history()
    after = pd.Timestamp.now(tz="UTC").floor("h").tz_convert(None) - pd.Timedelta(days=1)
    assert len(history) == 365 * 24
    assert history["ts"].iloc[-1] in (before, after)
    assert (history["ts"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert history["value"].notna().all()


def test_demo_same_seed_same_values() -> None:
    first = make_demo_history(days=30, end=END, seed=5)
    second = make_demo_history(days=30, end=END, seed=5)
    other = make_demo_history(days=30, end=END, seed=6)
    assert first["value"].equals(second["value"])
    assert not first["value"].equals(other["value"])


def test_demo_peak_level_at_end() -> None:
    history = make_demo_history(days=28, end=END, noise_sigma=0.0)
    last_week = history[history["ts"] > END - pd.Timedelta(days=7)]
    assert last_week["value"].max() == pytest.approx(DEFAULT_PEAK_RPS, rel=0.01)
    assert last_week.loc[last_week["value"].idxmax(), "ts"].hour == 15


def test_demo_weekend_lower() -> None:
    history = make_demo_history(days=28, end=END, noise_sigma=0.0)
    weekday = history["ts"].dt.day_of_week
    assert history.loc[weekday >= 5, "value"].mean() < 0.8 * history.loc[weekday < 5, "value"].mean()


def test_demo_yearly_growth() -> None:
    history = make_demo_history(days=365, end=END, noise_sigma=0.0, holiday=None)
    first_week = history["value"].iloc[: 7 * 24].mean()
    last_week = history["value"].iloc[-7 * 24 :].mean()
    assert last_week / first_week == pytest.approx(1.30, rel=0.01)


def test_demo_holiday_dip() -> None:
    history = make_demo_history(days=365, end=END, noise_sigma=0.0).set_index("ts")["value"]
    plain = make_demo_history(days=365, end=END, noise_sigma=0.0, holiday=None).set_index("ts")["value"]
    christmas = history.loc["2025-12-25"]
    assert (christmas / plain.loc["2025-12-25"]).to_numpy() == pytest.approx(HOLIDAY_FACTOR)
    assert history.loc["2025-12-24"].equals(plain.loc["2025-12-24"])


def test_demo_noise_multiplicative() -> None:
    noisy = make_demo_history(days=60, end=END)["value"].to_numpy()
    clean = make_demo_history(days=60, end=END, noise_sigma=0.0)["value"].to_numpy()
    log_ratio = np.log(noisy / clean)
    assert 0.03 < log_ratio.std() < 0.07
    assert abs(log_ratio.mean()) < 0.01


def test_demo_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="peak_rps"):
        make_demo_history(peak_rps=0)
    with pytest.raises(ValueError, match="days"):
        make_demo_history(days=0)


def test_demo_csv_round_trip(tmp_path: Path) -> None:
    history = make_demo_history(days=20, end=END)
    path = write_history_csv(history, tmp_path / "demo" / "history.csv")
    loaded = read_history_csv(path)
    assert loaded["ts"].equals(history["ts"])
    assert np.allclose(loaded["value"], history["value"], atol=0.0005)
