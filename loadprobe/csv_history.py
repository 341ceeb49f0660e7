"""Reading a demand history from a CSV file.

The file has a header line and one row per sample: a timestamp and a value.
Columns are found by name (see TIMESTAMP_COLUMNS and VALUE_COLUMNS, matched
without regard to case), else the first two columns are used. Timestamps are
ISO 8601. A timestamp with an offset is converted to UTC, and one without an
offset is taken as UTC. An empty value, or one of MISSING_VALUE_TEXTS, is a
missing sample and stays NaN.

Every check runs before the caller writes anything, so a bad file never
leaves a partial series in the store.
"""

from __future__ import annotations

import csv
import logging
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import InputDataError
from forecasting.peaks import check_history_length

__all__ = [
    "TIMESTAMP_COLUMNS",
    "VALUE_COLUMNS",
    "read_history_csv",
]

logger = logging.getLogger(__name__)

TIMESTAMP_COLUMNS = ("timestamp", "ts", "time", "ds", "date")
VALUE_COLUMNS = ("value", "y", "rps", "requests")
MISSING_VALUE_TEXTS = frozenset({"", "nan", "na", "n/a", "null", "none"})
TIMESTAMP_EXAMPLE = "2024-03-01T10:00:00Z"


def read_history_csv(path: str | PathLike[str]) -> pd.DataFrame:
    """Read and validate a history CSV and return columns ``ts`` (naive UTC) and ``value`` (float).

    Rows come back sorted by time. Raises InputDataError when the file is
    missing, unreadable or empty, when a timestamp is not ISO 8601, when a
    value is not a number, when a timestamp occurs twice, or when the history
    is too short to forecast. The message names the file and, for a bad row,
    its line number.
    """
    source = Path(path)
    header, rows, line_numbers = _read_rows(source)
    ts_column, value_column = _choose_columns(header, source)
    needed = max(ts_column, value_column) + 1
    for row, line in zip(rows, line_numbers):
        if len(row) < needed:
            raise InputDataError(
                f"{source} line {line}: found {len(row)} fields, but the header has {len(header)}; "
                f"give a timestamp and a value on every row"
            )

    ts_texts = pd.Series([row[ts_column].strip() for row in rows], dtype=str)
    value_texts = pd.Series([row[value_column].strip() for row in rows], dtype=str)
    ts = _parse_timestamps(ts_texts, line_numbers, source)
    values = _parse_values(value_texts, line_numbers, source)
    history = pd.DataFrame({"ts": ts, "value": values, "line": line_numbers})

    _reject_duplicates(history, source)
    if not history["ts"].is_monotonic_increasing:
        logger.info("%s: rows are not in time order; sorting them by timestamp", source)
        history = history.sort_values("ts", kind="stable")
    history = history.reset_index(drop=True)

    missing = int(history["value"].isna().sum())
    if missing:
        logger.info("%s: %d of %d values are empty and are kept as missing", source, missing, len(history))
    negative = int((history["value"] < 0).sum())
    if negative:
        logger.warning(
            "%s: %d values are negative, which a request rate cannot be; check the value column",
            source, negative,
        )

    check_history_length(history["ts"], history["value"], f"history {source}")
    return history[["ts", "value"]]


