"""What a generator measures during one step, in a form that merges.

Each generator process fills one :class:`StepMeasurement`; the parent merges
them. Everything in it is a count or an HdrHistogram, so merging is exact:
percentiles of the merged step equal percentiles over all its requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loadprobe.histogram import LatencyHistogram

__all__ = ["ScenarioMeasurement", "StepMeasurement", "LiveCounters"]


@dataclass
class LiveCounters:
    """Counters the progress display reads while a step runs (one process)."""

    sent: int = 0
    ok: int = 0
    errors: int = 0
    dropped: int = 0
    in_flight: int = 0


@dataclass
class ScenarioMeasurement:
    """Requests of one scenario (or of all scenarios together) in one step.

    ``latency`` counts from the intended send time and ``service`` from the
    actual send; both are in microseconds inside the histograms.
    """

    requests: int = 0
    ok: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    service: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def errors(self) -> int:
        return sum(self.errors_by_kind.values())

    def add_error(self, kind: str) -> None:
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1

    def merge(self, other: "ScenarioMeasurement") -> None:
        self.requests += other.requests
        self.ok += other.ok
        for kind, count in other.errors_by_kind.items():
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + count
        self.latency.merge(other.latency)
        self.service.merge(other.service)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors_by_kind": dict(self.errors_by_kind),
            "latency": self.latency.encode(),
            "service": self.service.encode(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScenarioMeasurement":
        return cls(
            requests=data["requests"],
            ok=data["ok"],
            errors_by_kind=dict(data["errors_by_kind"]),
            latency=LatencyHistogram.decode(data["latency"]),
            service=LatencyHistogram.decode(data["service"]),
        )


@dataclass
class StepMeasurement:
    """Everything measured during one step, before it is judged.

    ``offered_rps`` is the mean rate the schedule offered (open model) or the
    rate at which users sent (closed model). ``ok_in_window`` counts successes
    completed inside a window as long as the step, shifted by the median
    latency, from which the achieved rate follows. ``generator_cpu`` is the
    highest fraction of one core used by any generator process.
    """

    model: str
    offered_rps: float
    duration_s: float
    started_at: datetime
    users: float | None = None
    scheduled: int = 0
    sent: int = 0
    dropped: int = 0
    ok_in_window: int = 0
    in_flight_max: int = 0
    total: ScenarioMeasurement = field(default_factory=ScenarioMeasurement)
    scenarios: dict[str, ScenarioMeasurement] = field(default_factory=dict)
    send_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    generator_cpu: float = 0.0
    generator_processes: int = 1
    machine_cpu_busy: float | None = None
    interrupted: bool = False
    aborted_reason: str | None = None

    def scenario(self, name: str) -> ScenarioMeasurement:
        found = self.scenarios.get(name)
        if found is None:
            found = self.scenarios[name] = ScenarioMeasurement()
        return found

    def merge(self, other: "StepMeasurement") -> None:
        """Add another generator process's share of the same step."""
        self.scheduled += other.scheduled
        self.sent += other.sent
        self.dropped += other.dropped
        self.ok_in_window += other.ok_in_window
        self.in_flight_max += other.in_flight_max
        self.total.merge(other.total)
        for name, part in other.scenarios.items():
            self.scenario(name).merge(part)
        self.send_lag.merge(other.send_lag)
        self.generator_cpu = max(self.generator_cpu, other.generator_cpu)
        self.generator_processes += other.generator_processes
        self.interrupted = self.interrupted or other.interrupted
        self.aborted_reason = self.aborted_reason or other.aborted_reason
        if other.users is not None:
            self.users = (self.users or 0.0) + other.users

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "offered_rps": self.offered_rps,
            "duration_s": self.duration_s,
            "started_at": self.started_at.isoformat(),
            "users": self.users,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "dropped": self.dropped,
            "ok_in_window": self.ok_in_window,
            "in_flight_max": self.in_flight_max,
            "total": self.total.to_dict(),
            "scenarios": {name: part.to_dict() for name, part in self.scenarios.items()},
            "send_lag": self.send_lag.encode(),
            "generator_cpu": self.generator_cpu,
            "interrupted": self.interrupted,
            "aborted_reason": self.aborted_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepMeasurement":
        return cls(
            model=data["model"],
            offered_rps=data["offered_rps"],
            duration_s=data["duration_s"],
            started_at=datetime.fromisoformat(data["started_at"]),
            users=data["users"],
            scheduled=data["scheduled"],
            sent=data["sent"],
            dropped=data["dropped"],
            ok_in_window=data["ok_in_window"],
            in_flight_max=data["in_flight_max"],
            total=ScenarioMeasurement.from_dict(data["total"]),
            scenarios={name: ScenarioMeasurement.from_dict(part) for name, part in data["scenarios"].items()},
            send_lag=LatencyHistogram.decode(data["send_lag"]),
            generator_cpu=data["generator_cpu"],
            interrupted=data["interrupted"],
            aborted_reason=data["aborted_reason"],
        )
