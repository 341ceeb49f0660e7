"""Reading a measurements table: concurrency and throughput measured outside capplan.

The table can come from a published benchmark, another load tool or a
spreadsheet. It becomes step-like rows that :mod:`forecasting.capacity` fits
like the steps of a closed-model run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capplan.errors import InputDataError

__all__ = ["read_measurements_csv"]

_CONCURRENCY_NAMES = ("concurrency", "users", "load", "clients", "threads", "n")
_THROUGHPUT_NAMES = ("throughput_rps", "throughput", "rps", "x", "tput")
_LATENCY_MS_NAMES = ("mean_ms", "latency_ms", "mean_latency_ms", "response_time_ms")
_LATENCY_S_NAMES = ("latency_s", "mean_latency_s", "response_time_s")


def read_measurements_csv(path: str | Path) -> pd.DataFrame:
    """Read a measurements table into step-like rows (``users``, ``achieved_rps``, ``mean_ms``).

    The header needs a concurrency column (concurrency, users, load, clients,
    threads or n) and a throughput column (throughput_rps, throughput, rps, x
    or tput). A mean latency column (mean_ms, latency_ms or latency_s) is
    optional. Throughput may be in any unit; the output uses the same one.
    """
    file = Path(path)
    try:
        table = pd.read_csv(file)
    except FileNotFoundError:
        raise InputDataError(f"measurements file {file} not found; give the path of a CSV file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputDataError(f"measurements file {file} is not a readable CSV table: {exc}") from exc
    columns = {str(name).strip().lower(): name for name in table.columns}
    concurrency = _pick(columns, _CONCURRENCY_NAMES)
    throughput = _pick(columns, _THROUGHPUT_NAMES)
    if concurrency is None or throughput is None:
        raise InputDataError(
            f"measurements file {file} has the columns {', '.join(map(str, table.columns))}; it needs a "
            "concurrency column (concurrency or users) and a throughput column (throughput_rps or throughput)"
        )
    rows = pd.DataFrame({"users": table[concurrency], "achieved_rps": table[throughput]})
    latency_ms = _pick(columns, _LATENCY_MS_NAMES)
    latency_s = _pick(columns, _LATENCY_S_NAMES)
    if latency_ms is not None:
        rows["mean_ms"] = table[latency_ms]
    elif latency_s is not None:
        rows["mean_ms"] = pd.to_numeric(table[latency_s], errors="coerce") * 1000.0
    for column in rows.columns:
        values = pd.to_numeric(rows[column], errors="coerce")
        bad = rows.index[values.isna() | ~np.isfinite(values) | (values <= 0)]
        if len(bad):
            line = int(bad[0]) + 2  # the header is line 1
            raise InputDataError(
                f"measurements file {file}, line {line}: {column} {rows[column].iloc[bad[0]]!r} is not a number "
                "above 0; fix or remove that row"
            )
        rows[column] = values.astype(float)
    if rows.empty:
        raise InputDataError(f"measurements file {file} has no rows; add one row per measured concurrency level")
    return rows


def _pick(columns: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in columns:
            return columns[name]
    return None
