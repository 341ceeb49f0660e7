"""Timestamp parsing for result files: RFC 3339 text, epoch numbers, JMeter formats.

Every parser returns seconds since the Unix epoch in UTC (a float) plus the
UTC offset the text carried in minutes, or None when the text had none.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = [
    "parse_rfc3339",
    "epoch_seconds",
    "epoch_unit_of",
    "parse_offset",
    "format_offset",
    "LocalTimeParser",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CACHE_LIMIT = 4096

# Epoch timestamps from 2001 to 2286 have 10 digits in seconds, 13 in
# milliseconds, 16 in microseconds and 19 in nanoseconds.
_DIGITS_TO_DIVISOR = {10: 1.0, 13: 1e3, 16: 1e6, 19: 1e9}

_minute_cache: dict[str, float] = {}


def parse_offset(text: str) -> int:
    """Parse ``+02:00``, ``-0530`` or ``Z`` into minutes east of UTC; raise ValueError otherwise."""
    text = text.strip()
    if text in ("Z", "z", "UTC", "+00:00", "+0000"):
        return 0
    if len(text) not in (5, 6) or text[0] not in "+-":
        raise ValueError(f"invalid UTC offset {text!r}")
    digits = text[1:].replace(":", "")
    if len(digits) != 4 or not digits.isdigit():
        raise ValueError(f"invalid UTC offset {text!r}")
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    if minutes > 18 * 60:
        raise ValueError(f"UTC offset {text!r} is beyond 18 hours")
    return -minutes if text[0] == "-" else minutes


def format_offset(minutes: int | None) -> str | None:
    """Format minutes east of UTC as ``+02:00``."""
    if minutes is None:
        return None
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_rfc3339(text: str) -> tuple[float, int]:
    """Parse RFC 3339 text such as ``2017-05-09T14:34:45.625742514+02:00`` into (epoch seconds, offset minutes).

    Nanosecond fractions are kept to float precision. The date, hour and
    minute are parsed once per distinct minute and cached, because a result
    file repeats the same minute thousands of times.
    """
    if text.endswith(("Z", "z")):
        offset_at = len(text) - 1
        offset_min = 0
    else:
        offset_at = len(text) - 6
        if offset_at < 16 or text[offset_at] not in "+-" or text[offset_at + 3] != ":":
            raise ValueError(f"invalid RFC 3339 time {text!r}: no UTC offset")
        offset_min = parse_offset(text[offset_at:])
    if len(text) < 19 or text[10] not in "Tt " or text[13] != ":" or text[16] != ":":
        raise ValueError(f"invalid RFC 3339 time {text!r}")
    key = text[:16] + text[offset_at:]
    base = _minute_cache.get(key)
    if base is None:
        minute = datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]))
        base = (minute - timedelta(minutes=offset_min) - _EPOCH.replace(tzinfo=None)).total_seconds()
        if len(_minute_cache) >= _CACHE_LIMIT:
            _minute_cache.clear()
        _minute_cache[key] = base
    seconds_text = text[17:offset_at]
    seconds = float(seconds_text)
    if not 0.0 <= seconds < 61.0:
        raise ValueError(f"invalid seconds in RFC 3339 time {text!r}")
    return base + seconds, offset_min


def epoch_unit_of(text: str) -> float:
    """Return the divisor that turns an integer epoch timestamp into seconds, from its digit count."""
    digits = len(text.strip().lstrip("-").split(".")[0])
    divisor = _DIGITS_TO_DIVISOR.get(digits)
    if divisor is None:
        raise ValueError(f"epoch timestamp {text!r} has {digits} digits; expected 10 (s), 13 (ms), 16 (us) or 19 (ns)")
    return divisor


def epoch_seconds(text: str, divisor: float) -> float:
    """Parse an epoch number in the unit given by ``divisor`` into seconds."""
    if divisor == 1.0:
        return float(text)
    # Integer division first keeps nanosecond timestamps exact to the microsecond.
    value = int(text)
    return value // int(divisor) + (value % int(divisor)) / divisor


# Formats JMeter users commonly set in jmeter.save.saveservice.timestamp_format,
# written as strptime patterns; %z accepts +0200 and +02:00.
_LOCAL_FORMATS = (
    "%Y/%m/%d %H:%M:%S.%f",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%y %H:%M:%S",
)


class LocalTimeParser:
    """Parse formatted timestamps, finding the format from the first one.

    Text without an offset is local time of the machine that wrote it; it is
    converted with ``default_offset_min`` (UTC when None). ``offset_min``
    records the offset of the last timestamp parsed, None when it had none.
    """

    def __init__(self, default_offset_min: int | None) -> None:
        self.default_offset_min = default_offset_min
        self.offset_min: int | None = None
        self.saw_naive = False
        self._format: str | None = None

    def __call__(self, text: str) -> float:
        text = text.strip()
        if self._format is not None:
            try:
                return self._convert(datetime.strptime(text, self._format))
            except ValueError:
                pass
        for pattern in _LOCAL_FORMATS:
            try:
                parsed = datetime.strptime(text, pattern)
            except ValueError:
                continue
            self._format = pattern
            return self._convert(parsed)
        raise ValueError(f"unrecognised timestamp {text!r}")

    def _convert(self, parsed: datetime) -> float:
        if parsed.tzinfo is None:
            self.saw_naive = True
            offset = self.default_offset_min or 0
            self.offset_min = self.default_offset_min
            parsed = parsed.replace(tzinfo=timezone(timedelta(minutes=offset)))
        else:
            delta = parsed.utcoffset()
            self.offset_min = int(delta.total_seconds() // 60) if delta is not None else None
        return (parsed - _EPOCH).total_seconds()
