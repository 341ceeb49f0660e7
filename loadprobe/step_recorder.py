"""Recording request outcomes into a step measurement."""

from __future__ import annotations

from loadprobe.http_engine import Outcome
from loadprobe.measurement import StepMeasurement

__all__ = ["StepRecorder"]


class StepRecorder:
    """Add each finished request to the total and to its scenario."""

    def __init__(self, measurement: StepMeasurement) -> None:
        self.measurement = measurement
        self._ok_done_at: list[float] = []

    def record(self, scenario: str, intended: float, outcome: Outcome) -> None:
        m = self.measurement
        m.send_lag.record_s(max(outcome.sent_at - intended, 0.0))
        parts = (m.total, m.scenario(scenario))
        for part in parts:
            part.requests += 1
        if outcome.error_kind in ("refused", "reset"):
            # A refused or reset connection has no response time to speak of.
            for part in parts:
                part.add_error(outcome.error_kind)
            return
        latency_s = outcome.done_at - intended
        service_s = outcome.done_at - outcome.sent_at
        for part in parts:
            part.latency.record_s(latency_s)
            part.service.record_s(service_s)
            if outcome.error_kind is None:
                part.ok += 1
            else:
                part.add_error(outcome.error_kind)
        if outcome.error_kind is None:
            self._ok_done_at.append(outcome.done_at)

    def record_abandoned(self, scenario: str, intended: float, now: float) -> None:
        """Count a request still unanswered after the drain wait as a timeout.

        Its latency is at least the time it has waited so far, so that is
        what is recorded.
        """
        m = self.measurement
        for part in (m.total, m.scenario(scenario)):
            part.requests += 1
            part.add_error("timeout")
            part.latency.record_s(now - intended)

    def finish(self, start: float) -> None:
        """Count successes in the throughput window.

        The window is as long as the step and shifted by the median latency:
        a target that keeps up answers every arrival inside it, and a saturated
        one only as many as its capacity allows.
        """
        m = self.measurement
        median_ms = m.total.latency.percentile_ms(50) or 0.0
        window_start = start + median_ms / 1000.0
        window_end = window_start + m.duration_s
        m.ok_in_window = sum(1 for done_at in self._ok_done_at if window_start <= done_at <= window_end)
