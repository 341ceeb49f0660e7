"""Printing command results: JSON on stdout for scripts, rich tables for people."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

__all__ = ["print_json", "console", "to_jsonable"]

# Piped or redirected output has no terminal width; rich would then cut
# tables at 80 columns, so give such output room for wide query results.
console = Console(stderr=False, width=None if sys.stdout.isatty() else 200)


def to_jsonable(value: Any) -> Any:
    """Convert numpy, pandas and datetime values into plain JSON types; NaN becomes null."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return None if math.isnan(number) or math.isinf(number) else number
    if value is pd.NaT:
        return None
    return value


def print_json(payload: Mapping[str, Any]) -> None:
    """Write one JSON object and a newline to stdout."""
    sys.stdout.write(json.dumps(to_jsonable(payload)) + "\n")
    sys.stdout.flush()
