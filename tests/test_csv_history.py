"""Reading history CSVs and ``capplan collect --csv``."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capplan.cli import main
from capplan.errors import InputDataError
from capplan.store import Store
from capplan.store.series import read_samples
from loadprobe.csv_history import read_history_csv

START = pd.Timestamp("2024-03-01 00:00")
DAYS = 15


def hourly_lines(days: int = DAYS, start: pd.Timestamp = START, suffix: str = "Z") -> list[str]:
    """Return CSV data lines of an hourly series whose value is the hour index."""
    stamps = pd.date_range(start, periods=days * 24, freq="h")
    return [f"{ts.strftime('%Y-%m-%dT%H:%M:%S')}{suffix},{i}" for i, ts in enumerate(stamps)]


def write_csv(path: Path, lines: list[str], header: str = "timestamp,value") -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def collect(db: Path, csv_path: Path, name: str = "web", *extra: str) -> int:
    return main(["collect", "--csv", str(csv_path), "--name", name, "--db", str(db), *extra])


def test_read_offsets_converted_to_utc(tmp_path: Path) -> None:
    lines = hourly_lines(suffix="+02:00")
    history = read_history_csv(write_csv(tmp_path / "h.csv", lines))
    assert history["ts"].iloc[0] == pd.Timestamp("2024-02-29 22:00")
    assert history["ts"].dt.tz is None


def test_collect_offset_stored_as_utc(tmp_path: Path) -> None:
    lines = hourly_lines(start=pd.Timestamp("2024-03-01 10:00"), suffix="+02:00")
    db = tmp_path / "store.duckdb"
    assert collect(db, write_csv(tmp_path / "h.csv", lines), "web", "--json") == 0
    samples = read_samples(Store(db), "web")
    assert samples["ts"].iloc[0] == pd.Timestamp("2024-03-01 08:00")
    assert samples["value"].iloc[0] == 0.0


def test_read_naive_taken_as_utc(tmp_path: Path) -> None:
    history = read_history_csv(write_csv(tmp_path / "h.csv", hourly_lines(suffix="")))
    assert history["ts"].iloc[0] == START
    assert len(history) == DAYS * 24


def test_read_mixed_offsets_same_instant_duplicate(tmp_path: Path) -> None:
    lines = hourly_lines()
    lines.append("2024-03-01T02:00:00+02:00,5")  # the same instant as the first row
    with pytest.raises(InputDataError) as raised:
        read_history_csv(write_csv(tmp_path / "h.csv", lines))
    assert "1 duplicate timestamp;" in str(raised.value)


def test_read_unsorted_rows_sorted(tmp_path: Path) -> None:
    lines = hourly_lines()
    history = read_history_csv(write_csv(tmp_path / "h.csv", list(reversed(lines))))
    assert history["ts"].is_monotonic_increasing
    assert history["value"].iloc[0] == 0.0
    assert history["value"].iloc[-1] == float(DAYS * 24 - 1)


def test_read_empty_values_kept_missing(tmp_path: Path) -> None:
    lines = hourly_lines()
    lines[3] = lines[3].split(",")[0] + ","
    lines[4] = lines[4].split(",")[0] + ",NaN"
    history = read_history_csv(write_csv(tmp_path / "h.csv", lines))
    assert len(history) == DAYS * 24
    assert np.isnan(history["value"].iloc[3])
    assert np.isnan(history["value"].iloc[4])
    assert history["value"].isna().sum() == 2


def test_read_standard_column_names(tmp_path: Path) -> None:
    lines = [f"x,{line}" for line in hourly_lines()]
    history = read_history_csv(write_csv(tmp_path / "h.csv", lines, header="host,ds,y"))
    assert history["ts"].iloc[1] == START + pd.Timedelta(hours=1)
    assert history["value"].iloc[1] == 1.0


def test_read_unknown_names_use_first_columns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="loadprobe.csv_history")
    history = read_history_csv(write_csv(tmp_path / "h.csv", hourly_lines(), header="when,count"))
    assert history["value"].iloc[2] == 2.0
    assert "using 'when' as timestamps and 'count' as values" in caplog.text


def test_read_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    lines = hourly_lines()
    lines.insert(2, "")
    lines[5] = "yesterday,3"
    with pytest.raises(InputDataError) as raised:
        read_history_csv(write_csv(tmp_path / "h.csv", lines))
    assert "line 7:" in str(raised.value)


def test_read_bom_header(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("\ufefftimestamp,value\n" + "\n".join(hourly_lines()) + "\n", encoding="utf-8")
    assert len(read_history_csv(path)) == DAYS * 24


# Each bad file must fail with exit code 2, name the problem, and never create the store.
BAD_FILES = [
    ("empty", lambda: "", "is empty"),
    ("header only", lambda: "timestamp,value\n", "has a header but no rows"),
    ("one column", lambda: "timestamp\n2024-03-01T00:00:00Z\n", "needs a timestamp column and a value column"),
    (
        "bad timestamp",
        lambda: "timestamp,value\n" + "\n".join(hourly_lines()[:3] + ["01/03/2024 03:00,3"] + hourly_lines()[4:]),
        "line 5: invalid timestamp '01/03/2024 03:00'",
    ),
    (
        "bad value",
        lambda: "timestamp,value\n" + "\n".join(hourly_lines()[:7] + ["2024-03-01T07:00:00Z,lots"] + hourly_lines()[8:]),
        "line 9: value 'lots' is not a number",
    ),
    (
        "infinite value",
        lambda: "timestamp,value\n" + "\n".join(["2024-03-01T00:00:00Z,inf"] + hourly_lines()[1:]),
        "line 2: value 'inf' is infinite",
    ),
    (
        "short row",
        lambda: "timestamp,value\n" + "\n".join(hourly_lines()[:2] + ["2024-03-01T02:00:00Z"] + hourly_lines()[3:]),
        "line 4: found 1 fields",
    ),
    (
        "duplicates",
        lambda: "timestamp,value\n" + "\n".join(hourly_lines() + hourly_lines()[5:8]),
        "3 duplicate timestamps; the first, 2024-03-01T05:00:00 UTC, is on lines 7, 362",
    ),
    (
        "too short",
        lambda: "timestamp,value\n" + "\n".join(hourly_lines(days=3)),
        "covers 3 days with 72 values, but a forecast needs at least 14 days",
    ),
]


@pytest.mark.parametrize("case,content,expected", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_collect_bad_file_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, content, expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content(), encoding="utf-8")
    db = tmp_path / "store.duckdb"
    assert collect(db, path) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert str(path) in err
    assert not db.exists()


def test_collect_duplicates_message_gives_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "dup.csv", hourly_lines() + hourly_lines()[:1])
    assert collect(tmp_path / "store.duckdb", path) == 2
    assert "keep one row per timestamp" in capsys.readouterr().err


def test_collect_too_short_says_needed_points(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [f"2024-03-{day:02d},{day}" for day in range(1, 11)]
    assert collect(tmp_path / "store.duckdb", write_csv(tmp_path / "short.csv", lines)) == 2
    err = capsys.readouterr().err
    assert "covers 10 days with 10 values" in err
    assert "at least 14 values" in err


def test_collect_missing_file_names_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "history.csv"
    db = tmp_path / "store.duckdb"
    assert collect(db, missing) == 2
    err = capsys.readouterr().err
    assert f"history CSV {missing} not found" in err
    assert not db.exists()


def test_collect_without_source_asks_for_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    assert main(["collect", "--name", "web", "--db", str(db)]) == 2
    assert "give --csv FILE" in capsys.readouterr().err
    assert not db.exists()


def test_collect_without_name_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "h.csv", hourly_lines())
    assert main(["collect", "--csv", str(path), "--db", str(tmp_path / "s.duckdb")]) == 2
    assert "give --name NAME" in capsys.readouterr().err


def test_collect_bad_file_leaves_store_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    assert collect(db, write_csv(tmp_path / "good.csv", hourly_lines())) == 0
    before = file_digest(db)
    bad = hourly_lines(start=pd.Timestamp("2024-04-01"))
    bad[100] = "2024-04-05T04:00:00Z,twelve"
    assert collect(db, write_csv(tmp_path / "bad.csv", bad)) == 2
    assert file_digest(db) == before
    assert len(read_samples(Store(db), "web")) == DAYS * 24


def test_collect_twice_same_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    path = write_csv(tmp_path / "h.csv", hourly_lines())
    assert collect(db, path, "web", "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert collect(db, path, "web", "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert first["samples_total"] == DAYS * 24
    assert second["samples_total"] == DAYS * 24
    assert second["samples_written"] == DAYS * 24
    assert len(read_samples(Store(db), "web")) == DAYS * 24


def test_collect_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    lines = hourly_lines()
    lines[10] = lines[10].split(",")[0] + ","
    assert collect(db, write_csv(tmp_path / "h.csv", lines), "api", "--json", "--unit", "rps") == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    payload = json.loads(out)
    assert set(payload) == {
        "series", "samples_written", "samples_total", "min_value", "max_value", "first_ts", "last_ts",
    }
    assert payload["series"] == "api"
    assert payload["samples_written"] == DAYS * 24
    assert payload["min_value"] == 0.0
    assert payload["max_value"] == float(DAYS * 24 - 1)
    assert payload["first_ts"] == "2024-03-01T00:00:00"
    assert payload["last_ts"] == "2024-03-15T23:00:00"


def test_collect_table_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.duckdb"
    assert collect(db, write_csv(tmp_path / "h.csv", hourly_lines())) == 0
    out = capsys.readouterr().out
    assert "samples stored" in out
    assert "360" in out
