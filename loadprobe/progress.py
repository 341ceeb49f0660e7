"""Live progress of a load test on the terminal (stderr), drawn with rich."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from loadprobe.measurement import LiveCounters

__all__ = ["RichProgress"]

REFRESH_S = 0.25


class RichProgress:
    """One bar per step: sent vs planned requests, with errors and drops."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._live: Callable[[], LiveCounters] | None = None
        self._started_at = 0.0
        self._duration_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress.start()

    def step_started(self, index: int, total: int, label: str, duration_s: float, live: Callable[[], LiveCounters]) -> None:
        self._task = self._progress.add_task(f"step {index + 1}/{total} {label}", total=duration_s, detail="")
        self._live = live
        self._started_at = time.monotonic()
        self._duration_s = duration_s
        if self._thread is None:
            self._thread = threading.Thread(target=self._refresh_loop, name="probe-progress", daemon=True)
            self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            task, read_live = self._task, self._live
            if task is None or read_live is None:
                continue
            live = read_live()
            elapsed = min(time.monotonic() - self._started_at, self._duration_s)
            rate = live.ok / elapsed if elapsed > 0 else 0.0
            detail = (
                f"sent {live.sent}  ok {live.ok} ({rate:.0f}/s)  errors {live.errors}  "
                f"dropped {live.dropped}  in flight {live.in_flight}"
            )
            self._progress.update(task, completed=elapsed, detail=detail)

    def step_finished(self, row: dict[str, Any]) -> None:
        if self._task is None:
            return
        verdict = "pass" if row["passed"] else "FAIL"
        if row.get("generator_saturated"):
            verdict = "GENERATOR SATURATED"
        elif row.get("target_saturated"):
            verdict += ", target saturated"
        p95 = row["p95_ms"]
        detail = (
            f"{verdict}: achieved {row['achieved_rps']:.1f} rps  p95 "
            f"{'-' if p95 is None else f'{p95:.1f} ms'}  errors {row['error_rate']:.2%}  "
            f"lag p99 {row['send_lag_p99_ms'] or 0:.1f} ms"
        )
        self._progress.update(self._task, completed=self._duration_s, detail=detail)
        self._task = None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._progress.stop()
