"""Collecting raw request samples of one run without holding them in memory.

Each request becomes a fixed-size record (start time, latency, error kind,
sub-sample group) appended to column files in a temporary folder, so a
gigabyte result file costs about 21 bytes of disk per request and a few
megabytes of memory. The load timeline (users, request starts and dropped
iterations per second) stays in memory: one entry per second of the test.
"""

from __future__ import annotations

import math
import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

__all__ = ["SampleRecorder", "OK_CODE"]

OK_CODE = 0
FLUSH_EVERY = 1 << 16  # records buffered in memory before they are appended to disk
MAX_ORIGINS = 8  # distinct target origins remembered; beyond this the target is "several"


class SampleRecorder:
    """Raw samples and the per-second load timeline of one run.

    ``add`` takes the request's start time in epoch seconds (UTC) and its
    latency in milliseconds. ``group`` marks a possible sub-sample (JMeter
    redirect sub-results such as ``Home-0``): it is the id of the parent label,
    and :meth:`exclude_groups` later drops the groups whose parent appeared.
    """

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="capplan-import-")
        folder = Path(self._folder.name)
        self._files = {
            "t": open(folder / "t.f8", "wb"),
            "lat": open(folder / "lat.f8", "wb"),
            "kind": open(folder / "kind.i1", "wb"),
            "group": open(folder / "group.i4", "wb"),
        }
        self._t = array("d")
        self._lat = array("d")
        self._kind = array("b")
        self._group = array("i")
        self.kinds: list[str] = ["ok"]
        self._kind_codes: dict[str | None, int] = {None: OK_CODE}
        self.count = 0
        self.first_s = math.inf
        self.last_end_s = -math.inf
        self.users_sum: dict[int, float] = {}
        self.users_n: dict[int, int] = {}
        self.starts: dict[int, int] = {}
        self.dropped: dict[int, float] = {}
        self.iterations = 0
        self.excluded_groups: set[int] = set()
        self.origins: set[str] = set()
        self._closed = False

    def add(self, start_s: float, latency_ms: float, kind: str | None, group: int = 0) -> None:
        code = self._kind_codes.get(kind)
        if code is None:
            code = len(self.kinds)
            self.kinds.append(str(kind))
            self._kind_codes[kind] = code
        self._t.append(start_s)
        self._lat.append(latency_ms)
        self._kind.append(code)
        self._group.append(group)
        second = int(start_s)
        self.starts[second] = self.starts.get(second, 0) + 1
        self.count += 1
        if start_s < self.first_s:
            self.first_s = start_s
        end_s = start_s + latency_ms / 1000.0
        if end_s > self.last_end_s:
            self.last_end_s = end_s
        if len(self._t) >= FLUSH_EVERY:
            self._flush()

    def add_users(self, t_s: float, users: float) -> None:
        """Record a reading of active users (virtual users, threads) at ``t_s``."""
        second = int(t_s)
        self.users_sum[second] = self.users_sum.get(second, 0.0) + users
        self.users_n[second] = self.users_n.get(second, 0) + 1

    def add_dropped(self, t_s: float, count: float) -> None:
        """Record arrivals an open-model generator could not start (k6 dropped_iterations)."""
        second = int(t_s)
        self.dropped[second] = self.dropped.get(second, 0.0) + count

    def note_url(self, url: str) -> None:
        if len(self.origins) > MAX_ORIGINS or not url:
            return
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            self.origins.add(f"{parts.scheme}://{parts.netloc}/")

    def target_url(self) -> str | None:
        """Return the one origin every request went to, or None when there were none or several."""
        return next(iter(self.origins)) if len(self.origins) == 1 else None

    def exclude_groups(self, groups: set[int]) -> None:
        self.excluded_groups |= groups

    def _flush(self) -> None:
        if not self._t:
            return
        self._t.tofile(self._files["t"])
        self._lat.tofile(self._files["lat"])
        self._kind.tofile(self._files["kind"])
        self._group.tofile(self._files["group"])
        self._t = array("d")
        self._lat = array("d")
        self._kind = array("b")
        self._group = array("i")

    def finish(self) -> None:
        """Write buffered records to disk; call once parsing is over."""
        self._flush()
        for handle in self._files.values():
            handle.flush()

    def chunks(self, size: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (start_s, latency_ms, kind_code, group) arrays of at most ``size`` records each."""
        self.finish()
        if self.count == 0:
            return
        folder = Path(self._folder.name)
        columns = [
            np.memmap(folder / "t.f8", dtype=np.float64, mode="r"),
            np.memmap(folder / "lat.f8", dtype=np.float64, mode="r"),
            np.memmap(folder / "kind.i1", dtype=np.int8, mode="r"),
            np.memmap(folder / "group.i4", dtype=np.int32, mode="r"),
        ]
        try:
            for begin in range(0, self.count, size):
                yield tuple(np.asarray(column[begin : begin + size]) for column in columns)  # type: ignore[misc]
        finally:
            del columns

    def close(self) -> None:
        """Delete the temporary record files."""
        if self._closed:
            return
        self._closed = True
        for handle in self._files.values():
            handle.close()
        self._folder.cleanup()
