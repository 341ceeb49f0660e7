"""Turning a range-query result (a Prometheus matrix) into rows for the store.

Each Prometheus series is stored as its own capplan series, named after the
collection's NAME plus its labels in PromQL selector syntax, sorted by label
name: ``api_rps{code="500",instance="a"}``. A series without labels (the
result of ``sum(...)``) is stored as plain NAME, so ``capplan forecast NAME``
works on aggregated queries directly. The ``__name__`` label stays in the
stored labels but not in the series name, because rate() and most functions
drop it anyway.

Values arrive as strings. ``"NaN"`` becomes a stored NaN, which differs from
a missing sample (no row at all); ``"+Inf"`` and ``"-Inf"`` become
infinities.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa

from capplan.errors import InputDataError

__all__ = ["SeriesInfo", "MatrixChunk", "series_key", "matrix_to_chunk", "escape_label_value"]

_first = itemgetter(0)
_second = itemgetter(1)


@dataclass(frozen=True)
class SeriesInfo:
    """A stored series: its capplan name and all of its Prometheus labels."""

    name: str
    labels: dict[str, str]

    @property
    def labels_json(self) -> str:
        return json.dumps(self.labels, sort_keys=True)


@dataclass(frozen=True)
class MatrixChunk:
    """Rows of one range query, ready to upsert.

    ``table`` has the columns of the ``samples`` table: ``series_name``
    (dictionary-encoded), ``ts`` (timestamp in microseconds, naive UTC) and
    ``value`` (float64, NaN kept).
    """

    table: pa.Table
    series: list[SeriesInfo]

    @property
    def samples(self) -> int:
        return self.table.num_rows


def escape_label_value(value: str) -> str:
    """Escape a label value the way PromQL string literals are written."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """Return the capplan series name for a Prometheus series: ``NAME{label="value",...}``."""
    pairs = [(key, value) for key, value in sorted(labels.items()) if key != "__name__"]
    if not pairs:
        return name
    inner = ",".join(f'{key}="{escape_label_value(value)}"' for key, value in pairs)
    return f"{name}{{{inner}}}"


def matrix_to_chunk(result: Sequence[Mapping[str, Any]], name: str) -> MatrixChunk:
    """Convert ``data.result`` of a range query into rows stored under ``name``.

    Raises InputDataError when two series would get the same capplan name,
    which happens when they differ only in ``__name__``.
    """
    series: list[SeriesInfo] = []
    lengths: list[int] = []
    seen: dict[str, dict[str, str]] = {}
    for item in result:
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        key = series_key(name, labels)
        if key in seen:
            raise InputDataError(
                f"the query returns two series that differ only in their metric name ({seen[key].get('__name__')!r} "
                f"and {labels.get('__name__')!r}), so both would be stored as {key!r}; collect each metric "
                "under its own --name, or aggregate them in the query"
            )
        seen[key] = labels
        series.append(SeriesInfo(key, labels))
        lengths.append(len(item["values"]))

    total = sum(lengths)
    # One flat list of [timestamp, "value"] pairs, then one C-level pass per
    # column. Other layouts measured slower: zip(*pairs) and a conversion per
    # series both took longer than the whole of this function.
    pairs = [pair for item in result for pair in item["values"]]
    epoch_s = np.fromiter(map(_first, pairs), dtype=np.float64, count=total)
    values = _parse_values(list(map(_second, pairs)))
    ts_us = np.rint(epoch_s * 1_000_000.0).astype(np.int64)
    _check_increasing(ts_us, lengths, series)

    indices = np.repeat(np.arange(len(series), dtype=np.int32), lengths)
    names = pa.DictionaryArray.from_arrays(pa.array(indices, type=pa.int32()), pa.array([s.name for s in series], type=pa.string()))
    table = pa.table(
        {
            "series_name": names,
            "ts": pa.array(ts_us, type=pa.int64()).cast(pa.timestamp("us")),
            "value": values,
        }
    )
    return MatrixChunk(table, series)


def _parse_values(texts: list[Any]) -> pa.Array:
    """Parse the sample values, decimal strings such as ``"12.5"``, ``"NaN"`` or ``"+Inf"``, into float64.

    Arrow's string-to-double cast, including building the list it reads,
    took 90 ms for the 1M values of bench/prometheus_ingest.py's response
    where ``float()`` per value took 195 ms (pyarrow 26, Python 3.11). It
    gives the same doubles, which tests/test_prometheus_client.py checks bit
    for bit on 17-digit values, NaN, +Inf, -Inf, -0 and subnormals. Values
    it rejects, such as numbers sent as JSON numbers rather than strings or
    text with spaces around it, go through ``float()``, as all values did
    before.
    """
    try:
        parsed = pa.array(texts, type=pa.string()).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        parsed = None
    if parsed is not None and parsed.null_count == 0:
        return parsed
    try:
        return pa.array(np.fromiter(map(float, texts), dtype=np.float64, count=len(texts)))
    except (TypeError, ValueError):
        bad = next(text for text in texts if not _is_float(text))
        raise InputDataError(
            f"the query returned the sample value {bad!r}, which is not a number; Prometheus sends values as "
            "decimal strings such as \"12.5\", so check that the URL is a Prometheus-compatible API"
        ) from None


def _is_float(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _check_increasing(ts_us: np.ndarray, lengths: list[int], series: list[SeriesInfo]) -> None:
    """Raise InputDataError unless the timestamps of each series strictly increase.

    The ``samples`` table has no primary key, so this check is what keeps
    a chunk from inserting two rows for one (series, timestamp). Prometheus
    returns each series' points in time order without repeats.
    """
    if len(ts_us) < 2:
        return
    increasing = np.diff(ts_us) > 0
    # A step from the last point of one series to the first of the next may go back in time.
    series_starts = np.cumsum(lengths)[:-1]
    inside = (series_starts > 0) & (series_starts < len(ts_us))
    increasing[series_starts[inside] - 1] = True
    if increasing.all():
        return
    position = int(np.argmin(increasing)) + 1
    owner = series[int(np.searchsorted(np.cumsum(lengths), position, side="right"))]
    moment = np.datetime64(int(ts_us[position]), "us")
    raise InputDataError(
        f"the query returned series {owner.name!r} with timestamp {moment} UTC out of order or twice; "
        "Prometheus returns each series' points in time order, so check that the URL is a Prometheus-compatible API"
    )