def _read_rows(source: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Return the header, the non-blank rows and each row's line number in the file."""
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            header: list[str] | None = None
            rows: list[list[str]] = []
            line_numbers: list[int] = []
            for row in reader:
                if not any(field.strip() for field in row):
                    continue
                if header is None:
                    header = [field.strip() for field in row]
                    continue
                rows.append(row)
                line_numbers.append(reader.line_num)
    except FileNotFoundError:
        raise InputDataError(f"history CSV {source} not found; check the path") from None
    except IsADirectoryError:
        raise InputDataError(f"history CSV {source} is a directory; give the path of a CSV file") from None
    except PermissionError as exc:
        raise InputDataError(f"cannot read history CSV {source}: {exc.strerror}; check its permissions") from exc
    except UnicodeDecodeError as exc:
        raise InputDataError(f"history CSV {source} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except csv.Error as exc:
        raise InputDataError(f"history CSV {source} is not valid CSV: {exc}") from exc

    if header is None:
        raise InputDataError(
            f"history CSV {source} is empty; expected a header line such as 'timestamp,value' and one row per sample"
        )
    if not rows:
        raise InputDataError(f"history CSV {source} has a header but no rows; add one row per sample")
    return header, rows, line_numbers


def _choose_columns(header: list[str], source: Path) -> tuple[int, int]:
    """Return the positions of the timestamp and value columns."""
    if len(header) < 2:
        raise InputDataError(
            f"history CSV {source} has only the column {header[0]!r}; it needs a timestamp column and a value column, "
            "such as 'timestamp,value'"
        )
    names = [name.lower() for name in header]
    ts_column = next((names.index(name) for name in TIMESTAMP_COLUMNS if name in names), None)
    value_column = next(
        (names.index(name) for name in VALUE_COLUMNS if name in names and names.index(name) != ts_column), None
    )
    if ts_column is None or value_column is None:
        ts_column = 0 if ts_column is None else ts_column
        if value_column is None:
            value_column = next(i for i in range(len(header)) if i != ts_column)
        logger.info(
            "%s: no standard column names; using %r as timestamps and %r as values",
            source, header[ts_column], header[value_column],
        )
    return ts_column, value_column


def _parse_timestamps(texts: pd.Series, line_numbers: list[int], source: Path) -> pd.Series:
    """Parse ISO 8601 texts into naive UTC timestamps, converting offsets and taking naive times as UTC."""
    parsed = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
    invalid = parsed.isna()
    if invalid.any():
        first = int(invalid.to_numpy().nonzero()[0][0])
        others = int(invalid.sum()) - 1
        more = f" ({others} more rows have invalid timestamps)" if others else ""
        raise InputDataError(
            f"{source} line {line_numbers[first]}: invalid timestamp {texts.iloc[first]!r}{more}; "
            f"use ISO 8601, such as {TIMESTAMP_EXAMPLE} or 2024-03-01 12:00:00+02:00"
        )
    return parsed.dt.tz_convert(None)


def _parse_values(texts: pd.Series, line_numbers: list[int], source: Path) -> pd.Series:
    """Parse values into floats, with NaN for the texts in MISSING_VALUE_TEXTS."""
    missing = texts.str.lower().isin(MISSING_VALUE_TEXTS)
    values = pd.to_numeric(texts.where(~missing, None), errors="coerce").astype(float)
    invalid = values.isna() & ~missing
    if invalid.any():
        first = int(invalid.to_numpy().nonzero()[0][0])
        others = int(invalid.sum()) - 1
        more = f" ({others} more rows have invalid values)" if others else ""
        raise InputDataError(
            f"{source} line {line_numbers[first]}: value {texts.iloc[first]!r} is not a number{more}; "
            "give a decimal number, or leave the field empty for a missing sample"
        )
    infinite = pd.Series(np.isinf(values.to_numpy()), index=values.index)
    if infinite.any():
        first = int(infinite.to_numpy().nonzero()[0][0])
        raise InputDataError(
            f"{source} line {line_numbers[first]}: value {texts.iloc[first]!r} is infinite; "
            "give a finite number, or leave the field empty for a missing sample"
        )
    return values


def _reject_duplicates(history: pd.DataFrame, source: Path) -> None:
    """Raise InputDataError when two rows have the same UTC timestamp."""
    repeated = history["ts"].duplicated(keep=False)
    if not repeated.any():
        return
    extra_rows = int(history["ts"].duplicated().sum())
    first_ts = history.loc[repeated, "ts"].min()
    lines = history.loc[history["ts"] == first_ts, "line"].tolist()
    raise InputDataError(
        f"{source} has {extra_rows} duplicate {'timestamp' if extra_rows == 1 else 'timestamps'}; the first, {first_ts.isoformat()} UTC, is on lines "
        f"{', '.join(map(str, lines))}; keep one row per timestamp, for example by taking the maximum of "
        "the duplicates before loading"
    )
